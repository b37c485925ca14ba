import { Injectable, Logger } from '@nestjs/common';
import { OnEvent } from '@nestjs/event-emitter';
import { Gauge } from 'prom-client';
import { BackupPlanRepository, PlanLastSuccess } from '../backup/backup.repository';
import { JOB_ENDED, JOB_STARTED, JobEndedEvent, JobKind, JobStartedEvent } from '../jobs/job-events';
import { MetricsService } from './metrics.service';

/**
 * The gauges computed from the metadata store at each scrape, so that they are right on every replica and after
 * restarts:
 * - `dr_plan_last_success_timestamp_seconds{plan}`: Unix time at which the newest completed backup of each
 *   enabled plan finished (no sample for a plan that never completed one);
 * - `dr_plan_backup_age_seconds{plan}`: now − that time, the data behind an RPO alert; for a plan that never
 *   completed a backup, the age of the plan itself, so that the alert fires for it too;
 * - `dr_jobs_running{kind}`: backups, recoveries and verifications RUNNING in this process (counted from the
 *   `job.started` and `job.ended` events).
 * A failing query is logged and leaves the gauge without samples for that scrape (never a failed scrape).
 */
@Injectable()
export class StoreGauges {
  private readonly logger = new Logger(StoreGauges.name);
  /** Ids of the jobs this process runs, by kind. */
  private readonly running = new Map<JobKind, Set<string>>();

  constructor(
    metrics: MetricsService,
    private readonly plans: BackupPlanRepository,
  ) {
    // collect() runs with the gauge as `this`: the store's queries are reached through these closures
    const planRows = () => this.planRows();
    const runningJobs = () => this.runningJobs();
    new Gauge({
      name: 'dr_plan_last_success_timestamp_seconds',
      help: 'Unix time (seconds) at which the newest completed backup of each enabled backup plan finished.',
      labelNames: ['plan'] as const,
      registers: [metrics.registry],
      async collect() {
        this.reset();
        for (const row of await planRows()) {
          if (row.lastSuccess) this.set({ plan: row.name }, row.lastSuccess.getTime() / 1000);
        }
      },
    });
    new Gauge({
      name: 'dr_plan_backup_age_seconds',
      help:
        'Seconds since the newest completed backup of each enabled backup plan finished (the RPO exposure); ' +
        'for a plan without any, seconds since the plan was created.',
      labelNames: ['plan'] as const,
      registers: [metrics.registry],
      async collect() {
        this.reset();
        const now = Date.now();
        for (const row of await planRows()) {
          const since = row.lastSuccess ?? row.createdAt;
          this.set({ plan: row.name }, Math.max(0, (now - since.getTime()) / 1000));
        }
      },
    });
    new Gauge({
      name: 'dr_jobs_running',
      help: 'Jobs running in this process, by kind (backup, recovery, verification).',
      labelNames: ['kind'] as const,
      registers: [metrics.registry],
      async collect() {
        this.reset();
        for (const [kind, count] of runningJobs()) this.set({ kind }, count);
      },
    });
  }

  /** Enabled plans with the finish of their newest completed backup. @returns [] when the store cannot be read */
  private async planRows(): Promise<PlanLastSuccess[]> {
    try {
      return await this.plans.lastSuccesses();
    } catch (error) {
      this.logger.warn(`plan backup age not available: ${(error as Error).message}`);
      return [];
    }
  }

  /** Counts of the jobs this process is running, by kind (from `job.started` / `job.ended`). */
  private runningJobs(): [JobKind, number][] {
    return (['backup', 'recovery', 'verification'] as const).map((kind) => [kind, this.running.get(kind)?.size ?? 0]);
  }

  @OnEvent(JOB_STARTED)
  onJobStarted(event: JobStartedEvent): void {
    const ids = this.running.get(event.kind) ?? new Set<string>();
    this.running.set(event.kind, ids.add(event.id));
  }

  @OnEvent(JOB_ENDED)
  onJobEnded(event: JobEndedEvent): void {
    this.running.get(event.kind)?.delete(event.id);
  }
}
