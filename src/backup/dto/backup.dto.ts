import { Type } from 'class-transformer';
import { IsIn, IsInt, IsObject, IsOptional, IsString, IsUUID, Max, MaxLength, Min } from 'class-validator';
import type { TableDigest } from '../../engines/pg-dump-digest';
import { BACKUP_TYPES, BackupType, ManifestEncryption, StoredObject } from '../../pipeline/manifest';
import { BackupCopyEntity } from '../backup-copy.entity';
import { BaseBackupWalRange, ENGINE_NAMES, EngineName } from '../../engines/backup-engine';
import { JobStatus } from '../../jobs/job-status';
import { BackupEntity } from '../backup.entity';

/**
 * `POST /backups`: either `planId` (run a plan now) or `engine` + `source` (an on-demand backup), with an
 * optional storage location (the default one otherwise).
 */
export class CreateBackupDto {
  @IsOptional()
  @IsUUID('all', { message: 'planId must be a UUID' })
  planId?: string;

  @IsOptional()
  @IsIn(ENGINE_NAMES, { message: `engine must be one of: ${ENGINE_NAMES.join(', ')}` })
  engine?: EngineName;

  /** Engine-specific; validated against the engine's source class (errors name `source.<field>`). */
  @IsOptional()
  @IsObject()
  source?: Record<string, unknown>;

  @IsOptional()
  @IsUUID('all', { message: 'storageLocationId must be a UUID' })
  storageLocationId?: string;

  /**
   * `FULL`, or `INCREMENTAL` (with `planId`, filesystem plans only): only what changed since the plan's previous
   * completed backup. Omitted: the plan's `incrementalsPerFull` decides (a full when there is no usable parent).
   */
  @IsOptional()
  @IsIn(BACKUP_TYPES, { message: `type must be one of: ${BACKUP_TYPES.join(', ')}` })
  type?: BackupType;
}

/** Query of `GET /backups`. */
export class ListBackupsQuery {
  @IsOptional()
  @IsIn(Object.values(JobStatus))
  status?: JobStatus;

  @IsOptional()
  @IsUUID('all', { message: 'planId must be a UUID' })
  planId?: string;

  @IsOptional()
  @IsIn(ENGINE_NAMES)
  engine?: EngineName;

  @IsOptional()
  @Type(() => Number)
  @IsInt()
  @Min(1)
  @Max(1_000_000)
  page: number = 1;

  @IsOptional()
  @Type(() => Number)
  @IsInt()
  @Min(1)
  @Max(200)
  limit: number = 50;
}

/** Query of `GET /backups/{id}/files`. */
export class ListFilesQuery {
  /** Only paths starting with this (as in the archive: relative, `/`-separated). */
  @IsOptional()
  @IsString()
  @MaxLength(4096)
  prefix?: string;

  @IsOptional()
  @Type(() => Number)
  @IsInt()
  @Min(1)
  @Max(1_000_000)
  page: number = 1;

  @IsOptional()
  @Type(() => Number)
  @IsInt()
  @Min(1)
  @Max(1000)
  limit: number = 100;
}

/** `POST /backups/{id}/copies`. */
export class CopyBackupDto {
  @IsUUID('all', { message: 'storageLocationId must be a UUID' })
  storageLocationId: string;
}

/** A copy of a backup as the API shows it. */
export class BackupCopyResponse {
  id: string;
  storageLocationId: string;
  status: JobStatus;
  error: string | null;
  bytesCopied: number;
  verifiedAt: string | null;
  finishedAt: string | null;

  static of(c: BackupCopyEntity): BackupCopyResponse {
    return {
      id: c.id,
      storageLocationId: c.storageLocationId,
      status: c.status,
      error: c.error,
      bytesCopied: c.bytesCopied,
      verifiedAt: c.verifiedAt?.toISOString() ?? null,
      finishedAt: c.finishedAt?.toISOString() ?? null,
    };
  }
}

