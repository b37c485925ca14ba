import { Readable } from 'node:stream';
import { AppConfig } from '../../src/config/app-config';
import { ArtifactPipeline } from '../../src/pipeline/artifact-pipeline';

describe('ArtifactPipeline.openRaw closing', () => {
  it('closes the stored stream when the raw stream is destroyed before its first read (a restore refused early)', async () => {
    const pipeline = new ArtifactPipeline({ zstdLevel: 3, zstdWorkers: 0 } as AppConfig);
    const stored = new Readable({ read() {} }); // stands for a storage read (file handle, socket) never consumed
    const raw = await pipeline.openRaw(stored, 'k', '0'.repeat(64));
    raw.destroy();
    await new Promise((resolve) => setImmediate(resolve));
    expect(stored.destroyed).toBe(true);
  });
});
