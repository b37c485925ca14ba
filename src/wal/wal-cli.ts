import { isAbsolute, resolve } from 'node:path';
import type { SecretSource } from '../secrets/secret-source';
import { CliSecretSource, loadWalClientConfig, openWalArchiveStore, WalConfigError } from './wal-client-config';
import { InvalidWalFileNameError, WalConflictError, WalFileNotArchivedError } from './wal-archive-store';

/** What `dr wal-push` / `dr wal-fetch` take from their environment ({@link walEnvironment}). */
export interface WalCliEnvironment {
  /** `DR_WAL_CONFIG`: the config file when `--config` is not given. */
  configPath: string | undefined;
  /** `DR_WAL_TIMING=1`: print how long the call took on stderr. */
  timing: boolean;
  /** Secret references of the config, under the allow-list of `DR_SECRET_ENV_PREFIX` / `DR_SECRET_DIRS`. */
  secrets: SecretSource;
}

/** Reads the environment of `dr wal-push` / `dr wal-fetch`: the one place they read it. */
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
  dr wal-push <path> [--config <file>]             archive_command = 'dr wal-push %p --config /etc/dr/wal.json'
  dr wal-fetch <name> <path> [--config <file>]     restore_command = 'dr wal-fetch %f %p --config /etc/dr/wal.json'
The config file may also be given by DR_WAL_CONFIG. 'dr wal-push --help' and 'dr wal-fetch --help' say more.`;

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
export const WAL_HELP: Record<'wal-push' | 'wal-fetch', string> = {
  'wal-push': `Usage: dr wal-push <path> [--config <file>]

Archives one WAL segment or history file into the WAL archive: PostgreSQL's archive_command,
  archive_command = 'dr wal-push %p --config /etc/dr/wal.json'
The file is compressed (zstd), encrypted when the config says so (age), stored under wal/<archive>/, and its
SHA-256 recorded. Pushing a file already archived with the same SHA-256 succeeds (PostgreSQL may retry);
a different file under an archived name is refused.

Arguments:
  path              the file to archive (%p: relative to the data directory, or absolute)

${CONFIG_HELP}

Exit codes: 0 archived (or already archived, same content); 2 failed (PostgreSQL retries later);
64 bad usage or config.`,
  'wal-fetch': `Usage: dr wal-fetch <name> <path> [--config <file>]

Restores one archived WAL file for a recovering server: PostgreSQL's restore_command,
  restore_command = 'dr wal-fetch %f %p --config /etc/dr/wal.json'
The object is read back, its SHA-256 checked against the recorded one, decrypted and decompressed, and written
to <path> (through a temporary file, renamed when complete).

Arguments:
  name              the WAL file name (%f), e.g. 000000010000000000000003 or 00000002.history
  path              where to write it (%p: relative to the data directory, or absolute)

${CONFIG_HELP}

Exit codes: 0 restored; 1 not archived (quiet: PostgreSQL probes for files that do not exist);
2 failed (checksum mismatch, storage error); 64 bad usage or config.`,
};

/**
 * `dr wal-push %p` and `dr wal-fetch %f %p`: the archive_command and restore_command of a PostgreSQL cluster.
 * Deliberately light: no Nest application, no metadata database, only the storage driver and the zstd/age
 * streams, so archiving keeps working while the service is down and each call starts fast.
 * `DR_WAL_TIMING=1` prints the time spent (ms) on stderr.
 * @returns the exit code ({@link WAL_EXIT}).
 */
export async function walMain(argv: string[], environment: WalCliEnvironment = walEnvironment()): Promise<number> {
  const [command, ...rest] = argv;
  if ((command === 'wal-push' || command === 'wal-fetch') && rest.some((a) => a === '--help' || a === '-h')) {
    process.stdout.write(`${WAL_HELP[command]}\n`);
    return WAL_EXIT.OK;
  }
  const positional: string[] = [];
  let configPath = environment.configPath;
  for (let i = 0; i < rest.length; i++) {
    if (rest[i] === '--config') configPath = rest[++i];
    else if (rest[i].startsWith('--config=')) configPath = rest[i].slice('--config='.length);
    else positional.push(rest[i]);
  }
  const expected = command === 'wal-push' ? 1 : command === 'wal-fetch' ? 2 : -1;
  if (expected < 0 || positional.length !== expected || !configPath) {
    process.stderr.write(`${!configPath && expected > 0 ? 'dr: no config file (--config <file> or DR_WAL_CONFIG)\n' : ''}${USAGE}\n`);
    return WAL_EXIT.USAGE;
  }
  const started = process.hrtime.bigint();
  // The AWS SDK's one-time "Node.js version support" notice would land in the PostgreSQL log on every call.
  process.env.AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED ??= 'true';
  try {
    const config = await loadWalClientConfig(configPath);
    const { store } = await openWalArchiveStore(config, { encrypt: command === 'wal-push', decrypt: command === 'wal-fetch' }, environment.secrets);
    if (command === 'wal-push') {
      // %p is relative to the data directory, the archiver's working directory.
      const path = isAbsolute(positional[0]) ? positional[0] : resolve(positional[0]);
      const result = await store.push(path);
      if (result.outcome === 'already-archived') process.stderr.write(`dr wal-push: ${result.record.name} already archived with the same sha256\n`);
    } else {
      await store.fetch(positional[0], resolve(positional[1]));
    }
    if (environment.timing) {
      process.stderr.write(`dr ${command} ${positional[0]}: ${Number(process.hrtime.bigint() - started) / 1e6} ms (process uptime ${Math.round(process.uptime() * 1000)} ms)\n`);
    }
    return WAL_EXIT.OK;
  } catch (error) {
    if (error instanceof WalFileNotArchivedError) return WAL_EXIT.NOT_FOUND;
    const message = (error as Error).message;
    process.stderr.write(`dr ${command}: ${message}\n`);
    if (error instanceof WalConfigError || error instanceof InvalidWalFileNameError) return WAL_EXIT.USAGE;
    if (error instanceof WalConflictError) return WAL_EXIT.FAILED;
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
