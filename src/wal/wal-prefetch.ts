import { copyFile, readdir, rename, rm } from 'node:fs/promises';
import { basename, dirname, join } from 'node:path';
import type { WalArchiveStore, WalFileRecord } from './wal-archive-store';
import { WalFileNotArchivedError } from './wal-errors';
import { DEFAULT_WAL_SEGMENT_BYTES, parseWalFileName, segmentFileName, segmentNumberOf } from './wal-names';
import { readIfExists, sha256OfFile, sleep, SpoolLock, spawnDetached, spoolDir, writeAtomically } from './wal-spool';

/**
 * Prefetch for `dr wal-fetch` during recovery, in the manner of pgBackRest's asynchronous archive-get: a
 * long-running **prefetcher** keeps the segments that follow the one PostgreSQL last asked for (`depth` of them)
 * in the spool, fetched (and checked: stored SHA-256, age, zstd frame checksum, raw SHA-256) several at a time
 * through one storage client; `dr wal-fetch --prefetch N` hands a spooled segment over by a rename once its raw
 * SHA-256 and size match the archive record the prefetcher stored beside it, so replay waits for a local read
 * instead of a storage round trip and a client start per segment.
 */

/** Settings of the prefetcher. */
export interface WalPrefetcherOptions {
  /** The spool's `fetch` directory of this archive ({@link spoolDir}). */
  dir: string;
  /** Segments kept ahead of the last one requested (1-64); bounds the spool at depth × segment size. */
  depth: number;
  /** Segments fetched at the same time (1-32). */
  parallel: number;
  /** Exit (and empty the spool) once no new segment was requested for this many ms. */
  idleExitMs: number;
  /** Progress lines. */
  log?: (line: string) => void;
}

/** Delay before asking again for a segment the archive did not have (or failed to give), ms. */
const RETRY_MS = 1000;

/**
 * Runs the prefetcher until no new segment was requested for `idleExitMs`, then removes what it spooled. Holds the
 * spool's `prefetcher.pid` lock; returns false at once when another live prefetcher holds it.
 * The request is the `requested` file (a segment name) that each `dr wal-fetch` writes; the window is that
 * segment and the `depth` that follow on its timeline; spooled segments outside the window are removed.
 */
export async function runWalPrefetcher(store: WalArchiveStore, options: WalPrefetcherOptions): Promise<boolean> {
  const lock = new SpoolLock(join(options.dir, 'prefetcher.pid'));
  if (!(await lock.acquire())) return false;
  const log = options.log ?? (() => undefined);
  const inFlight = new Map<string, Promise<void>>();
  const retryAt = new Map<string, number>();
  let segmentBytes: number | undefined;
  let requested: string | null = null;
  let changedAt = Date.now();
  try {
    for (;;) {
      const now = (await readIfExists(join(options.dir, 'requested')))?.trim() ?? null;
      const file = now ? parseWalFileName(now) : null;
      if (now !== requested) {
        requested = now;
        changedAt = Date.now();
      }
      if (Date.now() - changedAt >= options.idleExitMs) return true;
      if (file && file.kind === 'segment') {
        if (segmentBytes === undefined) {
          const record = await store.record(file).catch(() => null);
          // the archive record says the cluster's segment size (initdb --wal-segsize): a power of two, 1 MiB-1 GiB
          const bytes = record?.rawBytes ?? 0;
          segmentBytes = bytes >= 1 << 20 && bytes <= 1 << 30 && (bytes & (bytes - 1)) === 0 ? bytes : DEFAULT_WAL_SEGMENT_BYTES;
        }
        const first = segmentNumberOf(file.segmentHex!, segmentBytes);
        const window: string[] = [];
        for (let i = 0n; i <= BigInt(options.depth); i++) window.push(segmentFileName(file.timeline, first + i, segmentBytes));
        const wanted = new Set(window);
        for (const entry of await readdir(options.dir)) {
          const name = entry.endsWith('.json') ? entry.slice(0, -'.json'.length) : entry;
          if (parseWalFileName(name)?.kind === 'segment' && !wanted.has(name) && !inFlight.has(name)) await rm(join(options.dir, entry), { force: true });
        }
        // the requested segment itself is fetched by wal-fetch directly when it is not spooled yet
        for (const name of window.slice(1)) {
          if (inFlight.size >= options.parallel) break;
          if (inFlight.has(name) || (retryAt.get(name) ?? 0) > Date.now()) continue;
          if ((await readIfExists(join(options.dir, `${name}.json`))) !== null) continue;
          const task = fetchOne(store, options.dir, name)
            .then((record) => {
              retryAt.delete(name);
              log(`${new Date().toISOString()} ${name} spooled (${record.rawBytes} bytes)`);
            })
            .catch((error: Error) => {
              retryAt.set(name, Date.now() + RETRY_MS);
              if (!(error instanceof WalFileNotArchivedError)) log(`${new Date().toISOString()} ${name} FAILED: ${error.message}`);
            })
            .finally(() => inFlight.delete(name));
          inFlight.set(name, task);
        }
      }
      await Promise.race([sleep(50), ...inFlight.values()]);
    }
  } finally {
    await Promise.allSettled(inFlight.values());
    for (const entry of await readdir(options.dir).catch(() => [] as string[])) {
      const name = entry.endsWith('.json') ? entry.slice(0, -'.json'.length) : entry;
      if (parseWalFileName(name)) await rm(join(options.dir, entry), { force: true });
    }
    await lock.release();
  }
}

