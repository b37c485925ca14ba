import { Injectable, Logger } from '@nestjs/common';
import { EventEmitter2 } from '@nestjs/event-emitter';
import { SchedulerRegistry } from '@nestjs/schedule';
import { Repository } from 'typeorm';
import { AppConfig } from '../config/app-config';
import { BackgroundJobs, describeError, startReaper } from './background-jobs';
import { DomainEvent, JOB_ENDED, JOB_STARTED, JobEndedEvent, JobKind, JobStartedEvent } from './job-events';
import { JobHeartbeat } from './job-heartbeat';
import { JobStatus } from './job-status';
import { sweepScratch } from './scratch-sweep';
import { jobColumns, JobRow, jobWhere, reapStaleJobs } from './stale-jobs';

/** The columns every job table has that the lifecycle writes (backups, recoveries, verifications). */
export interface LifecycleRow extends JobRow {
  startedAt: Date | null;
  finishedAt: Date | null;
  runnerId: string | null;
  error: string | null;
  createdBy: string | null;
}

/** What a job kind's lifecycle needs of the process: lease, instance name, scratch directory. */
export interface LifecycleSettings {
  /** A RUNNING job whose heartbeat is older than this (seconds) is taken as dead. */
  jobLeaseSeconds: number;
  /** This process's name, written to `runner_id` on claim. */
  instanceId: string;
  /** Where jobs keep scratch files named after their id (see {@link sweepScratch}). */
  scratchDir: string;
}

/** What a job's work reports when it has finished: the columns written with COMPLETED, and what is audited. */
export interface JobSuccess<T> {
  /** Columns written with status COMPLETED; `finishedAt` and `heartbeatAt` are added (and `durationMs` when asked). */
  fields: Partial<T>;
  /** The audit outcome: SUCCESS unless the job completed with findings (a verification's problems). */
  outcome?: 'SUCCESS' | 'FAILURE';
  /**
   * Safe facts for the audit entry and the `job.ended` event (ids, engine, counts; never secrets); a function gets
   * the recorded duration (ms).
   */
  details: Record<string, unknown> | ((durationMs: number) => Record<string, unknown>);
  /** One log line; a function gets the recorded duration (ms). */
  log: string | ((durationMs: number) => string);
}

/** What a job's work records when it fails: columns besides status, error and finishedAt, and what is audited. */
export interface JobFailure<T> {
  fields?: Partial<T>;
  details: Record<string, unknown>;
}

/**
 * One job kind's work. The lifecycle owns the rest: claim (PENDING → RUNNING, once across replicas), heartbeat,
 * completion, failure with its reason, the audit entry and the events.
 */
export interface JobWork<T> {
  /** Extra columns written with the claim (a backup's object keys), from the row as it was loaded. */
  claim?: (job: T) => Partial<T>;
  /** Progress columns written with each heartbeat (bytes so far). */
  progress: () => Partial<T>;
  /** Does the work. Resolves with what to record; throws to fail the job (the reason is the error's message). */
  perform: (job: T, signal: AbortSignal, startedAt: Date) => Promise<JobSuccess<T>>;
  /**
   * After a failure, before it is recorded: undoes what the work left (a staged upload, a scratch copy) and says
   * what else to record. Its own errors are the work's to log; a throw here is logged and the failure recorded.
   */
  failed: (job: T, reason: string, startedAt: Date) => Promise<JobFailure<T>>;
  /**
   * Runs once the work has ended, whatever its outcome, before the outcome is recorded (a target reservation
   * released, scratch files removed): a client that sees COMPLETED or FAILED finds them gone.
   */
  finally?: (job: T) => Promise<void>;
}

/** How one job kind is described to its lifecycle. */
export interface JobKindSpec<T extends LifecycleRow> {
  /** `backup`, `recovery`, `verification`: the event `kind`, the audit action (`<kind>.run`), the log noun. */
  kind: JobKind;
  /** The audit entry's `targetType` (`backups`, `recovery`, `verifications`: as the API names the resource). */
  auditTargetType: string;
  /** The job's table. */
  repository: Repository<T>;
  /** Heartbeat period, ms. */
  heartbeatMs: number;
  /** Whether the table has `duration_ms`, written at the end (recoveries: the measured RTO; verifications). */
  recordsDuration: boolean;
  /**
   * The kind's domain event for an outcome (`backup.completed`, `recovery.failed`...), emitted after `job.ended`;
   * `job` holds what was recorded.
   */
  outcomeEvent: (job: T, end: JobEndedEvent) => DomainEvent | Promise<DomainEvent>;
}

