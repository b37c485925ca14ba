import { execFileSync, spawnSync } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { PassThrough, Readable, Writable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { AppConfig } from '../../src/config/app-config';
import { ArtifactPipeline, ChecksumMismatchError, CorruptArtifactError } from '../../src/pipeline/artifact-pipeline';

const MiB = 1 << 20;

function pipelineWith(workers: number): ArtifactPipeline {
  return new ArtifactPipeline({ zstdLevel: 3, zstdWorkers: workers } as AppConfig);
}

/** Semi-compressible bytes: random runs mixed with repeated text. */
function sampleData(bytes: number): Buffer {
  const parts: Buffer[] = [];
  let size = 0;
  while (size < bytes) {
    const part = size % 3 === 0 ? randomBytes(4096) : Buffer.from('the quick brown fox jumps over the lazy dog\n'.repeat(100));
    parts.push(part);
    size += part.length;
  }
  return Buffer.concat(parts).subarray(0, bytes);
}

/** A source that emits `data` in 64 KiB chunks, as a child process pipe does. */
function pipeLike(data: Buffer): Readable {
  let offset = 0;
  return new Readable({
    read() {
      if (offset >= data.length) return void this.push(null);
      this.push(data.subarray(offset, offset + 65536));
      offset += 65536;
    },
  });
}

async function storeToBuffer(p: ArtifactPipeline, source: Readable) {
  const chunks: Buffer[] = [];
  const sink = new Writable({ write: (c, _e, cb) => (chunks.push(c), cb()) });
  const result = await p.store(source, sink);
  return { ...result, stored: Buffer.concat(chunks) };
}

async function readAll(stream: Readable): Promise<Buffer> {
  const chunks: Buffer[] = [];
  for await (const c of stream) chunks.push(c as Buffer);
  return Buffer.concat(chunks);
}

const sha256 = (b: Buffer) => createHash('sha256').update(b).digest('hex');

describe('ArtifactPipeline (libzstd through zstd-napi; checked against the zstd command)', () => {
  const dir = mkdtempSync(join(tmpdir(), 'dr-pipeline-'));

  it.each([0, 1, 2])('compresses with %i worker(s) into a zstd stream the zstd command decompresses, with exact sizes and SHA-256', async (workers) => {
    const data = sampleData(9 * MiB + 123);
    const result = await storeToBuffer(pipelineWith(workers), pipeLike(data));
    expect(result.sizeBytes).toBe(data.length);
    expect(result.storedBytes).toBe(result.stored.length);
    expect(result.sha256).toBe(sha256(result.stored));
    const file = join(dir, `w${workers}.zst`);
    writeFileSync(file, result.stored);
    execFileSync('zstd', ['-t', '-q', file]); // every frame's content checksum is valid
    expect(sha256(execFileSync('zstd', ['-dc', file], { maxBuffer: 64 * MiB }))).toBe(sha256(data));
  });

  it('restores what the zstd command compressed, and what it compressed itself, byte for byte', async () => {
    const data = sampleData(5 * MiB);
    const file = join(dir, 'cli.zst');
    writeFileSync(join(dir, 'cli.raw'), data);
    execFileSync('zstd', ['-q', '-f', '-19', join(dir, 'cli.raw'), '-o', file]);
    const stored = readFileSync(file);
    const p = pipelineWith(1);
    expect(sha256(await readAll(await p.openRaw(Readable.from([stored]), 'cli.zst', sha256(stored))))).toBe(sha256(data));
    const own = await storeToBuffer(p, pipeLike(data));
    expect(sha256(await readAll(await p.openRaw(Readable.from([own.stored]), 'own.zst', own.sha256)))).toBe(sha256(data));
  });

  it('produces raw output only as fast as it is read: a 1000:1 artifact does not balloon memory', async () => {
    const zeros = Buffer.alloc(256 * MiB); // compresses to a few kB
    const { stored, sha256: digest } = await storeToBuffer(pipelineWith(1), pipeLike(zeros));
    expect(stored.length).toBeLessThan(256 * 1024);
    const raw = await pipelineWith(1).openRaw(Readable.from([stored]), 'zeros', digest);
    let peakBuffered = 0;
    let total = 0;
    // A slow consumer (1 ms per chunk for the first 200 chunks). zstd-napi's own DecompressStream, given the same
    // input, buffers the whole 256 MiB output here (it pushes without waiting for the reader).
    const consumer = new Writable({
      highWaterMark: 1,
      write(chunk: Buffer, _e, cb) {
        total += chunk.length;
        peakBuffered = Math.max(peakBuffered, raw.readableLength);
        if (total < 200 * 128 * 1024) setTimeout(cb, 1);
        else cb();
      },
    });
    await pipeline(raw, consumer);
    expect(total).toBe(zeros.length);
    expect(peakBuffered).toBeLessThanOrEqual(2 * MiB);
  });

  it('refuses a truncated artifact and one whose bytes differ from the recorded SHA-256', async () => {
    const data = sampleData(3 * MiB);
    const p = pipelineWith(1);
    const { stored, sha256: digest } = await storeToBuffer(p, pipeLike(data));
    const truncated = stored.subarray(0, stored.length - 100);
    await expect(p.openRaw(Readable.from([truncated]), 'k', sha256(truncated)).then(readAll)).rejects.toThrow(CorruptArtifactError);
    // right bytes, wrong recorded hash: every byte decompresses, then the stream errors instead of ending
    await expect(p.openRaw(Readable.from([stored]), 'k', '0'.repeat(64)).then(readAll)).rejects.toThrow(ChecksumMismatchError);
    const flipped = Buffer.from(stored);
    flipped[Math.floor(flipped.length / 2)] ^= 0x40;
    await expect(p.openRaw(Readable.from([flipped]), 'k', digest).then(readAll)).rejects.toThrow(/k/);
  });

  it('keeps back-pressure on the way in: a sink that stops reading stops the source', async () => {
    const data = sampleData(64 * MiB);
    const source = pipeLike(data);
    let read = 0;
    source.on('data', (c: Buffer) => (read += c.length));
    const sink = new PassThrough({ highWaterMark: MiB }); // nobody reads it
    const stored = pipelineWith(1).store(source, sink);
    stored.catch(() => undefined);
    await new Promise((r) => setTimeout(r, 500));
    // the compressed output is about 1/3 of the input; with the sink full, the source must have stopped well short
    expect(read).toBeLessThan(24 * MiB);
    sink.destroy(new Error('stop'));
    await expect(stored).rejects.toThrow();
  });

  it('the zstd command is present (the tests compare with it)', () => {
    expect(spawnSync('zstd', ['--version']).status).toBe(0);
  });
});
