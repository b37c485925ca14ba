import { randomBytes } from 'node:crypto';
import { createWriteStream } from 'node:fs';
import { mkdir, open, readdir, readFile, rename, rm, rmdir, stat, unlink } from 'node:fs/promises';
import { basename, dirname, join, relative, sep } from 'node:path';
import { Readable } from 'node:stream';
import { finished } from 'node:stream/promises';
import {
  assertValidKey,
  ByteRange,
  ImmutabilityNotSupportedError,
  ObjectNotFoundError,
  ObjectPage,
  ObjectStat,
  StagedKeyFilter,
  StagedUpload,
  StorageCapabilities,
  StorageDriver,
  UploadOptions,
} from './storage-driver';

const STAGING_MARK = '.partial-';

/**
 * Local disk or NFS mount. Uploads are written to `.<name>.partial-<random>` beside the final file, fsynced,
 * renamed over the final name, and the directory is fsynced, so a published object is complete and durable
 * (the rename is atomic within one file system, NFS included).
 */
export class LocalStorageDriver implements StorageDriver {
  /** A plain file system has no object lock (`chattr +i` needs CAP_LINUX_IMMUTABLE, which a service should not hold). */
  readonly capabilities: StorageCapabilities = { immutability: false };

  constructor(private readonly root: string) {}

  private pathOf(key: string): string {
    assertValidKey(key);
    return join(this.root, ...key.split('/'));
  }

  async createUpload(key: string, options: UploadOptions = {}): Promise<StagedUpload> {
    if (options.retainUntil) throw new ImmutabilityNotSupportedError('local storage cannot lock objects (immutability)');
    const finalPath = this.pathOf(key);
    await mkdir(dirname(finalPath), { recursive: true, mode: 0o750 });
    const stagingPath = join(dirname(finalPath), `.${basename(finalPath)}${STAGING_MARK}${randomBytes(6).toString('hex')}`);
    // flush: the file is fsynced before its descriptor closes, so a published object survives a power loss.
    const stream = createWriteStream(stagingPath, { flags: 'wx', mode: 0o640, flush: true, highWaterMark: 1 << 20 });
    let settled = false;
    return {
      stream,
      publish: async () => {
        if (!stream.closed) await finished(stream);
        await rename(stagingPath, finalPath);
        await syncDirectory(dirname(finalPath));
        settled = true;
      },
      abort: async () => {
        if (settled) return;
        settled = true;
        stream.on('error', () => undefined); // a write still in flight fails once destroyed: expected here
        stream.destroy();
        await finished(stream).catch(() => undefined);
        await rm(stagingPath, { force: true });
      },
    };
  }

  async putObject(key: string, body: Buffer, options?: UploadOptions): Promise<void> {
    const upload = await this.createUpload(key, options);
    try {
      upload.stream.end(body);
      await finished(upload.stream);
      await upload.publish();
    } catch (error) {
      await upload.abort();
      throw error;
    }
  }

  async read(key: string, range?: ByteRange): Promise<Readable> {
    const path = this.pathOf(key);
    const handle = await open(path, 'r').catch((error: NodeJS.ErrnoException) => {
      throw error.code === 'ENOENT' ? new ObjectNotFoundError(key) : error;
    });
    return handle.createReadStream({ start: range?.start, end: range?.end, highWaterMark: 1 << 20, autoClose: true });
  }

  async readObject(key: string): Promise<Buffer> {
    return readFile(this.pathOf(key)).catch((error: NodeJS.ErrnoException) => {
      throw error.code === 'ENOENT' ? new ObjectNotFoundError(key) : error;
    });
  }

