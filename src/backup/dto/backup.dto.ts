import { Type } from 'class-transformer';
import { IsIn, IsInt, IsObject, IsOptional, IsUUID, Max, Min } from 'class-validator';
import { ENGINE_NAMES, EngineName } from '../../engines/backup-engine';
import { JobStatus } from '../backup-status';
import { BackupEntity } from '../backup.entity';

/**
 * `POST /backups`: either `planId` (run a plan now) or `engine` + `source` (an on-demand backup), with an
 * optional storage location (the default one otherwise).
 */
export class CreateBackupDto {
  @IsOptional() @IsUUID('all', { message: 'planId must be a UUID' })
  planId?: string;

  @IsOptional() @IsIn(ENGINE_NAMES, { message: `engine must be one of: ${ENGINE_NAMES.join(', ')}` })
  engine?: EngineName;

  /** Engine-specific; validated against the engine's source class (errors name `source.<field>`). */
  @IsOptional() @IsObject()
  source?: Record<string, unknown>;

  @IsOptional() @IsUUID('all', { message: 'storageLocationId must be a UUID' })
  storageLocationId?: string;
}

/** Query of `GET /backups`. */
export class ListBackupsQuery {
  @IsOptional() @IsIn(Object.values(JobStatus))
  status?: JobStatus;

  @IsOptional() @IsUUID('all', { message: 'planId must be a UUID' })
  planId?: string;

  @IsOptional() @IsIn(ENGINE_NAMES)
  engine?: EngineName;

  @IsOptional() @Type(() => Number) @IsInt() @Min(1) @Max(1_000_000)
  page: number = 1;

  @IsOptional() @Type(() => Number) @IsInt() @Min(1) @Max(200)
  limit: number = 50;
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
  artifactKey: string | null;
  manifestKey: string | null;
  sizeBytes: number | null;
  storedBytes: number | null;
  progressBytes: number;
  sha256: string | null;
  compression: string;
  fileCount: number | null;
  warnings: string[];
  error: string | null;
  createdBy: string | null;
  createdAt: string;
  startedAt: string | null;
  finishedAt: string | null;
  durationMs: number | null;

  static of(b: BackupEntity): BackupResponse {
    return {
      id: b.id,
      planId: b.planId,
      engine: b.engine,
      source: b.source,
      storageLocationId: b.storageLocationId,
      status: b.status,
      trigger: b.trigger,
      artifactKey: b.artifactKey,
      manifestKey: b.manifestKey,
      sizeBytes: b.sizeBytes,
      storedBytes: b.storedBytes,
      progressBytes: b.progressBytes,
      sha256: b.sha256,
      compression: 'zstd',
      fileCount: b.fileIndex ? b.fileIndex.length : null,
      warnings: b.manifest?.warnings ?? [],
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

/** Outcome of `POST /backups/{id}/verify`. */
export interface VerificationResponse {
  id: string;
  backupId: string;
  mode: string;
  ok: boolean;
  problems: string[];
  bytesRead: number;
  durationMs: number;
  createdAt: string;
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
