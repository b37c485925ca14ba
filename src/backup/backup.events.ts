import { DomainEvent, JobEndedEvent } from '../jobs/job-events';
import { BackupEntity } from './backup.entity';

/** `backup.completed`: a backup's signed manifest is published and the record is COMPLETED. */
export const BACKUP_COMPLETED = 'backup.completed';
/** `backup.failed`: a backup was recorded FAILED (its objects removed), or was reaped after its process died. */
export const BACKUP_FAILED = 'backup.failed';

/** Payload of {@link BACKUP_COMPLETED}. Copies and retention follow it; metrics count it. */
export class BackupCompletedEvent implements DomainEvent {
  readonly eventName = BACKUP_COMPLETED;
  readonly backupId: string;
  readonly planId: string | null;
  readonly engine: string;
  /** Bytes stored (compressed, encrypted), as recorded. */
  readonly storedBytes: number | null;
  /** Seconds from claim to completion. */
  readonly durationSeconds: number | null;

  constructor(backup: BackupEntity) {
    this.backupId = backup.id;
    this.planId = backup.planId;
    this.engine = backup.engine;
    this.storedBytes = backup.storedBytes;
    this.durationSeconds = secondsBetween(backup.startedAt, backup.finishedAt);
  }
}

/** Payload of {@link BACKUP_FAILED}. */
export class BackupFailedEvent implements DomainEvent {
  readonly eventName = BACKUP_FAILED;
  readonly backupId: string;
  readonly planId: string | null;
  readonly engine: string;
  /** The recorded reason. */
  readonly reason: string;
  /** True when its process died and a reaper marked it FAILED (not counted by this process's metrics). */
  readonly reaped: boolean;
  readonly durationSeconds: number | null;

  constructor(backup: BackupEntity, end: JobEndedEvent) {
    this.backupId = backup.id;
    this.planId = backup.planId;
    this.engine = backup.engine;
    this.reason = end.reason ?? '';
    this.reaped = end.reaped;
    this.durationSeconds = end.reaped ? null : secondsBetween(backup.startedAt, backup.finishedAt);
  }
}

/** Seconds from `start` to `end`; null when either is missing. */
export function secondsBetween(start: Date | null, end: Date | null): number | null {
  if (!start || !end) return null;
  return Math.max(0, (end.getTime() - start.getTime()) / 1000);
}