  async stat(key: string): Promise<ObjectStat | null> {
    try {
      const s = await stat(this.pathOf(key));
      return s.isFile() ? { key, sizeBytes: s.size, modifiedAt: s.mtime } : null;
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code === 'ENOENT') return null;
      throw error;
    }
  }

  async list(prefix: string, options: { after?: string; limit?: number } = {}): Promise<ObjectPage> {
    const limit = options.limit ?? 1000;
    const keys: string[] = [];
    await this.walk(this.root, (key) => {
      if (key.startsWith(prefix) && (options.after === undefined || key > options.after)) keys.push(key);
    });
    keys.sort();
    const page = keys.slice(0, limit);
    const objects = await Promise.all(page.map(async (key) => (await this.stat(key)) as ObjectStat));
    return { objects: objects.filter(Boolean), nextAfter: keys.length > limit ? page[page.length - 1] : undefined };
  }

  /** Deletes the file, then its folder when that is left empty (a backup's folder once its last object is gone). */
  async delete(key: string): Promise<void> {
    const path = this.pathOf(key);
    await unlink(path).catch((error: NodeJS.ErrnoException) => {
      if (error.code !== 'ENOENT') throw error;
    });
    await this.removeEmptyFolders(dirname(path));
  }

  async removeStaged(prefix: string, shouldRemove?: StagedKeyFilter): Promise<number> {
    let removed = 0;
    const start = prefix.includes('/') ? join(this.root, ...prefix.split('/').slice(0, -1)) : this.root;
    const touched = new Set<string>();
    await this.walk(
      start,
      async () => undefined,
      async (path) => {
        const key = relative(this.root, path).split(sep).join('/');
        const visibleKey = key.replace(/(^|\/)\.([^/]*)\.partial-[0-9a-f]+$/, '$1$2');
        if (visibleKey.startsWith(prefix) && (!shouldRemove || (await shouldRemove(visibleKey)))) {
          await rm(path, { force: true });
          touched.add(dirname(path));
          removed++;
        }
      },
      shouldRemove
        ? async (dir) => {
            // an empty folder whose key prefix belongs to an ended job (a failed backup's `<id>/`)
            const key = `${relative(this.root, dir).split(sep).join('/')}/`;
            if (key.startsWith(prefix) && (await shouldRemove(key))) touched.add(dir);
          }
        : undefined,
    );
    for (const dir of touched) await this.removeEmptyFolders(dir);
    return removed;
  }

  /** Removes `dir` and its parents up to (not including) the root while they are empty. */
  private async removeEmptyFolders(dir: string): Promise<void> {
    for (let current = dir; current !== this.root && current.startsWith(this.root + sep); current = dirname(current)) {
      try {
        await rmdir(current);
      } catch {
        return; // not empty (ENOTEMPTY), gone, or not ours to remove
      }
    }
  }

  async checkHealth(): Promise<void> {
    await mkdir(this.root, { recursive: true, mode: 0o750 });
    await this.putObject('.health/probe', Buffer.from(new Date().toISOString()));
  }

  /**
   * Visits every published object key (and, through `onStaged`, every staging file; through `onEmptyFolder`, every
   * folder that holds nothing) below `dir`.
   */
  private async walk(
    dir: string,
    onKey: (key: string) => void | Promise<void>,
    onStaged?: (path: string) => Promise<void>,
    onEmptyFolder?: (path: string) => Promise<void>,
  ): Promise<void> {
    let entries;
    try {
      entries = await readdir(dir, { withFileTypes: true });
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code === 'ENOENT') return;
      throw error;
    }
    if (entries.length === 0 && dir !== this.root) await onEmptyFolder?.(dir);
    for (const entry of entries) {
      const path = join(dir, entry.name);
      if (entry.isDirectory()) {
        if (entry.name.startsWith('.')) continue;
        await this.walk(path, onKey, onStaged, onEmptyFolder);
      } else if (entry.name.includes(STAGING_MARK) && entry.name.startsWith('.')) {
        await onStaged?.(path);
      } else if (entry.isFile() && !entry.name.startsWith('.')) {
        await onKey(relative(this.root, path).split(sep).join('/'));
      }
    }
  }
}

async function syncDirectory(dir: string): Promise<void> {
  const handle = await open(dir, 'r');
  try {
    await handle.sync();
  } finally {
    await handle.close();
  }
}
