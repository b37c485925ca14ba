import { basename, dirname, isAbsolute, join, resolve } from 'node:path';
import type { SecretSource } from '../secrets/secret-source';
import { CliSecretSource, loadWalClientConfig, openWalArchiveStore } from './wal-client-config';
import { InvalidWalFileNameError, WalConfigError, WalFileNotArchivedError } from './wal-errors';
import { parseWalFileName } from './wal-names';
import { checkSpoolPath, DEFAULT_SPOOL_DIRNAME, spoolDir } from './wal-spool';

// Each call is a process PostgreSQL waits for: the modules of a branch are loaded only when it runs (the
// asynchronous wal-push loads neither zstd nor a storage driver).
const lazy = {
  asyncPush: () => require('./wal-async-push') as typeof import('./wal-async-push'),
  prefetch: () => require('./wal-prefetch') as typeof import('./wal-prefetch'),
};

/** What `dr wal-push` / `dr wal-fetch` take from their environment ({@link walEnvironment}). */
export interface WalCliEnvironment {
  /** `DR_WAL_CONFIG`: the config file when `--config` is not given. */
  configPath: string | undefined;
  /** `DR_WAL_TIMING=1`: print how long the call took on stderr. */
  timing: boolean;
  /** Secret references of the config, under the allow-list of `DR_SECRET_ENV_PREFIX` / `DR_SECRET_DIRS`. */
  secrets: SecretSource;
}

/**
 * Reads the environment of `dr wal-push` / `dr wal-fetch`: the one place they read it (a started pusher or
 * prefetcher inherits the same environment).
 */
export function walEnvironment(env: NodeJS.ProcessEnv = process.env, cwd = process.cwd()): WalCliEnvironment {
  return { configPath: env.DR_WAL_CONFIG, timing: env.DR_WAL_TIMING === '1', secrets: new CliSecretSource(env, cwd) };
}

/** Exit codes of `dr wal-push` / `dr wal-fetch`. */
export const WAL_EXIT = {
  OK: 0,
  /** wal-fetch: the file is not archived (PostgreSQL probes for history files that do not exist: quiet). */
  NOT_FOUND: 1,
  /** A failure: PostgreSQL retries the archive_command later / the restore fails. */
  FAILED: 2,
  /** Bad usage or config. */
  USAGE: 64,
} as const;

const USAGE = `usage:
  dr wal-push <path> [--config <file>] [--async [--parallel N] [--timeout S] [--spool DIR]]
                                                   archive_command = 'dr wal-push %p --config /etc/dr/wal.json'
  dr wal-fetch <name> <path> [--config <file>] [--prefetch N [--parallel N] [--spool DIR]]
                                                   restore_command = 'dr wal-fetch %f %p --config /etc/dr/wal.json'
  dr wal-pusher --pg-wal <dir> [--config <file>] [--parallel N] [--idle-exit S] [--spool DIR]
The config file may also be given by DR_WAL_CONFIG. 'dr wal-push --help', 'dr wal-fetch --help' and
'dr wal-pusher --help' say more.`;

const CONFIG_HELP = `Options:
  --config <file>   the WAL archive's client config (JSON; default: $DR_WAL_CONFIG), as
                    GET /wal-archives/{id}/client-config returns it:
                    {"archive":"main","storage":{"kind":"local","settings":{"path":"/srv/dr"}},
                     "encryption":{"recipients":["age1..."]},"identitySecret":"file:/etc/dr/secrets/wal-identity.txt"}
                    storage kinds: local, s3, azure-blob, gcs (settings as in POST /storage-locations);
                    secrets only as references the allow-list below permits: env:DRS_NAME or a file
                    under DR_SECRET_DIRS (never DR_* variables or the service's own keys; exit 64)
  -h, --help        this help

Environment:
  DR_WAL_CONFIG         the config file when --config is not given
  DR_SECRET_ENV_PREFIX  variables the config may name start with this (default DRS_)
  DR_SECRET_DIRS        directories (: or , separated) whose files it may name (default DR_DATA_DIR/secrets,
                        DR_DATA_DIR relative to the working directory: set it, e.g. /etc/dr/secrets)
  DR_WAL_TIMING=1       print the time the call took (ms) on stderr

Runs without the service and without its metadata database (docs/pitr.md).`;

