import { IsIn, IsInt, IsOptional, IsUUID, Max, Min } from 'class-validator';
import { JobStatus } from '../../jobs/job-status';
import { VerificationEntity, VerificationMode } from '../verification.entity';

/** `POST /backups/{id}/verify`. */
export class VerifyBackupDto {
  /** `checksum` (default): signature, manifest and every object's SHA-256. `restore`: that, then a scratch restore
   * compared with the file index or the table digests recorded at backup time. */
  @IsOptional()
  @IsIn(['checksum', 'restore'], { message: 'mode must be one of: checksum, restore' })
  mode?: VerificationMode;

  /** Verify the copy kept in this location instead of the primary objects. */
  @IsOptional()
  @IsUUID('all', { message: 'storageLocationId must be a UUID' })
  storageLocationId?: string;

  /** How long the request waits for the outcome (default 30 s; 0 answers at once with 202). */
  @IsOptional()
  @IsInt()
  @Min(0)
  @Max(300)
  waitSeconds?: number;
}

/** A verification as the API shows it: `ok` and `problems` once COMPLETED; `error` when it could not run (FAILED). */
export class VerificationResponse {
  id: string;
  backupId: string;
  mode: VerificationMode;
  status: JobStatus;
  ok: boolean | null;
  problems: string[];
  details: Record<string, unknown>;
  error: string | null;
  bytesRead: number;
  durationMs: number | null;
  createdBy: string | null;
  createdAt: string;
  finishedAt: string | null;

  static of(v: VerificationEntity): VerificationResponse {
    return {
      id: v.id,
      backupId: v.backupId,
      mode: v.mode,
      status: v.status,
      ok: v.ok,
      problems: v.problems,
      details: v.details,
      error: v.error,
      bytesRead: v.bytesRead,
      durationMs: v.durationMs,
      createdBy: v.createdBy,
      createdAt: v.createdAt.toISOString(),
      finishedAt: v.finishedAt?.toISOString() ?? null,
    };
  }
}
