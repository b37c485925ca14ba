import { createHash } from 'node:crypto';
import { Readable, Transform } from 'node:stream';
import { extract, Headers } from 'tar-stream';
import { FileIndexEntry } from '../pipeline/manifest';
import { EngineBackupRun } from './backup-engine';
import { FileIndex } from './file-index';

/**
 * A pass-through stream that parses the tar archive flowing through it (with tar-stream) and reports, per
 * member, its path, type, size, mode, mtime and the SHA-256 of its content to `onEntry`: the index is of exactly
 * the bytes that went into the artifact. Back-pressure is kept: a chunk passes on only once the parser has taken it.
 */
export class TarIndexingStream extends Transform {
  /** Members seen so far. */
  count = 0;
  private readonly parser = extract();
  private parseError?: Error;

  constructor(private readonly onEntry: (entry: FileIndexEntry) => void) {
    super({ highWaterMark: 1 << 20 });
    this.parser.on('entry', (header: Headers, stream, next) => {
      const hash = header.type === 'file' ? createHash('sha256') : null;
      // a member cut short (a truncated archive, or the parser destroyed when the backup fails) errors here too:
      // the parser's own 'error' carries it, so this listener only keeps it from being an unhandled error event
      stream.on('error', () => undefined);
      stream.on('data', (chunk: Buffer) => hash?.update(chunk));
      stream.on('end', () => {
        this.count++;
        this.onEntry(toEntry(header, hash?.digest('hex')));
        next();
      });
    });
    this.parser.on('error', (error: Error) => {
      this.parseError = error;
    });
  }

  override _transform(chunk: Buffer, _encoding: BufferEncoding, callback: (error?: Error | null, data?: Buffer) => void): void {
    if (this.parseError) return callback(this.parseError);
    // tar-stream is built on streamx: write() takes no callback; wait for 'drain' when it asks to.
    if (this.parser.write(chunk)) callback(null, chunk);
    else this.parser.once('drain', () => callback(this.parseError ?? null, chunk));
  }

  /** Destroys the parser with this stream (a failed backup): nothing is left waiting on a half-read member. */
  override _destroy(error: Error | null, callback: (error?: Error | null) => void): void {
    this.parser.destroy();
    callback(error);
  }

  override _flush(callback: (error?: Error | null) => void): void {
    this.parser.once('finish', () => callback(this.parseError ?? null));
    this.parser.once('error', (error: Error) => callback(error));
    this.parser.end();
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
