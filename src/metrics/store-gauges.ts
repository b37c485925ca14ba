import { Injectable, Logger } from '@nestjs/common';
import { InjectRepository } from '@nestjs/typeorm';
import { Gauge } from 'prom-client';
import { Repository } from 'typeorm';
import { BackupPlanEntity } from '../backup/backup-plan.entity';
import { JobStatus } from '../backup/backup-status';
import { BackupEntity } from '../backup/backup.entity';
import { VerificationEntity } from '../backup/verification.entity';
import { AppConfig } from '../config/app-config';
import { RecoveryEntity } from '../recovery/recovery.entity';
import { RecoveryStatus } from '../recovery/recovery-status';
import { MetricsService } from './metrics.service';

/** One enabled plan and the finish of its newest completed, not deleted, backup (null: none yet). */
interface PlanRow {
  name: string;
  createdAt: Date;
  lastSuccess: Date | null;
}

/**
 * The gauges computed from the metadata store at each scrape, so that they are right on every replica and after
 * restarts:
 * - `dr_plan_last_success_timestamp_seconds{plan}`: Unix time at which the newest completed backup of each
 *   enabled plan finished (no sample for a plan that never completed one);
 * - `dr_plan_backup_age_seconds{plan}`: now − that time, the data behind an RPO alert; for a plan that never
 *   completed a backup, the age of the plan itself, so that the alert fires for it too;
 * - `dr_jobs_running{kind}`: backups, recoveries and verifications RUNNING in this process (by runner id).
 * A failing query is logged and leaves the gauge without samples for that scrape (never a failed scrape).
 */
@Injectable()
export class StoreGauges {
  private readonly logger = new Logger(StoreGauges.name);

  constructor(
    metrics: MetricsService,
    @InjectRepository(BackupPlanEntity) private readonly plans: Repository<BackupPlanEntity>,
    @InjectRepository(BackupEntity) private readonly backups: Repository<BackupEntity>,
    @InjectRepository(RecoveryEntity) private readonly recoveries: Repository<RecoveryEntity>,
    @InjectRepository(VerificationEntity) private readonly verifications: Repository<VerificationEntity>,
    private readonly config: AppConfig,
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
        for (const [kind, count] of await runningJobs()) this.set({ kind }, count);
      },
    });
  }

  /** Enabled plans with the finish of their newest completed backup. @returns [] when the store cannot be read */
  private async planRows(): Promise<PlanRow[]> {
    try {
      const rows = await this.plans
        .createQueryBuilder('p')
        .leftJoin(BackupEntity, 'b', 'b.plan_id = p.id AND b.status = :completed AND b.deleted_at IS NULL', {
          completed: JobStatus.COMPLETED,
        })
        .select('p.name', 'name')
        .addSelect('p.created_at', 'createdAt')
        .addSelect('MAX(b.finished_at)', 'lastSuccess')
        .where('p.enabled = true')
        .groupBy('p.id')
        .addGroupBy('p.name')
        .addGroupBy('p.created_at')
        .getRawMany<{ name: string; createdAt: Date | string; lastSuccess: Date | string | null }>();
      return rows.map((r) => ({
        name: r.name,
        createdAt: new Date(r.createdAt),
        lastSuccess: r.lastSuccess === null ? null : new Date(r.lastSuccess),
      }));
    } catch (error) {
      this.logger.warn(`plan backup age not available: ${(error as Error).message}`);
      return [];
    }
  }

  /** Counts of RUNNING jobs claimed by this process. @returns [] when the store cannot be read */
  private async runningJobs(): Promise<[string, number][]> {
    const where = { status: JobStatus.RUNNING, runnerId: this.config.instanceId };
    try {
      return [
        ['backup', await this.backups.countBy(where)],
        ['recovery', await this.recoveries.countBy({ status: RecoveryStatus.RUNNING, runnerId: this.config.instanceId })],
        ['verification', await this.verifications.countBy(where)],
      ];
    } catch (error) {
      this.logger.warn(`running jobs not available: ${(error as Error).message}`);
      return [];
    }
  }
}
