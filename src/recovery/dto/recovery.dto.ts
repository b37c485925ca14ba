import { ApiProperty } from '@nestjs/swagger';
import { Type } from 'class-transformer';
import { IsBoolean, IsIn, IsInt, IsObject, IsOptional, IsUUID, Max, Min, ValidateIf } from 'class-validator';
import type { PointReached } from '../point-in-time-recovery.service';
import { RECOVERY_ENVIRONMENTS, RECOVERY_STATUSES, RecoveryEnvironment, RecoveryStatus } from '../recovery-status';
import { RecoveryEntity, RecoveryType } from '../recovery.entity';

export const RECOVERY_TYPES: RecoveryType[] = ['FULL', 'POINT_IN_TIME'];

/** `POST /recovery`: restore backup `backupId` into `target` (engine-specific: `{path}` or `{url, ...}`). */
export class CreateRecoveryDto {
  /** Optional for POINT_IN_TIME with `target.walArchiveId`: the newest base backup ending before the target is used. */
  @ValidateIf((o: CreateRecoveryDto) => o.type !== 'POINT_IN_TIME' || o.backupId !== undefined)
  @IsUUID('all', { message: 'backupId must be a UUID' })
  backupId?: string;

  @IsIn(RECOVERY_TYPES, { message: `type must be one of: ${RECOVERY_TYPES.join(', ')}` })
  type: RecoveryType;

  /** Validated against the backup engine's target class (errors name `target.<field>`). */
  @IsObject()
  target: Record<string, unknown>;

  /** Restore over a non-empty directory or into an existing database. */
  @IsOptional()
  @IsBoolean()
  overwrite?: boolean;

  /** Read the backup from its copy in this location (when the primary location is lost); default: the primary. */
  @IsOptional()
  @IsUUID('all', { message: 'storageLocationId must be a UUID' })
  storageLocationId?: string;

  /**
   * Restore even if the manifest's signature does not verify with a trusted key (the signing key was lost with
   * the site). The objects' SHA-256 are still checked against the record; a warning records the choice.
   */
  @IsOptional()
  @IsBoolean()
  trustUnsignedManifest?: boolean;

  /**
   * `production`: the recovery waits AWAITING_APPROVAL until a second RECOVERY_ADMIN approves it. Default
   * `non-production`: it runs at once.
   */
  @IsOptional()
  @IsIn(RECOVERY_ENVIRONMENTS, { message: `environment must be one of: ${RECOVERY_ENVIRONMENTS.join(', ')}` })
  environment?: RecoveryEnvironment;
}

export class ListRecoveriesQuery {
  @ApiProperty({ enum: RECOVERY_STATUSES, required: false })
  @IsOptional()
  @IsIn(RECOVERY_STATUSES, { message: `status must be one of: ${RECOVERY_STATUSES.join(', ')}` })
  status?: RecoveryStatus;

  @IsOptional()
  @IsUUID('all', { message: 'backupId must be a UUID' })
  backupId?: string;

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
  environment: RecoveryEnvironment;
  @ApiProperty({ enum: RECOVERY_STATUSES })
  status: RecoveryStatus;
  /** Bytes that reached the target (raw artifact applied); 0 when a failed restore left its target untouched. */
  bytesRestored: number;
  /** Stored bytes read from the storage location (progress while RUNNING). */
  bytesRead: number;
  error: string | null;
  warnings: string[];
  durationMs: number | null;
  /** POINT_IN_TIME: the exact point reached (LSN, last transaction time, timeline, state) and the recovered server. */
  pointInTime: PointReached | null;
  createdBy: string | null;
  /** Who asked for the recovery (the same as `createdBy`). */
  requestedBy: string | null;
  /** Production recoveries: when an unapproved request expires, and who approved or rejected it when. */
  approvalExpiresAt: string | null;
  approvedBy: string | null;
  approvedAt: string | null;
  rejectedBy: string | null;
  rejectedAt: string | null;
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
      environment: r.environment,
      status: r.status,
      bytesRestored: r.bytesRestored,
      bytesRead: r.bytesRead,
      error: r.error,
      warnings: r.warnings,
      durationMs: r.durationMs,
      pointInTime: r.pointInTime ?? null,
      createdBy: r.createdBy,
      requestedBy: r.createdBy,
      approvalExpiresAt: r.approvalExpiresAt?.toISOString() ?? null,
      approvedBy: r.approvedBy,
      approvedAt: r.approvedAt?.toISOString() ?? null,
      rejectedBy: r.rejectedBy,
      rejectedAt: r.rejectedAt?.toISOString() ?? null,
      createdAt: r.createdAt.toISOString(),
      startedAt: r.startedAt?.toISOString() ?? null,
      finishedAt: r.finishedAt?.toISOString() ?? null,
    };
  }
}
