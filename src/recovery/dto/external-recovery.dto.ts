import { Transform } from 'class-transformer';
import { IsIn, IsISO8601, IsOptional, IsString, IsUUID, MaxLength, MinLength, ValidateIf } from 'class-validator';

/** Outcomes an external recovery can report (case-insensitive on input: the earlier design's scripts post `"completed"`). */
export const EXTERNAL_RECOVERY_STATUSES = ['COMPLETED', 'FAILED'] as const;
export type ExternalRecoveryStatus = (typeof EXTERNAL_RECOVERY_STATUSES)[number];

const upper = ({ value }: { value: unknown }) => (typeof value === 'string' ? value.toUpperCase() : value);

/**
 * `POST /recovery/external`: reports a recovery that ran outside the service (e.g. `age -d | zstd -dc | pg_restore`
 * from `docs/artifact-format.md` while the service was down, or a vendor tool), so that it is listed in
 * `GET /recovery` with its measured duration (RTO). Times are ISO 8601 with a zone (`2026-11-24T13:00:00Z`).
 */
export class ReportExternalRecoveryDto {
  @Transform(upper)
  @IsIn(EXTERNAL_RECOVERY_STATUSES, { message: `status must be one of: ${EXTERNAL_RECOVERY_STATUSES.join(', ')}` })
  status: ExternalRecoveryStatus;

  /** What was recovered: a database name, a host and path, a system name. */
  @IsString()
  @MinLength(1, { message: 'targetName must not be empty' })
  @MaxLength(200)
  targetName: string;

  /** The point in time the recovered data reflects (the backup's time, or the PITR target). */
  @IsISO8601({ strict: true, strictSeparator: true }, { message: 'recoveryPoint must be an ISO 8601 date-time' })
  recoveryPoint: string;

  @IsISO8601({ strict: true, strictSeparator: true }, { message: 'startedAt must be an ISO 8601 date-time' })
  startedAt: string;

  @IsISO8601({ strict: true, strictSeparator: true }, { message: 'finishedAt must be an ISO 8601 date-time' })
  finishedAt: string;

  /** The backup of this service that was restored, if any (it must exist). */
  @IsOptional()
  @IsUUID('all', { message: 'backupId must be a UUID' })
  backupId?: string;

  /** Why it failed: required when `status` is FAILED, refused otherwise. */
  @ValidateIf((o: ReportExternalRecoveryDto) => o.status === 'FAILED' || o.error !== undefined)
  @IsString({ message: 'error is required when status is FAILED' })
  @MinLength(1, { message: 'error is required when status is FAILED' })
  @MaxLength(4000)
  error?: string;

  /** Free text: the tool used, the operator, the ticket. Stored in the record's target as `notes`. */
  @IsOptional()
  @IsString()
  @MaxLength(4000)
  notes?: string;
}