/** `dr wal-push --help` / `dr wal-fetch --help`: what each command does, its arguments, options and exit codes. */
export const WAL_HELP: Record<'wal-push' | 'wal-fetch' | 'wal-pusher', string> = {
  'wal-push': `Usage: dr wal-push <path> [--config <file>]

Archives one WAL segment or history file into the WAL archive: PostgreSQL's archive_command,
  archive_command = 'dr wal-push %p --config /etc/dr/wal.json'
The file is compressed (zstd), encrypted when the config says so (age), stored under wal/<archive>/, and its
SHA-256 recorded. Pushing a file already archived with the same SHA-256 succeeds (PostgreSQL may retry);
a different file under an archived name is refused.

Arguments:
  path              the file to archive (%p: relative to the data directory, or absolute)

Asynchronous mode (pgBackRest's archive-async): a long-running pusher stores every file PostgreSQL marked
ready (pg_wal/archive_status/*.ready) ahead, several at a time, with one storage client; this call starts it
when none runs and exits 0 only once the pusher stored THIS file durably (data and SHA-256 record), or 2 with
the pusher's reason. Nothing is acknowledged without being stored.
  --async           use the pusher
  --parallel N      files the pusher stores at the same time (1-32, default 4)
  --timeout S       give up (exit 2; PostgreSQL retries) when the file is not stored after S s (default 60)
  --idle-exit S     a pusher started here exits after S s with nothing to archive (default 60)
  --spool DIR       status files and the pusher's lock and log (absolute; default <pg_wal>/dr-spool)

${CONFIG_HELP}

Exit codes: 0 archived (or already archived, same content); 2 failed (PostgreSQL retries later);
64 bad usage or config.`,
  'wal-pusher': `Usage: dr wal-pusher --pg-wal <dir> [--config <file>] [--parallel N] [--idle-exit S] [--spool DIR]

The asynchronous pusher of 'dr wal-push --async', run as its own service (e.g. a systemd unit beside the
cluster) instead of being started by the first wal-push call: stores every file of <dir> (the cluster's
pg_wal, absolute) that has a .ready status, oldest first, --parallel at a time, and writes <file>.ok or
<file>.error under <spool>/<archive>/push for the waiting wal-push calls. One pusher per spool and archive (a
lock file); --idle-exit 0 (the default here) runs until stopped (SIGTERM).

${CONFIG_HELP}`,
  'wal-fetch': `Usage: dr wal-fetch <name> <path> [--config <file>]

Restores one archived WAL file for a recovering server: PostgreSQL's restore_command,
  restore_command = 'dr wal-fetch %f %p --config /etc/dr/wal.json'
The object is read back, its SHA-256 checked against the recorded one, decrypted and decompressed, and written
to <path> (through a temporary file, renamed when complete).

Arguments:
  name              the WAL file name (%f), e.g. 000000010000000000000003 or 00000002.history
  path              where to write it (%p: relative to the data directory, or absolute)

Prefetch (pgBackRest's asynchronous archive-get): a prefetcher started by the first call keeps the N segments
that follow the one requested in the spool, fetched and checked several at a time; a spooled segment is handed
over (renamed to <path>) only when its size and SHA-256 match its archive record, else fetched directly.
  --prefetch N      segments kept ahead (1-64; 0, the default: no prefetch); the spool holds up to N segments
  --parallel N      segments fetched at the same time (1-32, default 4)
  --idle-exit S     the prefetcher exits, emptying the spool, S s after the last request (default 30)
  --spool DIR       spooled segments, lock and log (absolute; default <pg_wal>/dr-spool, the same file
                    system as <path>, so a hand-over is a rename)

${CONFIG_HELP}

Exit codes: 0 restored; 1 not archived (quiet: PostgreSQL probes for files that do not exist);
2 failed (checksum mismatch, storage error); 64 bad usage or config.`,
};

/** Options of the WAL commands, as parsed from argv. */
interface WalArgs {
  positional: string[];
  configPath?: string;
  async: boolean;
  spool?: string;
  parallel: number;
  timeoutSeconds: number;
  prefetch: number;
  idleExitSeconds?: number;
  pgWal?: string;
}

/** Raised for bad command-line usage (exit 64). */
class UsageError extends Error {}

/** Bounds of the numeric options: [min, max]. */
const NUMERIC_OPTIONS: Record<string, [number, number]> = {
  '--parallel': [1, 32],
  '--timeout': [1, 86_400],
  '--prefetch': [0, 64],
  '--idle-exit': [0, 86_400],
};

