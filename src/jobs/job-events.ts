/*
 * Events of the job lifecycle (see {@link JobLifecycle}), emitted with `@nestjs/event-emitter` by the process that
 * runs (or reaps) the job. Listeners: the audit trail (`job.ended`), metrics, and each feature's own domain events
 * (`backup.completed`...). The names are constants so that emitters and `@OnEvent` listeners cannot drift apart.
 */
import { JobStatus } from './job-status';

/** The kinds of jobs that share the lifecycle. */
export type JobKind = 'backup' | 'recovery' | 'verification';

/** `job.started`: a job was claimed by this process (PENDING → RUNNING). */
export const JOB_STARTED = 'job.started';
/** `job.ended`: a job's outcome was recorded (COMPLETED or FAILED), or a dead process's job was reaped (FAILED). */
export const JOB_ENDED = 'job.ended';

/** Payload of {@link JOB_STARTED}. */
export class JobStartedEvent {
  constructor(
    readonly kind: JobKind,
    readonly id: string,
    /** The instance that claimed it (`DR_INSTANCE_ID`). */
    readonly runnerId: string,
    readonly startedAt: Date,
  ) {}
}

/** Payload of {@link JOB_ENDED}: what the audit trail records of the outcome. */
export class JobEndedEvent {
  readonly kind: JobKind;
  readonly id: string;
  /** The audit entry's `targetType` (the API's name of the resource: `backups`, `recovery`, `verifications`). */
  readonly auditTargetType: string;
  readonly status: JobStatus.COMPLETED | JobStatus.FAILED;
  /** SUCCESS, or FAILURE for a failed job and for a verification that found problems. */
  readonly outcome: 'SUCCESS' | 'FAILURE';
  /** Why it failed (the recorded `error`); null when it completed. */
  readonly reason: string | null;
  /** Safe facts for the audit entry (ids, engine, counts; never secrets). */
  readonly details: Record<string, unknown>;
  /** True when the job's process died and a reaper marked it FAILED. */
  readonly reaped: boolean;
  /** Milliseconds from claim to the recorded outcome; null for a reaped job. */
  readonly durationMs: number | null;
  /** Who asked for the job (the audit actor); null for reaped jobs. */
  readonly actor: string | null;

  constructor(fields: {
    kind: JobKind;
    id: string;
    auditTargetType: string;
    status: JobStatus.COMPLETED | JobStatus.FAILED;
    outcome: 'SUCCESS' | 'FAILURE';
    reason: string | null;
    details: Record<string, unknown>;
    reaped: boolean;
    durationMs: number | null;
    actor: string | null;
  }) {
    this.kind = fields.kind;
    this.id = fields.id;
    this.auditTargetType = fields.auditTargetType;
    this.status = fields.status;
    this.outcome = fields.outcome;
    this.reason = fields.reason;
    this.details = fields.details;
    this.reaped = fields.reaped;
    this.durationMs = fields.durationMs;
    this.actor = fields.actor;
  }
}

/** A feature's domain event (`backup.completed`...): a typed payload that names the event it is emitted as. */
export interface DomainEvent {
  readonly eventName: string;
}
