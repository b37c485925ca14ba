import { readdir, rm, stat } from 'node:fs/promises';
import { basename, dirname, join } from 'node:path';
import { parseWalFileName } from './wal-names';
import type { WalArchiveStore } from './wal-archive-store';
import { readIfExists, sha256OfFile, sleep, SpoolLock, spawnDetached, spoolDir, writeAtomically } from './wal-spool';

/**
 * Asynchronous, parallel WAL archiving in the manner of pgBackRest's `archive-async`
 * (https://pgbackrest.org/user-guide.html#async-archiving): one long-running **pusher** per archive and spool
 * stores every file PostgreSQL marked ready (`pg_wal/archive_status/<file>.ready`) ahead of the archive_command
 * calls, several at a time, through one storage client; each `dr wal-push --async <file>` (archive_command) only
 * waits for the pusher's status file of ITS file and exits 0 once the file is durably stored with its commit
 * record (the same {@link WalArchiveStore.push} as the synchronous mode), or non-zero with the pusher's reason.
 *
 * Unlike pgBackRest's `archive-push-queue-max`, nothing is ever acknowledged without being stored: a full pg_wal
 * is the operator's alarm, not a reason to drop WAL silently.
 */

/**
 * What the pusher stored, as `<file>.ok` holds it: four lines, read by wal-push and by the shell fast path of
 * `bin/dr` (which acknowledges without starting Node when line 2 and line 4 match the file and the config):
 * ```
 * dr-wal-ok 1
 * <dev>:<ino>:<size>:<mtime seconds>.<9 digits>   the file as read (GNU `stat -L -c '%d:%i:%s:%.9Y'`), or -
 * <raw sha256> <raw bytes> <stored|already-archived>
 * <absolute path of the config the pusher archives with>
 * ```
 */
export interface PushOk {
  name: string;
  rawSha256: string;
  rawBytes: number;
  outcome: 'stored' | 'already-archived';
  /** Identity of the file in pg_wal, the same before and after it was read; null when it changed. */
  identity: string | null;
  /** Absolute path of the pusher's config. */
  config: string;
}

const OK_MAGIC = 'dr-wal-ok 1';

/** The `.ok` file text of a {@link PushOk}. */
export function formatPushOk(ok: PushOk): string {
  return `${OK_MAGIC}\n${ok.identity ?? '-'}\n${ok.rawSha256} ${ok.rawBytes} ${ok.outcome}\n${ok.config}\n`;
}

/** Parses a `.ok` file. @throws Error for anything else */
export function parsePushOk(name: string, text: string): PushOk {
  const [magic, identity, digest, config] = text.split('\n');
  const [rawSha256, rawBytes, outcome] = (digest ?? '').split(' ');
  if (
    magic !== OK_MAGIC ||
    !/^[0-9a-f]{64}$/.test(rawSha256 ?? '') ||
    !/^\d+$/.test(rawBytes ?? '') ||
    (outcome !== 'stored' && outcome !== 'already-archived')
  ) {
    throw new Error(`${name}.ok is not a status file of this version`);
  }
  return { name, rawSha256, rawBytes: Number(rawBytes), outcome, identity: identity === '-' ? null : identity, config: config ?? '' };
}

/** `dev:ino:size:seconds.nanoseconds` of a file (as GNU `stat -L -c '%d:%i:%s:%.9Y'` prints it). */
async function fileIdentity(path: string): Promise<string> {
  const s = await stat(path, { bigint: true });
  return `${s.dev}:${s.ino}:${s.size}:${s.mtimeNs / 1_000_000_000n}.${(s.mtimeNs % 1_000_000_000n).toString().padStart(9, '0')}`;
}

/** Settings of the pusher. */
export interface WalPusherOptions {
  /** The cluster's WAL directory (`pg_wal`): files are read here, `archive_status/*.ready` says which. */
  pgWal: string;
  /** The spool's `push` directory of this archive ({@link spoolDir}). */
  dir: string;
  /** Files stored at the same time (1-32). */
  parallel: number;
  /** Exit after this many ms with nothing ready and nothing in flight; 0: never (run as its own service). */
  idleExitMs: number;
  /** Rescan interval of archive_status, ms. */
  scanMs?: number;
  /** Absolute path of the config (written into each `.ok`). */
  config: string;
  /** Progress lines (one per file stored or failed). */
  log?: (line: string) => void;
}

/** Order in which ready files are pushed: history files first (a new timeline needs them), then by name (oldest WAL first). */
function pushOrder(a: string, b: string): number {
  const ha = a.endsWith('.history') ? 0 : 1;
  const hb = b.endsWith('.history') ? 0 : 1;
  return ha - hb || (a < b ? -1 : a > b ? 1 : 0);
}