function parseArgs(rest: string[], defaultConfigPath: string | undefined): WalArgs {
  const args: WalArgs = { positional: [], configPath: defaultConfigPath, async: false, parallel: 4, timeoutSeconds: 60, prefetch: 0 };
  for (let i = 0; i < rest.length; i++) {
    const [flag, inline] =
      rest[i].startsWith('--') && rest[i].includes('=')
        ? [rest[i].slice(0, rest[i].indexOf('=')), rest[i].slice(rest[i].indexOf('=') + 1)]
        : [rest[i], undefined];
    const value = (): string => {
      const v = inline ?? rest[++i];
      if (v === undefined) throw new UsageError(`${flag} needs a value`);
      return v;
    };
    if (flag === '--config') args.configPath = value();
    else if (flag === '--async') args.async = true;
    else if (flag === '--spool') args.spool = checkSpoolPath(value());
    else if (flag === '--pg-wal') {
      const v = value();
      if (!isAbsolute(v)) throw new UsageError('--pg-wal: an absolute path');
      args.pgWal = v;
    } else if (flag in NUMERIC_OPTIONS) {
      const v = value();
      const n = Number(v);
      const [min, max] = NUMERIC_OPTIONS[flag];
      if (!/^\d+$/.test(v) || n < min || n > max) throw new UsageError(`${flag}: an integer from ${min} to ${max}, got ${JSON.stringify(v)}`);
      if (flag === '--parallel') args.parallel = n;
      else if (flag === '--timeout') args.timeoutSeconds = n;
      else if (flag === '--prefetch') args.prefetch = n;
      else args.idleExitSeconds = n;
    } else if (flag.startsWith('--')) throw new UsageError(`unknown option ${flag}`);
    else args.positional.push(rest[i]);
  }
  return args;
}

const POSITIONAL: Record<string, number> = { 'wal-push': 1, 'wal-fetch': 2, 'wal-pusher': 0, 'wal-prefetch': 0 };

/**
 * `dr wal-push %p` and `dr wal-fetch %f %p`: the archive_command and restore_command of a PostgreSQL cluster,
 * synchronous (one file per call) or with `--async` / `--prefetch N` backed by a long-running pusher / prefetcher
 * (`dr wal-pusher`, `wal-prefetch`: wal-async-push.ts, wal-prefetch.ts).
 * Deliberately light: no Nest application, no metadata database, only the storage driver and the zstd/age
 * streams, so archiving keeps working while the service is down and each call starts fast.
 * `DR_WAL_TIMING=1` prints the time spent (ms) on stderr.
 * @returns the exit code ({@link WAL_EXIT}).
 */
