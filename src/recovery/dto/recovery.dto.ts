import { Type } from 'class-transformer';
import { IsBoolean, IsIn, IsInt, IsObject, IsOptional, IsUUID, Max, Min } from 'class-validator';
import { JobStatus } from '../../backup/backup-status';
import { RecoveryEntity, RecoveryType } from '../recovery.entity';

export const RECOVERY_TYPES: RecoveryType[] = ['FULL'];

/** `POST /recovery`: restore backup `backupId` into `target` (engine-specific: `{path}` or `{url, ...}`). */
export class CreateRecoveryDto {
  @IsUUID('all', { message: 'backupId must be a UUID' })
  backupId: string;

  @IsIn(RECOVERY_TYPES, { message: `type must be one of: ${RECOVERY_TYPES.join(', ')}` })
  type: RecoveryType;

  /** Validated against the backup engine's target class (errors name `target.<field>`). */
  @IsObject()
  target: Record<string, unknown>;

  /** Restore over a non-empty directory or into an existing database. */
  @IsOptional() @IsBoolean()
  overwrite?: boolean;

  /** Read the backup from its copy in this location (when the primary location is lost); default: the primary. */
  @IsOptional() @IsUUID('all', { message: 'storageLocationId must be a UUID' })
  storageLocationId?: string;

  /**
   * Restore even if the manifest's signature does not verify with a trusted key (the signing key was lost with
   * the site). The objects' SHA-256 are still checked against the record; a warning records the choice.
   */
  @IsOptional() @IsBoolean()
  trustUnsignedManifest?: boolean;
}

export class ListRecoveriesQuery {
  @IsOptional() @IsIn(Object.values(JobStatus))
  status?: JobStatus;

  @IsOptional() @IsUUID('all', { message: 'backupId must be a UUID' })
  backupId?: string;

  @IsOptional() @Type(() => Number) @IsInt() @Min(1) @Max(1_000_000)
  page: number = 1;

  @IsOptional() @Type(() => Number) @IsInt() @Min(1) @Max(200)
  limit: number = 50;
}

/** A recovery as the API shows it; `durationMs` is the measured restore time (RTO). */
export class RecoveryResponse {
  id: string;
  /** Null for an EXTERNAL recovery reported without a backup of this service. */
  backupId: string | null;
  /** Location read from (a copy's); null: the backup's primary location. */
  storageLocationId: string | null;
  type: RecoveryType;
  target: Record<string, unknown>;
  overwrite: boolean;
  status: JobStatus;
  bytesRestored: number;
  error: string | null;
  warnings: string[];
  durationMs: number | null;
  createdBy: string | null;
  createdAt: string;
  startedAt: string | null;
  finishedAt: string | null;

  static of(r: RecoveryEntity): RecoveryResponse {
    return {
      id: r.id,
      backupId: r.backupId,
      storageLocationId: r.storageLocationId,
      type: r.type,
      target: r.target,
      overwrite: r.overwrite,
      status: r.status,
      bytesRestored: r.bytesRestored,
      error: r.error,
      warnings: r.warnings,
      durationMs: r.durationMs,
      createdBy: r.createdBy,
      createdAt: r.createdAt.toISOString(),
      startedAt: r.startedAt?.toISOString() ?? null,
      finishedAt: r.finishedAt?.toISOString() ?? null,
    };
  }
}
