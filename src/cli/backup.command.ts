import { resolve } from 'node:path';
import { Command, Option } from 'nest-commander';
import type { BackupEntity } from '../backup/backup.entity';
import { JobStatus } from '../jobs/job-status';
import { BackupsService } from '../backup/backups.service';
import { CreateBackupDto } from '../backup/dto/backup.dto';
import { ENGINE_NAMES, EngineName } from '../engines/backup-engine';
import { DrError, FieldProblem } from '../errors/dr-error';
import { validateNested } from '../errors/validation';
import { CliCommand } from './cli-command';
import { EXIT, setExitCode } from './cli-errors';
import { collect, compact, formatBytes, formatDuration, formatFields } from './format';
import { waitForJob } from './job-waiter';

/** Options of `dr backup`, as parsed. */
export interface BackupOptions {
  engine?: string;
  path?: string;
  include?: string[];
  exclude?: string[];
  url?: string;
  passwordSecret?: string;
  tables?: string[];
  paths?: string[];
  plan?: string;
  storageLocation?: string;
}

/** Which engine each source option belongs to (`--storage-location` and `--plan` belong to none). */
const SOURCE_OPTIONS: Record<string, { flag: string; engines: EngineName[] }> = {
  path: { flag: '--path', engines: ['filesystem'] },
  include: { flag: '--include', engines: ['filesystem'] },
  exclude: { flag: '--exclude', engines: ['filesystem'] },
  url: { flag: '--url', engines: ['postgres', 'mysql'] },
  passwordSecret: { flag: '--password-secret', engines: ['postgres', 'mysql'] },
  tables: { flag: '--tables', engines: ['mysql'] },
  paths: { flag: '--paths', engines: ['configuration'] },
};

/**
 * Builds the request of `dr backup` from its options.
 * @throws DrError VALIDATION_FAILED for options that do not fit together or do not fit the engine.
 */
export function backupRequest(o: BackupOptions): CreateBackupDto {
  const given = Object.keys(SOURCE_OPTIONS).filter((k) => o[k as keyof BackupOptions] !== undefined);
  const problems: FieldProblem[] = [];
  if (o.plan) {
    if (o.engine) problems.push({ field: '--plan', message: 'give either --plan or --engine, not both' });
    for (const k of given) problems.push({ field: SOURCE_OPTIONS[k].flag, message: 'not used with --plan (the plan defines the source)' });
    if (o.storageLocation) problems.push({ field: '--storage-location', message: "not used with --plan (the plan's location is used)" });
    if (problems.length) throw DrError.validation(problems);
    return { planId: o.plan };
  }
  if (!o.engine) throw DrError.validation([{ field: '--engine', message: `give --engine (${ENGINE_NAMES.join(', ')}) or --plan` }]);
  for (const k of given) {
    const { flag, engines } = SOURCE_OPTIONS[k];
    if (!engines.includes(o.engine as EngineName)) {
      problems.push({ field: flag, message: `not used by the ${o.engine} engine (it is a ${engines.join(', ')} option)` });
    }
  }
  if (problems.length) throw DrError.validation(problems);
  const sources: Partial<Record<EngineName, Record<string, unknown>>> = {
    filesystem: { path: o.path === undefined ? undefined : resolve(o.path), include: o.include, exclude: o.exclude },
    postgres: { url: o.url, passwordSecret: o.passwordSecret },
    configuration: { paths: o.paths },
    mysql: { url: o.url, passwordSecret: o.passwordSecret, tables: o.tables },
  };
  return { engine: o.engine as EngineName, source: compact(sources[o.engine as EngineName] ?? {}), storageLocationId: o.storageLocation };
}

/** `dr backup`: starts a backup in this process, follows its progress, prints the outcome; exit 0/1. */
@Command({
  name: 'backup',
  description: 'Run a backup now (on demand with --engine, or of a plan with --plan) and wait for it',
})
export class BackupCommand extends CliCommand {
  constructor(private readonly backups: BackupsService) {
    super();
  }

  /** Creates the backup, waits for it, prints its summary to stdout (and the failure reason to stderr). */
  async run(_args: string[], options: BackupOptions): Promise<void> {
    const dto = await validateNested(CreateBackupDto, compact(backupRequest(options)), '');
    const created = await this.backups.create(dto, 'cli');
    const done = await waitForJob({
      kind: 'backup',
      id: created.id,
      fetch: () => this.backups.get(created.id),
      progress: (b: BackupEntity) => ({ status: b.status, bytes: b.progressBytes }),
    });
    process.stdout.write(`${summary(done)}\n`);
    if (done.status === JobStatus.FAILED) {
      process.stderr.write(`backup ${done.id} FAILED: ${done.error ?? 'no reason recorded'}\n`);
      setExitCode(EXIT.FAILED);
    }
  }

  @Option({ flags: '-e, --engine <engine>', description: `backup engine: ${ENGINE_NAMES.join(', ')}`, choices: ENGINE_NAMES })
  parseEngine(value: string): string {
    return value;
  }

  @Option({ flags: '-p, --path <dir>', description: 'filesystem: directory to back up' })
  parsePath(value: string): string {
    return value;
  }

  @Option({ flags: '--include <glob>', description: 'filesystem: include glob, relative to --path (repeatable)' })
  parseInclude(value: string, previous?: string[]): string[] {
    return collect(value, previous);
  }

  @Option({ flags: '--exclude <glob>', description: 'filesystem: exclude glob, relative to --path (repeatable)' })
  parseExclude(value: string, previous?: string[]): string[] {
    return collect(value, previous);
  }

  @Option({ flags: '--url <url>', description: 'postgres: postgresql://user@host:port/db; mysql: mysql://user@host:port/db (no password)' })
  parseUrl(value: string): string {
    return value;
  }

  @Option({ flags: '--password-secret <ref>', description: 'postgres, mysql: where the password is, env:NAME or file:/path' })
  parsePasswordSecret(value: string): string {
    return value;
  }

  @Option({ flags: '--tables <names...>', description: 'mysql: only these tables (default: all)' })
  parseTables(value: string, previous?: string[]): string[] {
    return collect(value, previous);
  }

  @Option({ flags: '--paths <globs...>', description: "configuration: absolute paths or globs, e.g. '/etc/app/*.yml'" })
  parsePaths(value: string, previous?: string[]): string[] {
    return collect(value, previous);
  }

  @Option({ flags: '--plan <planId>', description: 'run the backup plan with this id now' })
  parsePlan(value: string): string {
    return value;
  }

  @Option({ flags: '--storage-location <id>', description: 'storage location id (default: the default location)' })
  parseStorageLocation(value: string): string {
    return value;
  }
}

/** The outcome of a backup as `key: value` lines. */
export function summary(b: BackupEntity): string {
  const durationMs = b.startedAt && b.finishedAt ? b.finishedAt.getTime() - b.startedAt.getTime() : null;
  return formatFields([
    ['id', b.id],
    ['engine', b.engine],
    ['status', b.status],
    ['sizeBytes', b.sizeBytes === null ? null : `${b.sizeBytes} (${formatBytes(b.sizeBytes)})`],
    ['storedBytes', b.storedBytes === null ? null : `${b.storedBytes} (${formatBytes(b.storedBytes)})`],
    ['sha256', b.sha256],
    ['duration', formatDuration(durationMs)],
  ]);
}