export async function walMain(argv: string[], environment: WalCliEnvironment = walEnvironment()): Promise<number> {
  const [command, ...rest] = argv;
  if ((command === 'wal-push' || command === 'wal-fetch' || command === 'wal-pusher') && rest.some((a) => a === '--help' || a === '-h')) {
    process.stdout.write(`${WAL_HELP[command]}\n`);
    return WAL_EXIT.OK;
  }
  let args: WalArgs;
  try {
    args = parseArgs(rest, environment.configPath);
  } catch (error) {
    process.stderr.write(`dr ${command}: ${(error as Error).message}\n${USAGE}\n`);
    return WAL_EXIT.USAGE;
  }
  const { positional, configPath } = args;
  const expected = POSITIONAL[command] ?? -1;
  if (
    expected < 0 ||
    positional.length !== expected ||
    !configPath ||
    (command === 'wal-pusher' && !args.pgWal) ||
    (command === 'wal-prefetch' && (!args.spool || !args.prefetch))
  ) {
    process.stderr.write(`${!configPath && expected >= 0 ? 'dr: no config file (--config <file> or DR_WAL_CONFIG)\n' : ''}${USAGE}\n`);
    return WAL_EXIT.USAGE;
  }
  const started = process.hrtime.bigint();
  // The AWS SDK's one-time "Node.js version support" notice would land in the PostgreSQL log on every call.
  process.env.AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED ??= 'true';
  let from = 'archive';
  try {
    const config = await loadWalClientConfig(configPath);
    const absoluteConfig = resolve(configPath);
    if (command === 'wal-push') {
      // %p is relative to the data directory, the archiver's working directory.
      const path = isAbsolute(positional[0]) ? positional[0] : resolve(positional[0]);
      if (!parseWalFileName(basename(path)))
        throw new InvalidWalFileNameError(`"${basename(path)}" is not a WAL segment, .partial, .history or .backup file name`);
      if (args.async) {
        const ok = await lazy.asyncPush().pushAsync({
          path,
          spool: args.spool ?? join(dirname(path), DEFAULT_SPOOL_DIRNAME),
          archive: config.archive,
          configPath: absoluteConfig,
          parallel: args.parallel,
          timeoutMs: args.timeoutSeconds * 1000,
          idleExitMs: (args.idleExitSeconds ?? 60) * 1000,
        });
        from = 'pusher';
        if (ok.outcome === 'already-archived') process.stderr.write(`dr wal-push: ${ok.name} already archived with the same sha256\n`);
      } else {
        const { store } = await openWalArchiveStore(config, { encrypt: true, decrypt: false }, environment.secrets);
        const result = await store.push(path);
        if (result.outcome === 'already-archived') process.stderr.write(`dr wal-push: ${result.record.name} already archived with the same sha256\n`);
      }
    } else if (command === 'wal-fetch') {
      const destination = resolve(positional[1]);
      const spooled =
        args.prefetch > 0
          ? await lazy.prefetch().fetchFromSpool({
              name: positional[0],
              destination,
              spool: args.spool ?? join(dirname(destination), DEFAULT_SPOOL_DIRNAME),
              archive: config.archive,
              configPath: absoluteConfig,
              depth: args.prefetch,
              parallel: args.parallel,
              idleExitMs: (args.idleExitSeconds ?? 30) * 1000,
            })
          : null;
      if (spooled) from = 'spool';
      else {
        const { store } = await openWalArchiveStore(config, { encrypt: false, decrypt: true }, environment.secrets);
        await store.fetch(positional[0], destination);
      }
    } else if (command === 'wal-pusher') {
      const pgWal = args.pgWal!;
      const dir = await spoolDir(args.spool ?? join(pgWal, DEFAULT_SPOOL_DIRNAME), config.archive, 'push');
      const { store } = await openWalArchiveStore(config, { encrypt: true, decrypt: false, zstdWorkers: 1 }, environment.secrets).catch(
        async (error: Error) => {
          // the waiting wal-push calls report why no pusher can run (a refused secret reference...), not a timeout
          await lazy.asyncPush().reportPusherFailure(dir, error, error instanceof WalConfigError);
          throw error;
        },
      );
      const log = (line: string) => process.stdout.write(`${line}\n`);
      log(`${new Date().toISOString()} pusher ${process.pid} started: ${pgWal}, ${args.parallel} at a time`);
      const ran = await lazy
        .asyncPush()
        .runWalPusher(store, { pgWal, dir, parallel: args.parallel, idleExitMs: (args.idleExitSeconds ?? 0) * 1000, config: absoluteConfig, log });
      log(`${new Date().toISOString()} pusher ${process.pid} ${ran ? 'ended (idle)' : 'not started: another pusher holds the lock'}`);
    } else {
      const { store } = await openWalArchiveStore(config, { encrypt: false, decrypt: true }, environment.secrets);
      const dir = await spoolDir(args.spool!, config.archive, 'fetch');
      const log = (line: string) => process.stdout.write(`${line}\n`);
      await lazy
        .prefetch()
        .runWalPrefetcher(store, { dir, depth: args.prefetch, parallel: args.parallel, idleExitMs: (args.idleExitSeconds ?? 30) * 1000, log });
    }
    if (environment.timing) {
      process.stderr.write(
        `dr ${command} ${positional[0] ?? ''}: ${Number(process.hrtime.bigint() - started) / 1e6} ms from ${from} (process uptime ${Math.round(process.uptime() * 1000)} ms)\n`,
      );
    }
    return WAL_EXIT.OK;
  } catch (error) {
    if (error instanceof WalFileNotArchivedError) return WAL_EXIT.NOT_FOUND;
    const message = (error as Error).message;
    process.stderr.write(`dr ${command}: ${message}\n`);
    if (error instanceof WalConfigError || error instanceof InvalidWalFileNameError || (error as Error).name === 'PusherConfigError') return WAL_EXIT.USAGE;
    return WAL_EXIT.FAILED;
  }
}

if (require.main === module) {
  walMain(process.argv.slice(2)).then(
    (code) => process.exit(code),
    (error: Error) => {
      process.stderr.write(`dr: ${error.message}\n`);
      process.exit(WAL_EXIT.FAILED);
    },
  );
}