/**
 * The life of one kind of job, the same for every kind: claim, lease and heartbeat, completion, failure with its
 * reason, crash sweep (the jobs of a process that died marked FAILED by whichever replica notices first, then
 * cleaned up), scratch sweep at start, abort on shutdown, and for each outcome an audit-ready `job.ended` event
 * (awaited: the audit entry is written before the job's promise settles). A runner only describes its work
 * ({@link JobWork}); a new job kind (failovers, plan runs, drills) needs its runner file and nothing here.
 */
export class JobLifecycle<T extends LifecycleRow> {
  private readonly logger: Logger;
  private readonly jobs: BackgroundJobs;

  constructor(
    private readonly spec: JobKindSpec<T>,
    private readonly settings: LifecycleSettings,
    private readonly registry: SchedulerRegistry,
    private readonly events: EventEmitter2,
    logger: Logger,
  ) {
    this.logger = logger;
    this.jobs = new BackgroundJobs(logger);
  }

  /**
   * At application start: reaps the jobs of processes that died, now and every half lease (`reap` cleans up after
   * each); with `sweepScratchFiles`, then removes the scratch files of this kind's jobs that have ended.
   */
  async bootstrap(reap: (job: T, reason: string) => Promise<Record<string, unknown>>, sweepScratchFiles: boolean): Promise<void> {
    await startReaper(this.registry, `${this.spec.kind}-reaper`, this.settings.jobLeaseSeconds, () => this.reapStale(reap), this.logger);
    if (!sweepScratchFiles) return;
    await sweepScratch(this.settings.scratchDir, (id) => this.ended(id)).catch((error: Error) =>
      this.logger.warn(`sweep of ${this.spec.kind} scratch files: ${error.message}`),
    );
  }

  /** Starts job `id` (PENDING) in the background. @returns a promise that settles when it has ended (never rejects). */
  start(id: string, work: JobWork<T>): Promise<void> {
    return this.jobs.start(id, (signal) => this.run(id, work, signal));
  }

  /** The promise of a job's end, if it runs in this process. */
  finished(id: string): Promise<void> | undefined {
    return this.jobs.finished(id);
  }

  /** Ids of the jobs running in this process. */
  running(): ReadonlySet<string> {
    return this.jobs.ids();
  }

  /** Aborts the running jobs (their child processes are killed) and waits, within the grace, until each is recorded. */
  async shutdown(): Promise<void> {
    await this.jobs.abortAll();
  }

  /**
   * Marks FAILED every PENDING or RUNNING job of this kind whose process died (heartbeat older than the lease; never
   * one this process runs), lets `cleanUp` undo what it left, records the failure (audit) and announces it.
   * @returns the ids reaped.
   */
  async reapStale(cleanUp: (job: T, reason: string) => Promise<Record<string, unknown>>): Promise<string[]> {
    const reason = `interrupted: the process running this ${this.spec.kind} stopped (no heartbeat for ${this.settings.jobLeaseSeconds}s)`;
    const reaped = await reapStaleJobs(this.spec.repository, this.settings.jobLeaseSeconds, this.jobs.ids(), reason);
    for (const job of reaped) {
      let details: Record<string, unknown> = {};
      try {
        details = await cleanUp(job, reason);
      } catch (error) {
        this.logger.warn(`${this.spec.kind} ${job.id}: could not clean up after it: ${(error as Error).message}`);
      }
      await this.announceEnd(job, {
        status: JobStatus.FAILED,
        outcome: 'FAILURE',
        reason,
        details: { ...details, error: reason },
        reaped: true,
        durationMs: null,
        actor: null,
      });
    }
    return reaped.map((j) => j.id);
  }

