import { Injectable, Logger, OnApplicationBootstrap, OnApplicationShutdown } from '@nestjs/common';
import { SchedulerRegistry } from '@nestjs/schedule';
import { CronJob } from 'cron';
import { AppConfig } from '../config/app-config';
import { currentOccurrence } from '../jobs/cron-occurrence';
import { BackupPlansService } from './backup-plans.service';
import { ScheduledBackupsService } from './scheduled-backups.service';

interface RegisteredPlan {
  signature: string;
  job: CronJob;
}

/**
 * Schedules only: keeps one cron job per enabled, scheduled plan (re-read from the database every
 * `DR_PLAN_SYNC_SECONDS`, so plan changes made through any replica are picked up), and hands each tick to
 * {@link ScheduledBackupsService}.
 */
@Injectable()
export class BackupScheduler implements OnApplicationBootstrap, OnApplicationShutdown {
  private readonly logger = new Logger(BackupScheduler.name);
  private readonly registered = new Map<string, RegisteredPlan>();
  private syncing?: Promise<void>;

  constructor(
    private readonly registry: SchedulerRegistry,
    private readonly plans: BackupPlansService,
    private readonly scheduled: ScheduledBackupsService,
    private readonly config: AppConfig,
  ) {}

  async onApplicationBootstrap(): Promise<void> {
    if (!this.config.schedulerEnabled) return;
    await this.syncPlans();
    const sync = setInterval(() => void this.syncPlans(), this.config.planSyncSeconds * 1000);
    this.registry.addInterval('backup-plan-sync', sync);
  }

  onApplicationShutdown(): void {
    for (const [planId] of this.registered) this.unregister(planId);
  }

  /** Registers, replaces or removes cron jobs to match the enabled scheduled plans in the database. */
  async syncPlans(): Promise<void> {
    if (this.syncing) return this.syncing;
    this.syncing = (async () => {
      try {
        const plans = await this.plans.scheduled();
        const wanted = new Set(plans.map((p) => p.id));
        for (const planId of this.registered.keys()) if (!wanted.has(planId)) this.unregister(planId);
        for (const plan of plans) {
          const signature = `${plan.schedule}|${plan.timezone}`;
          if (this.registered.get(plan.id)?.signature === signature) continue;
          this.unregister(plan.id);
          const job = CronJob.from({
            cronTime: plan.schedule!,
            timeZone: plan.timezone,
            onTick: () => this.onTick(plan.id, plan.schedule!, plan.timezone),
            start: true,
          });
          this.registry.addCronJob(`backup-plan:${plan.id}`, job);
          this.registered.set(plan.id, { signature, job });
          this.logger.log(`scheduled plan ${plan.name}: "${plan.schedule}" (${plan.timezone})`);
        }
      } catch (error) {
        this.logger.warn(`plan sync failed: ${(error as Error).message}`);
      } finally {
        this.syncing = undefined;
      }
    })();
    return this.syncing;
  }

  private unregister(planId: string): void {
    const entry = this.registered.get(planId);
    if (!entry) return;
    void entry.job.stop();
    this.registry.deleteCronJob(`backup-plan:${planId}`);
    this.registered.delete(planId);
  }

  private async onTick(planId: string, schedule: string, timezone: string): Promise<void> {
    const occurrence = currentOccurrence(schedule, timezone);
    if (!occurrence) return;
    try {
      await this.scheduled.runOccurrence(planId, occurrence);
    } catch (error) {
      this.logger.error(`scheduled backup of plan ${planId} at ${occurrence.toISOString()} failed to start: ${(error as Error).message}`);
    }
  }
}