/**
 * Runs the pusher until it has been idle for `idleExitMs` (never returns when 0). Holds the spool's
 * `pusher.pid` lock; returns at once (false) when another live pusher holds it.
 * A file is pushed when its `.ready` exists and it has no `.ok`/`.error` yet; `.ok` is written only after the
 * store acknowledged the data and the commit record (so a pusher killed mid-batch loses nothing acknowledged:
 * the files in flight have no `.ok`, PostgreSQL keeps them `.ready`, and the next pusher stores them again).
 * A failure writes `.error` with the reason; the waiting wal-push reports it and removes it, so the next call
 * retries. Status files of files no longer `.ready` (PostgreSQL marked them `.done`) are removed.
 * @returns true when it ran (and ended idle).
 */
export async function runWalPusher(store: WalArchiveStore, options: WalPusherOptions): Promise<boolean> {
  const lock = new SpoolLock(join(options.dir, 'pusher.pid'));
  if (!(await lock.acquire())) return false;
  const log = options.log ?? (() => undefined);
  const statusDir = join(options.pgWal, 'archive_status');
  const inFlight = new Map<string, Promise<void>>();
  let idleSince = Date.now();
  const release = () => void lock.release();
  process.once('SIGTERM', () => void lock.release().finally(() => process.exit(0)));
  process.once('SIGINT', () => void lock.release().finally(() => process.exit(0)));
  try {
    for (;;) {
      const entries = await readdir(statusDir).catch((error: NodeJS.ErrnoException) => {
        if (error.code === 'ENOENT') throw new Error(`${statusDir} does not exist: --pg-wal must name the cluster's pg_wal`);
        throw error;
      });
      const ready = entries
        .filter((e) => e.endsWith('.ready'))
        .map((e) => e.slice(0, -'.ready'.length))
        .filter((name) => parseWalFileName(name) !== null)
        .sort(pushOrder);
      const readySet = new Set(ready);
      const statusFiles = await readdir(options.dir);
      const done = new Set(statusFiles.filter((f) => f.endsWith('.ok') || f.endsWith('.error')).map((f) => f.replace(/\.(ok|error)$/, '')));
      for (const name of done) {
        // PostgreSQL marked it .done (or it is gone): its status served its purpose
        if (!readySet.has(name) && !inFlight.has(name) && parseWalFileName(name)) {
          await rm(join(options.dir, `${name}.ok`), { force: true });
          await rm(join(options.dir, `${name}.error`), { force: true });
        }
      }
      for (const name of ready) {
        if (inFlight.size >= options.parallel) break;
        if (inFlight.has(name) || done.has(name)) continue;
        const started = Date.now();
        const task = pushOne(store, options, name)
          .then((outcome) => log(`${new Date().toISOString()} ${name} ${outcome} in ${Date.now() - started} ms`))
          .finally(() => inFlight.delete(name));
        inFlight.set(name, task);
      }
      if (ready.length || inFlight.size) idleSince = Date.now();
      else if (options.idleExitMs > 0 && Date.now() - idleSince >= options.idleExitMs) return true;
      await Promise.race([sleep(options.scanMs ?? 50), ...inFlight.values()]);
    }
  } finally {
    await Promise.allSettled(inFlight.values());
    release();
  }
}

/** Stores one ready file and writes its `.ok` (or `.error` with the reason). @returns what happened, for the log */
async function pushOne(store: WalArchiveStore, options: WalPusherOptions, name: string): Promise<string> {
  try {
    const path = join(options.pgWal, name);
    const before = await fileIdentity(path);
    const result = await store.push(path, name);
    const identity = (await fileIdentity(path)) === before ? before : null;
    const ok: PushOk = {
      name,
      rawSha256: result.record.rawSha256,
      rawBytes: result.record.rawBytes,
      outcome: result.outcome,
      identity,
      config: options.config,
    };
    await writeAtomically(join(options.dir, `${name}.ok`), formatPushOk(ok));
    return result.outcome;
  } catch (error) {
    const reason = ((error as Error).message || String(error)).replace(/\s+/g, ' ');
    await writeAtomically(join(options.dir, `${name}.error`), reason);
    return `FAILED: ${reason}`;
  }
}

/** Failure of a pusher that could not start (`pusher.error`): its message, and whether the config is at fault. */
interface PusherFailure {
  message: string;
  config: boolean;
  at: number;
}

