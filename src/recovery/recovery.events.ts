import { DomainEvent, JobEndedEvent } from '../jobs/job-events';
import { RecoveryEntity } from './recovery.entity';

/** `recovery.completed`: the target holds the restored backup (measured RTO recorded). */
export const RECOVERY_COMPLETED = 'recovery.completed';
/** `recovery.failed`: a recovery was recorded FAILED (the target left as it was), or reaped after its process died. */
export const RECOVERY_FAILED = 'recovery.failed';

/** Payload of {@link RECOVERY_COMPLETED}. Metrics count it. */
export class RecoveryCompletedEvent implements DomainEvent {
  readonly eventName = RECOVERY_COMPLETED;
  readonly recoveryId: string;
  readonly backupId: string | null;
  readonly type: string;
  /** Engine of the backup restored (`unknown` when it cannot be read). */
  readonly engine: string;
  /** Milliseconds from claim to a usable target (the measured RTO). */
  readonly durationMs: number | null;

  constructor(recovery: RecoveryEntity, engine: string) {
    this.recoveryId = recovery.id;
    this.backupId = recovery.backupId;
    this.type = recovery.type;
    this.engine = engine;
    this.durationMs = recovery.durationMs;
  }
}

/** Payload of {@link RECOVERY_FAILED}. */
export class RecoveryFailedEvent implements DomainEvent {
  readonly eventName = RECOVERY_FAILED;
  readonly recoveryId: string;
  readonly backupId: string | null;
  readonly type: string;
  readonly engine: string;
  readonly reason: string;
  /** True when its process died and a reaper marked it FAILED (not counted by this process's metrics). */
  readonly reaped: boolean;
  readonly durationMs: number | null;

  constructor(recovery: RecoveryEntity, engine: string, end: JobEndedEvent) {
    this.recoveryId = recovery.id;
    this.backupId = recovery.backupId;
    this.type = recovery.type;
    this.engine = engine;
    this.reason = end.reason ?? '';
    this.reaped = end.reaped;
    this.durationMs = end.reaped ? null : recovery.durationMs;
  }
}
