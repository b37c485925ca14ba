import { closeSync, openSync, readFileSync } from 'node:fs';
import { mkdir, open, readFile, rename, rm, stat, writeFile } from 'node:fs/promises';
import { isAbsolute, join, normalize, resolve } from 'node:path';

/**
 * The spool directory of the asynchronous WAL archiver and of the wal-fetch prefetcher, in the manner of
 * pgBackRest's `spool-path` (archive-async): transient files only, never the archive itself. Layout:
 * ```
 * <spool>/<archive>/push/<file>.ok       the pusher stored <file> durably; JSON {name,rawSha256,rawBytes,outcome}
 * <spool>/<archive>/push/<file>.error    the pusher could not store <file>; the reason (one line of text)
 * <spool>/<archive>/push/pusher.pid      lock of the running pusher (its pid), pusher.log its output
 * <spool>/<archive>/fetch/<segment>      a prefetched segment, <segment>.json its archive record
 * <spool>/<archive>/fetch/requested      the last segment PostgreSQL asked for; prefetcher.pid, prefetcher.log
 * ```
 * The default spool is `<pg_wal>/dr-spool` (beside the segments, so a prefetched segment is handed over by a
 * rename on the same file system; pg_basebackup copies no file of pg_wal).
 */
export const DEFAULT_SPOOL_DIRNAME = 'dr-spool';

/**
 * Checks a spool directory given on the command line: an absolute, normalized path (no `.`, `..`, `//`, NUL).
 * @returns the path; @throws Error naming the option.
 */
export function checkSpoolPath(path: string): string {
  if (!isAbsolute(path) || path.includes('\0') || normalize(path) !== path.replace(/\/+$/, '') || path.split('/').includes('..')) {
    throw new Error(`--spool: an absolute, normalized path (no ., .., //), got ${JSON.stringify(path)}`);
  }
  return path.replace(/\/+$/, '') || '/';
}

/** Directory of `kind` ('push' | 'fetch') for `archive` under `spool`, created (mode 0700) when missing. */
export async function spoolDir(spool: string, archive: string, kind: 'push' | 'fetch'): Promise<string> {
  const dir = join(spool, archive, kind);
  await mkdir(dir, { recursive: true, mode: 0o700 });
  return dir;
}

/** Writes `content` to `path` through a temporary file and a rename (readers never see a partial file). */
export async function writeAtomically(path: string, content: string | Buffer): Promise<void> {
  const temp = `${path}.tmp-${process.pid}`;
  await writeFile(temp, content, { mode: 0o600 });
  await rename(temp, path);
}

/** Reads a file, or null when it does not exist. */
export async function readIfExists(path: string): Promise<string | null> {
  try {
    return await readFile(path, 'utf8');
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return null;
    throw error;
  }
}

/**
 * A lock file holding the pid of the one process (pusher or prefetcher) working on a spool directory. Taken with
 * O_EXCL; a lock whose pid no longer runs this CLI (killed with SIGKILL, machine restarted) is stale and taken over.
 */
export class SpoolLock {
  constructor(readonly path: string) {}

  /** The pid holding the lock when that process still runs, else null. */
  async holder(): Promise<number | null> {
    const text = await readIfExists(this.path);
    const pid = Number(text?.trim());
    if (!Number.isInteger(pid) || pid <= 0) return null;
    return processRuns(pid) ? pid : null;
  }

  /** Takes the lock for this process. @returns false when another live process holds it. */
  async acquire(): Promise<boolean> {
    for (let attempt = 0; attempt < 3; attempt++) {
      try {
        const handle = await open(this.path, 'wx', 0o600);
        await handle.writeFile(String(process.pid));
        await handle.close();
        return true;
      } catch (error) {
        if ((error as NodeJS.ErrnoException).code !== 'EEXIST') throw error;
        if ((await this.holder()) !== null) return false;
        // stale: the holder died; whoever removes it first retries the O_EXCL create
        await rm(this.path, { force: true });
      }
    }
    return false;
  }

  /** Releases the lock if this process holds it. */
  async release(): Promise<void> {
    if ((await readIfExists(this.path))?.trim() === String(process.pid)) await rm(this.path, { force: true });
  }
}

/** True when `pid` is alive and is a node process running the WAL CLI (guards against a recycled pid). */
function processRuns(pid: number): boolean {
  try {
    process.kill(pid, 0);
  } catch (error) {
    return (error as NodeJS.ErrnoException).code === 'EPERM';
  }
  try {
    const cmdline = readFileSync(`/proc/${pid}/cmdline`, 'utf8');
    return cmdline.includes('wal-cli');
  } catch {
    return true; // no /proc: trust kill(0)
  }
}

/**
 * Starts a detached WAL CLI process (`wal-pusher` or `wal-prefetch`) with this process's environment, its output
 * appended to `logFile`. The caller does not wait for it.
 */
export function spawnDetached(args: string[], logFile: string): void {
  const { spawn } = require('node:child_process') as typeof import('node:child_process');
  const log = openSync(logFile, 'a', 0o600);
  try {
    const child = spawn(process.execPath, [resolve(__dirname, 'wal-cli.js'), ...args], {
      detached: true,
      stdio: ['ignore', log, log],
      env: process.env,
    });
    child.unref();
  } finally {
    closeSync(log);
  }
}

/** SHA-256 (hex) and size in bytes of a regular file, read in 1 MiB blocks. @throws when it is not a regular file */
export async function sha256OfFile(path: string): Promise<{ sha256: string; bytes: number }> {
  const s = await stat(path);
  if (!s.isFile()) throw new Error(`${path} is not a regular file`);
  const hash = (require('node:crypto') as typeof import('node:crypto')).createHash('sha256');
  const handle = await open(path, 'r');
  let bytes = 0;
  try {
    for await (const chunk of handle.createReadStream({ highWaterMark: 1 << 20, autoClose: false })) {
      hash.update(chunk as Buffer);
      bytes += (chunk as Buffer).length;
    }
  } finally {
    await handle.close();
  }
  return { sha256: hash.digest('hex'), bytes };
}

/** Resolves after `ms` milliseconds. */
export function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}