/** Records why a pusher could not start, for the wal-push calls waiting on it. */
export async function reportPusherFailure(dir: string, error: Error, config: boolean): Promise<void> {
  const failure: PusherFailure = { message: error.message, config, at: Date.now() };
  await writeAtomically(join(dir, 'pusher.error'), JSON.stringify(failure));
}

/** Raised by {@link pushAsync} when the pusher cannot start because of the config (wal-push exits 64). */
export class PusherConfigError extends Error {
  override name = 'PusherConfigError';
}

/** Settings of one asynchronous `dr wal-push`. */
export interface AsyncPushRequest {
  /** The file PostgreSQL asks to archive (absolute). */
  path: string;
  /** The spool root (`--spool`). */
  spool: string;
  archive: string;
  /** Absolute path of the client config (given to the pusher it starts). */
  configPath: string;
  parallel: number;
  /** Give up (non-zero exit) after this many ms without a status. */
  timeoutMs: number;
  /** Idle time after which a pusher started here exits, ms. */
  idleExitMs: number;
}

/**
 * The archive_command side of asynchronous archiving: makes sure a pusher runs (starts one, detached, when none
 * holds the lock, again if it dies while waiting), then waits for `<file>.ok` or `<file>.error`.
 * `.ok` is accepted only for the file now in pg_wal: the same file (device, inode, size, mtime) as the pusher
 * read, else the same size and SHA-256 (so a status left from another file of the same name never acknowledges
 * this one).
 * @returns the outcome stored; @throws Error with the pusher's reason (`.error`), a mismatch, or a timeout.
 */
export async function pushAsync(request: AsyncPushRequest): Promise<PushOk> {
  const name = basename(request.path);
  const dir = await spoolDir(request.spool, request.archive, 'push');
  const lock = new SpoolLock(join(dir, 'pusher.pid'));
  const deadline = Date.now() + request.timeoutMs;
  let nextLockCheck = 0;
  let spawnedAt: number | null = null;
  for (;;) {
    const okText = await readIfExists(join(dir, `${name}.ok`));
    if (okText !== null) {
      const ok = parsePushOk(name, okText);
      if (ok.config !== request.configPath) {
        // another config's pusher shares this spool: never its acknowledgement
        throw new Error(
          `${name}: the spool ${dir} holds a status written with config ${ok.config}, not ${request.configPath}; give each config its own --spool`,
        );
      }
      // the very file the pusher read (same inode, size and mtime): acknowledged without reading it again
      if (ok.identity && ok.identity === (await fileIdentity(request.path))) return ok;
      const raw = await sha256OfFile(request.path);
      // left in place: the pusher removes it once PostgreSQL marked the file .done (a repeated call finds it)
      if (ok.rawSha256 !== raw.sha256 || ok.rawBytes !== raw.bytes) {
        await rm(join(dir, `${name}.ok`), { force: true });
        throw new Error(
          `${name}: the pusher stored sha256 ${ok.rawSha256} (${ok.rawBytes} bytes) but the file is sha256 ${raw.sha256} (${raw.bytes} bytes); retrying`,
        );
      }
      return ok;
    }
    const errorText = await readIfExists(join(dir, `${name}.error`));
    if (errorText !== null) {
      await rm(join(dir, `${name}.error`), { force: true });
      throw new Error(`the asynchronous pusher could not store ${name}: ${errorText.trim()}`);
    }
    if (Date.now() >= deadline) {
      throw new Error(`${name} not stored within ${Math.round(request.timeoutMs / 1000)} s (pusher log: ${join(dir, 'pusher.log')})`);
    }
    if (Date.now() >= nextLockCheck) {
      const failureText = await readIfExists(join(dir, 'pusher.error'));
      if (failureText !== null && spawnedAt !== null) {
        const failure = JSON.parse(failureText) as PusherFailure;
        if (failure.at >= spawnedAt) {
          await rm(join(dir, 'pusher.error'), { force: true });
          const message = `the asynchronous pusher cannot run: ${failure.message}`;
          throw failure.config ? new PusherConfigError(message) : new Error(message);
        }
      }
      if ((await lock.holder()) === null) {
        spawnedAt = Date.now();
        spawnDetached(
          [
            'wal-pusher',
            '--pg-wal',
            dirname(request.path),
            '--spool',
            request.spool,
            '--config',
            request.configPath,
            '--parallel',
            String(request.parallel),
            '--idle-exit',
            String(request.idleExitMs / 1000),
          ],
          join(dir, 'pusher.log'),
        );
        nextLockCheck = Date.now() + 1000; // give it time to take the lock (or to report why it cannot)
      } else {
        nextLockCheck = Date.now() + 500;
      }
    }
    await sleep(20);
  }
}
