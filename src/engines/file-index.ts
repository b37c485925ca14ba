import { createReadStream, createWriteStream, WriteStream } from 'node:fs';
import { mkdir, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { finished } from 'node:stream/promises';
import { FileIndexEntry } from './file-index-entry';
import { decodeFileName, displayFileName, encodeFileName, hasEscapedBytes } from './file-name-bytes';

/**
 * The exact path of an index entry, decoded as in file-name-bytes.ts (undecodable bytes as lone surrogates): from
 * `pathB64` when present, else `path`.
 */
export function indexPathOf(entry: Pick<FileIndexEntry, 'path' | 'pathB64'>): string {
  return entry.pathB64 === undefined ? entry.path : decodeFileName(Buffer.from(entry.pathB64, 'base64'));
}

/** The exact target of a symlink's index entry (see {@link indexPathOf}), or undefined. */
export function linkTargetOf(entry: Pick<FileIndexEntry, 'linkTarget' | 'linkTargetB64'>): string | undefined {
  return entry.linkTargetB64 === undefined ? entry.linkTarget : decodeFileName(Buffer.from(entry.linkTargetB64, 'base64'));
}

/**
 * `entry` under the exact path `path` (and symlink target `linkTarget`, when given), as the index stores it: names
 * that are valid UTF-8 as plain strings, others as `pathB64`/`linkTargetB64` (base64 of the bytes) with a `path`
 * for people (undecodable bytes as `\xNN`).
 */
export function withIndexPath<T extends FileIndexEntry>(entry: T, path: string, linkTarget = linkTargetOf(entry)): T {
  const { pathB64: _p, linkTargetB64: _l, ...rest } = entry;
  const named = { ...rest, path: displayFileName(path) } as T;
  if (hasEscapedBytes(path)) named.pathB64 = encodeFileName(path).toString('base64');
  if (linkTarget !== undefined) {
    named.linkTarget = displayFileName(linkTarget);
    if (hasEscapedBytes(linkTarget)) named.linkTargetB64 = encodeFileName(linkTarget).toString('base64');
  }
  return named;
}

/** The per-file index of a backup (path, type, size, mode, mtime, SHA-256 of each member), however it is held. */
export interface FileIndex {
  /** Entries recorded. */
  readonly count: number;
  /** The entries, in archive order. */
  entries(): AsyncIterable<FileIndexEntry>;
  /**
   * The same entries as JSON lines (`JSON.stringify(entry)` and `\n` each), in blocks of bytes, when the index holds
   * them in that form already (a spooled index): read without parsing and writing each entry again.
   */
  lines?(): AsyncIterable<Buffer>;
  /** Frees what holds the index (a scratch file). Safe to call more than once. */
  dispose(): Promise<void>;
}

/** An index small enough to hold in memory (configuration snapshots); kept in the backup record for diffs. */
export class MemoryFileIndex implements FileIndex {
  readonly all: FileIndexEntry[] = [];

  get count(): number {
    return this.all.length;
  }

  add(entry: FileIndexEntry): void {
    this.all.push(entry);
  }

  async *entries(): AsyncIterable<FileIndexEntry> {
    yield* this.all;
  }

  async dispose(): Promise<void> {}
}

/** Characters of JSON lines gathered before a spool write (about 64 KiB). */
const SPOOL_BLOCK_CHARS = 1 << 16;

/**
 * An index of any size (a directory tree of millions of files), spooled to a scratch file as JSON lines while the
 * backup runs, so memory stays bounded; read back once to write the backup's details object.
 */
export class SpooledFileIndex implements FileIndex {
  count = 0;
  private readonly out: WriteStream;
  /** Lines not written yet: written in blocks of {@link SPOOL_BLOCK_CHARS}, not one small write per entry. */
  private block = '';

  private constructor(private readonly path: string) {
    this.out = createWriteStream(path, { mode: 0o600, highWaterMark: 1 << 20 });
    // A write error (disk full) surfaces in close(); one after dispose() (a write still in flight when a failed
    // backup destroys the spool) is expected. Without this listener either would be an unhandled 'error' event.
    this.out.on('error', () => undefined);
  }

  /** Creates `<scratchDir>/<runId>.index.jsonl` (mode 0600). */
  static async create(scratchDir: string, runId: string): Promise<SpooledFileIndex> {
    await mkdir(scratchDir, { recursive: true, mode: 0o700 });
    return new SpooledFileIndex(join(scratchDir, `${runId}.index.jsonl`));
  }

  add(entry: FileIndexEntry): void {
    this.count++;
    this.block += `${JSON.stringify(entry)}\n`;
    if (this.block.length >= SPOOL_BLOCK_CHARS) {
      this.out.write(this.block);
      this.block = '';
    }
  }

  /** Flushes the spool; call once the archive has been read to its end. */
  async close(): Promise<void> {
    if (!this.out.writableEnded) {
      if (this.block) this.out.write(this.block);
      this.block = '';
      this.out.end();
    }
    await finished(this.out);
  }

  async *entries(): AsyncIterable<FileIndexEntry> {
    await this.close();
    const lines = createInterface({ input: createReadStream(this.path), crlfDelay: Infinity });
    for await (const line of lines) if (line) yield JSON.parse(line) as FileIndexEntry;
  }

  async *lines(): AsyncIterable<Buffer> {
    await this.close();
    yield* createReadStream(this.path, { highWaterMark: 1 << 16 }) as AsyncIterable<Buffer>;
  }

  async dispose(): Promise<void> {
    this.out.destroy();
    await rm(this.path, { force: true });
  }
}