/** A backup as the API shows it. Sizes in bytes, times ISO-8601, duration in ms. */
export class BackupResponse {
  id: string;
  planId: string | null;
  engine: EngineName;
  source: Record<string, unknown>;
  storageLocationId: string;
  status: JobStatus;
  trigger: string;
  /** FULL, or INCREMENTAL (new and changed files since `parentId`, plus deletions). */
  type: BackupType;
  /** The backup an incremental is based on; null for a full. */
  parentId: string | null;
  /** The full backup an incremental's chain starts with; null for a full. */
  fullBackupId: string | null;
  artifactKey: string | null;
  manifestKey: string | null;
  sizeBytes: number | null;
  storedBytes: number | null;
  progressBytes: number;
  sha256: string | null;
  compression: string;
  /** Recipients (public) or that a passphrase is used; null: not encrypted. */
  encryption: ManifestEncryption | null;
  /** Every object stored, with size and SHA-256. */
  objects: StoredObject[];
  signatureKeyId: string | null;
  fileCount: number | null;
  /** Per-table digests recorded at backup time (postgres). */
  tables: TableDigest[] | null;
  /** Base backups (postgres-base): WAL start/end LSN, timeline, start/stop times, WAL archive. */
  walRange: BaseBackupWalRange | null;
  warnings: string[];
  /** Copies in other locations (3-2-1). */
  copies: BackupCopyResponse[];
  /** Objects locked (immutability) until then. */
  retainUntil: string | null;
  deletedAt: string | null;
  deletionReason: string | null;
  error: string | null;
  createdBy: string | null;
  createdAt: string;
  startedAt: string | null;
  finishedAt: string | null;
  durationMs: number | null;

  static of(b: BackupEntity, copies: BackupCopyEntity[] = []): BackupResponse {
    return {
      id: b.id,
      planId: b.planId,
      engine: b.engine,
      source: b.source,
      storageLocationId: b.storageLocationId,
      status: b.status,
      trigger: b.trigger,
      type: b.backupType,
      parentId: b.parentId,
      fullBackupId: b.fullBackupId,
      artifactKey: b.artifactKey,
      manifestKey: b.manifestKey,
      sizeBytes: b.sizeBytes,
      storedBytes: b.storedBytes,
      progressBytes: b.progressBytes,
      sha256: b.sha256,
      compression: 'zstd',
      encryption:
        b.manifest?.encryption ??
        (b.encryption
          ? b.encryption.passphraseSecret
            ? { format: 'age-v1', passphrase: true }
            : { format: 'age-v1', recipients: b.encryption.recipients ?? [] }
          : null),
      objects: b.objects,
      signatureKeyId: b.signatureKeyId,
      fileCount: b.fileCount,
      tables: b.tables,
      walRange: b.walRange ?? null,
      warnings: b.warnings,
      copies: copies.map((c) => BackupCopyResponse.of(c)),
      retainUntil: b.retainUntil?.toISOString() ?? null,
      deletedAt: b.deletedAt?.toISOString() ?? null,
      deletionReason: b.deletionReason,
      error: b.error,
      createdBy: b.createdBy,
      createdAt: b.createdAt.toISOString(),
      startedAt: b.startedAt?.toISOString() ?? null,
      finishedAt: b.finishedAt?.toISOString() ?? null,
      durationMs: b.startedAt && b.finishedAt ? b.finishedAt.getTime() - b.startedAt.getTime() : null,
    };
  }
}

/** One page of a listing. */
export interface Page<T> {
  items: T[];
  page: number;
  limit: number;
  total: number;
}

/** `GET /backups/{id}/diff/{otherId}`: how the files of `otherId` differ from those of `id`. */
export interface SnapshotDiffResponse {
  from: string;
  to: string;
  added: string[];
  removed: string[];
  changed: { path: string; before: { sha256?: string; mode: string; sizeBytes: number }; after: { sha256?: string; mode: string; sizeBytes: number } }[];
  unchanged: number;
}
