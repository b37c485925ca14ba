import { chmod, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { Injectable } from '@nestjs/common';
import { Type } from 'class-transformer';
import { IsBoolean, IsIn, IsInt, IsISO8601, IsOptional, IsString, IsUUID, Matches, Max, MaxLength, Min, ValidateNested } from 'class-validator';
import { AppConfig } from '../config/app-config';
import { DrError } from '../errors/dr-error';
import { SECRET_REF_PATTERN, SecretResolver } from '../secrets/secret-resolver';
import { TargetReservationKey, BackupEngine, BaseBackupWalRange, EngineBackupRun, EngineRestoreResult, EngineRunContext, RestoreCheck } from './backup-engine';
import { BaseBackupTarReader } from './base-backup-tar';
import { IsDatabaseUrl, parseDatabaseUrlField, postgresToolUrl } from './database-url';
import { ProcessRunner } from './process-runner';
import { RestoreDirectoryPolicy } from './restore-directory';
import { extractProven, restoreThroughStaging } from './staged-directory';
import { TarArchiver } from './tar-archiver';

/** `source` of a base backup: a replication connection to the cluster, and the WAL archive it archives into. */
export class PostgresBaseSource {
  /**
   * `postgresql://user@host:port/postgres` of a role with the REPLICATION attribute: no password in the URL, and
   * only the parameters {@link parseDatabaseUrl} allows.
   */
  @IsString()
  @MaxLength(2000)
  @IsDatabaseUrl('postgres', false)
  url: string;

  @IsOptional()
  @IsString()
  @Matches(SECRET_REF_PATTERN, { message: 'passwordSecret must be env:NAME or file:/absolute/path' })
  passwordSecret?: string;

  /** The WAL archive (`POST /wal-archives`) the cluster's archive_command pushes to; recoveries replay from it. */
  @IsUUID('all', { message: 'walArchiveId must be a UUID' })
  walArchiveId: string;
}

/** Where a point-in-time recovery stops: exactly one of the four. */
export class RecoveryTargetDto {
  /** `recovery_target_time`: ISO 8601 with a zone offset, e.g. `2026-11-24T15:32:10.123Z`. */
  @IsOptional()
  @IsISO8601({ strict: true }, { message: 'time must be an ISO 8601 timestamp' })
  time?: string;

  /** `recovery_target_lsn`, as PostgreSQL prints it (`0/3000148`). */
  @IsOptional()
  @IsString()
  @Matches(/^[0-9A-Fa-f]{1,8}\/[0-9A-Fa-f]{1,8}$/, { message: 'lsn must look like 0/3000148' })
  lsn?: string;

  /** `recovery_target_name`: a restore point created with pg_create_restore_point(). */
  @IsOptional()
  @IsString()
  @MaxLength(63)
  @Matches(/^[^'\\\n\r]+$/, { message: 'name must not hold quotes, backslashes or line breaks' })
  name?: string;

  /** Replay all archived WAL (`recovery_target = ''` with no other target: to the end of the archive). */
  @IsOptional()
  @IsIn([true], { message: 'latest must be true when given' })
  latest?: boolean;
}

/** `target` of a point-in-time recovery: a new data directory and the port its server listens on. */
export class PointInTimeTarget {
  /** Absolute data directory under DR_RESTORE_ROOTS (created mode 0700; must be empty unless overwrite). */
  @IsString()
  @Matches(/^\//, { message: 'dataDirectory must be an absolute path' })
  @MaxLength(4096)
  dataDirectory: string;

  @Type(() => Number)
  @IsInt()
  @Min(1024)
  @Max(65535)
  port: number;

  @ValidateNested()
  @Type(() => RecoveryTargetDto)
  recoveryTarget: RecoveryTargetDto;

  /** `recovery_target_action`: promote (default: the server opens read-write) or pause (read-only, replay paused). */
  @IsOptional()
  @IsIn(['promote', 'pause'], { message: 'action must be promote or pause' })
  action?: 'promote' | 'pause';

  /** Stop the recovered server once the target is reached (default false: it keeps running on `port`). */
  @IsOptional()
  @IsBoolean()
  stopServer?: boolean;

  /** Give up when the target is not reached within this many seconds (default 600). */
  @IsOptional()
  @Type(() => Number)
  @IsInt()
  @Min(10)
  @Max(86_400)
  timeoutSeconds?: number;

  /**
   * Role the service connects as (TCP to 127.0.0.1:`port`) to watch the recovered server (default `postgres`). The
   * recovered cluster keeps the source's pg_hba.conf and roles: when they require a password, give `passwordSecret`.
   */
  @IsOptional()
  @IsString()
  @Matches(/^[A-Za-z_][A-Za-z0-9_]{0,62}$/, { message: 'user must be a role name' })
  user?: string;

  /** Secret reference to `user`'s password on the recovered cluster (the source cluster's password of that role). */
  @IsOptional()
  @IsString()
  @Matches(SECRET_REF_PATTERN, { message: 'passwordSecret must be env:NAME or file:/absolute/path' })
  passwordSecret?: string;

  /** Without a `backupId`: the WAL archive whose newest base backup ending before the target is restored. */
  @IsOptional()
  @IsUUID('all', { message: 'walArchiveId must be a UUID' })
  walArchiveId?: string;

  /** Recovery target inclusive (default true: stop just after the target; false: just before). */
  @IsOptional()
  @IsBoolean()
  inclusive?: boolean;
}

/**
 * PostgreSQL physical base backups for point-in-time recovery: `pg_basebackup -D - -Ft -X none -c fast -v`, the
 * base tar streamed through the pipeline. `-X none` on purpose: the backup's WAL is in the WAL archive (with
 * `-X none` the server's backup stop waits until the last segment the backup needs has been archived, so a
 * COMPLETED base backup always has its WAL in the archive), and restores always replay from the archive anyway.
 * The WAL start LSN and timeline (backup_label) and end LSN (backup_manifest's WAL-Ranges), read from the tar as it
 * streams by ({@link BaseBackupTarReader}), and the start/stop times are recorded. Only the default tablespace is supported (pg_basebackup
 * writes a single tar to stdout only for a cluster without other tablespaces).
 * Restore (the first step of a POINT_IN_TIME recovery, see src/recovery/point-in-time-recovery.service.ts) extracts
 * the base tar into the data directory (mode 0700).
 */
@Injectable()
export class PostgresBaseEngine implements BackupEngine<PostgresBaseSource, PointInTimeTarget> {
  readonly name = 'postgres-base' as const;
  readonly artifactExtension = 'tar';
  readonly contentType = 'application/x-tar';
  readonly indexInRecord = false;
  /** Extracted into a staging tree inside the data directory, merged in only once the base backup is proven. */
  readonly restoreIsStaged = true;
  readonly sourceClass = PostgresBaseSource;
  readonly targetClass = PointInTimeTarget;

  constructor(
    private readonly config: AppConfig,
    private readonly processes: ProcessRunner,
    private readonly secrets: SecretResolver,
    private readonly tar: TarArchiver,
    private readonly directories: RestoreDirectoryPolicy,
  ) {}

  private tool(name: string): string {
    return this.config.pgBinDir ? join(this.config.pgBinDir, name) : name;
  }

  async toolVersions(): Promise<Record<string, string>> {
    return { pg_basebackup: (await this.processes.output(this.tool('pg_basebackup'), ['--version'])).trim() };
  }

  async checkSource(source: PostgresBaseSource): Promise<void> {
    parseDatabaseUrlField(source.url, 'postgres', 'source.url', false);
  }

  async backup(source: PostgresBaseSource, context: EngineRunContext): Promise<EngineBackupRun> {
    const address = parseDatabaseUrlField(source.url, 'postgres', 'source.url', false);
    const env = source.passwordSecret ? { PGPASSWORD: await this.secrets.resolve(source.passwordSecret, 'source.passwordSecret') } : {};
    const startedAt = new Date();
    const proc = this.processes.spawn(
      this.tool('pg_basebackup'),
      [
        `--dbname=${postgresToolUrl(address)}`,
        '--pgdata=-',
        '--format=tar',
        '--wal-method=none',
        '--checkpoint=fast',
        '--verbose',
        '--no-password',
        `--label=dr-${context.runId}`,
      ],
      { env, signal: context.signal },
    );
    proc.stdin.end();
    const reader = new BaseBackupTarReader();
    proc.stdout.once('error', (error) => reader.destroy(error));
    const stream = proc.stdout.pipe(reader);
    const read = new Promise<void>((resolve, reject) => {
      reader.once('end', resolve);
      reader.once('error', reject);
    });
    read.catch(() => undefined);
    const done = Promise.all([proc.done, read]).then(() => {
      const label = reader.result();
      const walRange: BaseBackupWalRange = {
        walArchiveId: source.walArchiveId,
        timeline: label.timeline,
        startLsn: label.startLsn,
        endLsn: label.endLsn,
        startedAt: startedAt.toISOString(),
        stoppedAt: new Date().toISOString(),
      };
      return { warnings: [], walRange };
    });
    return { stream, done };
  }

  async checkTarget(target: PointInTimeTarget, overwrite: boolean): Promise<void> {
    const real = await this.directories.check(target.dataDirectory, overwrite, 'target.dataDirectory');
    if (overwrite && (await stat(join(real, 'postmaster.pid')).catch(() => null))) {
      throw DrError.validation([
        { field: 'target.dataDirectory', message: 'a PostgreSQL server may be running on this data directory (postmaster.pid exists); stop it first' },
      ]);
    }
    const t = target.recoveryTarget;
    const given = [t.time !== undefined, t.lsn !== undefined, t.name !== undefined, t.latest !== undefined].filter(Boolean).length;
    if (given !== 1) {
      throw DrError.validation([{ field: 'target.recoveryTarget', message: 'give exactly one of time, lsn, name or latest' }]);
    }
  }

  /**
   * Extracts the base tar into a staging tree inside `target.dataDirectory` (created mode 0700) and merges it in
   * once the base backup has been read to its end and proven: nothing is laid down from a corrupt or replaced one.
   */
  async restore(target: PointInTimeTarget, input: Readable, overwrite: boolean, context: EngineRunContext): Promise<EngineRestoreResult> {
    await this.checkTarget(target, overwrite);
    const path = await this.directories.check(target.dataDirectory, overwrite, 'target.dataDirectory');
    await restoreThroughStaging(path, context.runId, !(await this.directories.isRoot(path)), (tree) => extractProven(this.tar, tree, input, context.signal));
    await chmod(path, 0o700);
    return { warnings: [] };
  }

  async reservationKey(target: PointInTimeTarget): Promise<TargetReservationKey> {
    return { key: `path:${await this.directories.resolve(target.dataDirectory, 'target.dataDirectory')}`, field: 'target.dataDirectory' };
  }

  describeTarget(target: PointInTimeTarget): Record<string, unknown> {
    return JSON.parse(JSON.stringify(target)) as Record<string, unknown>;
  }

  /** Not supported: a base backup taken with `-X none` is only consistent with WAL replayed from the archive. */
  async verifyRestore(): Promise<RestoreCheck> {
    throw new Error('deep verification of a postgres-base backup is not supported: run a POINT_IN_TIME recovery instead');
  }
}