  private async run(id: string, work: JobWork<T>, signal: AbortSignal): Promise<void> {
    const repository = this.spec.repository;
    const job = await repository.findOneByOrFail(jobWhere<T>(id));
    const startedAt = new Date();
    const claim = { status: JobStatus.RUNNING, startedAt, heartbeatAt: startedAt, runnerId: this.settings.instanceId, ...work.claim?.(job) };
    const claimed = await repository.update(jobWhere<T>(id, { status: JobStatus.PENDING }), jobColumns<T>(claim));
    if (!claimed.affected) return; // reaped or taken meanwhile
    Object.assign(job, claim);
    await this.events.emitAsync(JOB_STARTED, new JobStartedEvent(this.spec.kind, id, this.settings.instanceId, startedAt));
    const heartbeat = new JobHeartbeat(repository, id, work.progress, this.spec.heartbeatMs).start();
    let released = false;
    const release = async () => {
      if (released) return;
      released = true;
      await work.finally?.(job).catch((error: Error) => this.logger.warn(`${this.spec.kind} ${id}: ${error.message}`));
    };
    try {
      let success: JobSuccess<T> | undefined;
      let reason = '';
      try {
        success = await work.perform(job, signal, startedAt);
      } catch (error) {
        reason = signal.aborted ? `interrupted: the service was shut down during the ${this.spec.kind}` : describeError(error);
      }
      await heartbeat.stop();
      const finishedAt = new Date();
      const durationMs = finishedAt.getTime() - startedAt.getTime();
      const duration = this.spec.recordsDuration ? { durationMs } : {};
      if (success) {
        await release();
        const completed = { ...success.fields, ...duration, status: JobStatus.COMPLETED, finishedAt, heartbeatAt: finishedAt };
        await repository.update(id, jobColumns<T>(completed));
        Object.assign(job, completed);
        this.logger.log(typeof success.log === 'function' ? success.log(durationMs) : success.log);
        const details = typeof success.details === 'function' ? success.details(durationMs) : success.details;
        await this.announceEnd(job, {
          status: JobStatus.COMPLETED,
          outcome: success.outcome ?? 'SUCCESS',
          reason: null,
          details,
          reaped: false,
          durationMs,
          actor: job.createdBy,
        });
        return;
      }
      const failure = await work.failed(job, reason, startedAt).catch((error: Error): JobFailure<T> => {
        this.logger.warn(`${this.spec.kind} ${id}: cleanup after its failure failed: ${error.message}`);
        return { details: {} };
      });
      await release();
      const failed = { ...failure.fields, ...duration, status: JobStatus.FAILED, error: reason, finishedAt };
      await repository.update(id, jobColumns<T>(failed));
      Object.assign(job, failed);
      this.logger.warn(`${this.spec.kind} ${id} failed: ${reason}`);
      await this.announceEnd(job, {
        status: JobStatus.FAILED,
        outcome: 'FAILURE',
        reason,
        details: { ...failure.details, error: reason },
        reaped: false,
        durationMs,
        actor: job.createdBy,
      });
    } finally {
      await heartbeat.stop();
      await release();
    }
  }

  /** Emits `job.ended`, then the kind's domain event, and waits for their listeners (the audit entry, metrics). */
  private async announceEnd(job: T, end: Omit<ConstructorParameters<typeof JobEndedEvent>[0], 'kind' | 'id' | 'auditTargetType'>): Promise<void> {
    const ended = new JobEndedEvent({ kind: this.spec.kind, id: job.id, auditTargetType: this.spec.auditTargetType, ...end });
    await this.events.emitAsync(JOB_ENDED, ended);
    const event = await this.spec.outcomeEvent(job, ended);
    await this.events.emitAsync(event.eventName, event);
  }

  /** Whether `id` is a job of this kind that has ended (neither PENDING nor RUNNING). */
  private async ended(id: string): Promise<boolean> {
    const row = await this.spec.repository.findOne({ where: jobWhere<T>(id), select: ['id', 'status'] });
    // a kind's status is a string column that also holds its own values (a recovery's AWAITING_APPROVAL)
    const status: string = row?.status ?? '';
    return row !== null && status !== (JobStatus.RUNNING as string) && status !== (JobStatus.PENDING as string);
  }
}

/**
 * Makes the {@link JobLifecycle} of a job kind, with this process's settings (lease, instance id, scratch
 * directory), scheduler (the reaper's interval) and event emitter. Provided by {@link JobsModule} to every runner.
 */
@Injectable()
export class JobLifecycles {
  constructor(
    private readonly config: AppConfig,
    private readonly registry: SchedulerRegistry,
    private readonly events: EventEmitter2,
  ) {}

  /** The lifecycle of the kind `spec` describes; `logger` is the runner's. */
  for<T extends LifecycleRow>(spec: JobKindSpec<T>, logger: Logger): JobLifecycle<T> {
    return new JobLifecycle(spec, this.config, this.registry, this.events, logger);
  }
}