/** Fetches one segment into the spool (verified, renamed into place), then its record beside it (the commit point). */
async function fetchOne(store: WalArchiveStore, dir: string, name: string): Promise<WalFileRecord> {
  const record = await store.fetch(name, join(dir, name));
  await writeAtomically(join(dir, `${name}.json`), JSON.stringify(record));
  return record;
}

/** Settings of one `dr wal-fetch --prefetch N`. */
export interface PrefetchRequest {
  /** `%f` and `%p` (absolute). */
  name: string;
  destination: string;
  /** The spool root (`--spool`). */
  spool: string;
  archive: string;
  /** Absolute path of the client config (given to the prefetcher it starts). */
  configPath: string;
  depth: number;
  parallel: number;
  idleExitMs: number;
}

/**
 * The restore_command side of prefetch, for segments (history and partial files are always fetched directly):
 * records the request, starts a prefetcher when none runs, and hands the segment over from the spool when it is
 * there and its size and raw SHA-256 match its archive record (a spooled file that does not match is removed).
 * @returns the record when the segment came from the spool; null when the caller must fetch it directly.
 */
export async function fetchFromSpool(request: PrefetchRequest): Promise<WalFileRecord | null> {
  if (parseWalFileName(request.name)?.kind !== 'segment') return null;
  const dir = await spoolDir(request.spool, request.archive, 'fetch');
  await writeAtomically(join(dir, 'requested'), request.name);
  if ((await new SpoolLock(join(dir, 'prefetcher.pid')).holder()) === null) {
    spawnDetached(
      [
        'wal-prefetch',
        '--spool',
        request.spool,
        '--config',
        request.configPath,
        '--prefetch',
        String(request.depth),
        '--parallel',
        String(request.parallel),
        '--idle-exit',
        String(request.idleExitMs / 1000),
      ],
      join(dir, 'prefetcher.log'),
    );
  }
  const recordText = await readIfExists(join(dir, `${request.name}.json`));
  if (recordText === null) return null;
  const spooled = join(dir, request.name);
  try {
    const record = JSON.parse(recordText) as WalFileRecord;
    const raw = await sha256OfFile(spooled);
    if (record.name !== request.name || raw.sha256 !== record.rawSha256 || raw.bytes !== record.rawBytes) {
      throw new Error(`spooled ${request.name} is sha256 ${raw.sha256} (${raw.bytes} bytes), archived ${record.rawSha256} (${record.rawBytes} bytes)`);
    }
    await moveInto(spooled, request.destination);
    await rm(join(dir, `${request.name}.json`), { force: true });
    return record;
  } catch (error) {
    await rm(spooled, { force: true });
    await rm(join(dir, `${request.name}.json`), { force: true });
    process.stderr.write(`dr wal-fetch: ${(error as Error).message}; fetching it from the archive\n`);
    return null;
  }
}

/** Renames `from` to `to`; across file systems copies to a temporary file beside `to`, then renames. */
async function moveInto(from: string, to: string): Promise<void> {
  try {
    await rename(from, to);
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== 'EXDEV') throw error;
    const temp = join(dirname(to), `.${basename(to)}.dr-fetch-${process.pid}`);
    await copyFile(from, temp);
    await rename(temp, to);
    await rm(from, { force: true });
  }
}
