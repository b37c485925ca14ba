import { createHash } from 'node:crypto';
import { Readable } from 'node:stream';
import { Headers } from 'tar-stream';
import { FileIndexEntry } from '../pipeline/manifest';
import { EngineBackupRun } from './backup-engine';
import { FileIndex } from './file-index';
import { TarMemberReader, TarPassThrough } from './tar-pass-through';

/**
 * A pass-through stream that parses the tar archive flowing through it and reports, per member, its path, type,
 * size, mode, mtime and the SHA-256 of its content to `onEntry`: the index is of exactly the bytes that went into
 * the artifact.
 */
export class TarIndexingStream extends TarPassThrough {
  /** Members seen so far. */
  count = 0;

  constructor(private readonly onEntry: (entry: FileIndexEntry) => void) {
    super();
  }

  protected member(header: Headers): TarMemberReader {
    const hash = header.type === 'file' ? createHash('sha256') : null;
    return {
      data: (chunk) => hash?.update(chunk),
      end: () => {
        this.count++;
        this.onEntry(toEntry(header, hash?.digest('hex')));
      },
    };
  }
}

function toEntry(header: Headers, sha256: string | undefined): FileIndexEntry {
  const type = header.type === 'file' ? 'file' : header.type === 'directory' ? 'directory' : header.type === 'symlink' ? 'symlink' : 'other';
  return {
    path: header.name.replace(/^\.\//, '').replace(/\/$/, ''),
    type,
    sizeBytes: header.size ?? 0,
    mode: ((header.mode ?? 0) & 0o7777).toString(8).padStart(4, '0'),
    mtime: (header.mtime ?? new Date(0)).toISOString(),
    ...(sha256 ? { sha256 } : {}),
    ...(header.linkname ? { linkTarget: header.linkname } : {}),
  };
}

/**
 * Wraps a running tar (stream + outcome) so that its archive is indexed on the way into the artifact.
 * @param index receives one entry per member; `finish` runs once the archive has been read to its end.
 * @returns the engine run: the archive bytes (unchanged) and, once tar has exited, its warnings and the index.
 */
export function indexedTarRun(
  tar: { stream: Readable; done: Promise<string[]> },
  index: FileIndex & { add(entry: FileIndexEntry): void },
  finish: () => Promise<void>,
): EngineBackupRun {
  const indexer = new TarIndexingStream((entry) => index.add(entry));
  tar.stream.once('error', (error) => indexer.destroy(error));
  const stream = tar.stream.pipe(indexer);
  const indexed = new Promise<void>((resolve, reject) => {
    indexer.once('end', resolve);
    indexer.once('error', reject);
  });
  indexed.catch(() => undefined);
  const done = Promise.all([tar.done, indexed])
    .then(async ([warnings]) => {
      await finish();
      return { warnings, files: index };
    })
    .catch(async (error: Error) => {
      await index.dispose();
      throw error;
    });
  return { stream, done };
}
