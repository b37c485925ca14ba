import { DomainEvent, JobEndedEvent } from '../jobs/job-events';
import { VerificationEntity, VerificationMode } from './verification.entity';

/** `verification.completed`: a verification ran to the end; `ok` says whether it found problems. */
export const VERIFICATION_COMPLETED = 'verification.completed';
/** `verification.failed`: a verification could not run (no key, scratch server unreachable...), or was reaped. */
export const VERIFICATION_FAILED = 'verification.failed';

/** Payload of {@link VERIFICATION_COMPLETED}. Metrics count it. */
export class VerificationCompletedEvent implements DomainEvent {
  readonly eventName = VERIFICATION_COMPLETED;
  readonly verificationId: string;
  readonly backupId: string;
  readonly mode: VerificationMode;
  /** No problem found. */
  readonly ok: boolean;
  /** How many problems were found. */
  readonly problems: number;

  constructor(verification: VerificationEntity) {
    this.verificationId = verification.id;
    this.backupId = verification.backupId;
    this.mode = verification.mode;
    this.ok = verification.ok === true;
    this.problems = verification.problems?.length ?? 0;
  }
}

/** Payload of {@link VERIFICATION_FAILED}. */
export class VerificationFailedEvent implements DomainEvent {
  readonly eventName = VERIFICATION_FAILED;
  readonly verificationId: string;
  readonly backupId: string;
  readonly mode: VerificationMode;
  readonly reason: string;
  /** True when its process died and a reaper marked it FAILED (not counted by this process's metrics). */
  readonly reaped: boolean;

  constructor(verification: VerificationEntity, end: JobEndedEvent) {
    this.verificationId = verification.id;
    this.backupId = verification.backupId;
    this.mode = verification.mode;
    this.reason = end.reason ?? '';
    this.reaped = end.reaped;
  }
}
