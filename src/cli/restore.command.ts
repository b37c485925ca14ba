import { resolve } from 'node:path';
import { Command, Option } from 'nest-commander';
import { JobStatus } from '../jobs/job-status';
import { BackupsService } from '../backup/backups.service';
import { DrError } from '../errors/dr-error';
import { validateNested } from '../errors/validation';
import { CreateRecoveryDto } from '../recovery/dto/recovery.dto';
import type { RecoveryEntity } from '../recovery/recovery.entity';
import { RecoveryService } from '../recovery/recovery.service';
import { CliCommand } from './cli-command';
import { EXIT, setExitCode } from './cli-errors';
import { compact, formatBytes, formatDuration, formatFields, requireUuid } from './format';
import { waitForJob } from './job-waiter';

/** Options of `dr restore`, as parsed. */
export interface RestoreOptions {
  path?: string;
  url?: string;
  create?: boolean;
  passwordSecret?: string;
  noOwner?: boolean;
  overwrite?: boolean;
}

/**
 * The restore target from the options: `{path}` for directory backups, `{url, ...}` for database backups.
 * @throws DrError VALIDATION_FAILED when the options do not match the backup's engine.
 */
export function restoreTarget(engine: string, o: RestoreOptions): Record<string, unknown> {
  const database = engine === 'postgres' || engine === 'mysql';
  const wrong = database
    ? [['--path', o.path], ...(engine === 'postgres' ? [] : [['--no-owner', o.noOwner]])]
    : [
        ['--url', o.url],
        ['--create', o.create],
        ['--password-secret', o.passwordSecret],
        ['--no-owner', o.noOwner],
      ];
  const problems = wrong
    .filter(([, value]) => value !== undefined && value !== false)
    .map(([flag]) => ({ field: String(flag), message: `not used when restoring a ${engine} backup` }));
  if (database && o.url === undefined) problems.push({ field: '--url', message: `required to restore a ${engine} backup` });
  if (!database && o.path === undefined) problems.push({ field: '--path', message: `required to restore a ${engine} backup` });
  if (problems.length) throw DrError.validation(problems);
  return database ? compact({ url: o.url, passwordSecret: o.passwordSecret, create: o.create, noOwner: o.noOwner || undefined }) : { path: resolve(o.path!) };
}

/** `dr restore <backupId>`: restores a completed backup into a directory or a database and waits; exit 0/1. */
@Command({
  name: 'restore',
  arguments: '<backupId>',
  description: 'Restore a completed backup into a directory (--path) or a database (--url) and wait for it',
  argsDescription: { backupId: 'id of a COMPLETED backup' },
})
export class RestoreCommand extends CliCommand {
  constructor(
    private readonly backups: BackupsService,
    private readonly recoveries: RecoveryService,
  ) {
    super();
  }

  /** Starts the recovery, follows `bytesRead` (stored bytes), prints the outcome (the failure reason to stderr). */
  async run([backupId]: string[], options: RestoreOptions): Promise<void> {
    const backup = await this.backups.get(requireUuid(backupId, 'backupId'));
    const dto = await validateNested(
      CreateRecoveryDto,
      { backupId: backup.id, type: 'FULL', target: restoreTarget(backup.engine, options), overwrite: options.overwrite ?? false },
      '',
    );
    const created = await this.recoveries.create(dto, 'cli');
    const done = await waitForJob({
      kind: 'restore',
      id: created.id,
      fetch: () => this.recoveries.get(created.id),
      // the CLI's recoveries are non-production: they never wait for approval, so their status is a JobStatus
      progress: (r: RecoveryEntity) => ({ status: r.status as JobStatus, bytes: r.bytesRead }),
      totalBytes: backup.storedBytes,
    });
    process.stdout.write(`${summary(done)}\n`);
    if (done.status === JobStatus.FAILED) {
      process.stderr.write(`restore ${done.id} FAILED: ${done.error ?? 'no reason recorded'}\n`);
      setExitCode(EXIT.FAILED);
    }
  }

  @Option({ flags: '-p, --path <dir>', description: 'directory to restore into (below DR_RESTORE_ROOTS)' })
  parsePath(value: string): string {
    return value;
  }

  @Option({ flags: '--url <url>', description: 'database to restore into: postgresql://user@host:port/db or mysql://user@host:port/db' })
  parseUrl(value: string): string {
    return value;
  }

  @Option({ flags: '--create', description: 'create the target database when it does not exist' })
  parseCreate(): boolean {
    return true;
  }

  @Option({ flags: '--password-secret <ref>', description: 'password of the target server: env:NAME or file:/path' })
  parsePasswordSecret(value: string): string {
    return value;
  }

  /** `--no-owner` is a commander negation (attribute `owner`, default true); the default false keeps it opt-in. */
  @Option({ flags: '--no-owner', name: 'noOwner', defaultValue: false, description: 'do not restore object ownership (pg_restore --no-owner)' })
  parseNoOwner(): boolean {
    return true;
  }

  @Option({ flags: '--overwrite', description: 'restore over a non-empty directory or into an existing database' })
  parseOverwrite(): boolean {
    return true;
  }
}

/** The outcome of a restore as `key: value` lines. */
export function summary(r: RecoveryEntity): string {
  return formatFields([
    ['id', r.id],
    ['backupId', r.backupId],
    ['status', r.status],
    ['target', JSON.stringify(r.target)],
    ['bytesRestored', `${r.bytesRestored} (${formatBytes(r.bytesRestored)})`],
    ['bytesRead', `${r.bytesRead} (${formatBytes(r.bytesRead)})`],
    ['duration', formatDuration(r.durationMs)],
  ]);
}
