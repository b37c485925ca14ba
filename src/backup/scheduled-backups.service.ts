import { Injectable, Logger } from '@nestjs/common';
import { InjectRepository } from '@nestjs/typeorm';
import { Repository } from 'typeorm';
import { AppConfig } from '../config/app-config';
import { DrError } from '../errors/dr-error';
import { BackupPlanEntity } from './backup-plan.entity';
import { BackupEntity } from './backup.entity';
import { BackupsService } from './backups.service';
import { ScheduleClaimEntity } from './schedule-claim.entity';

/**
 * The work behind a cron tick: claim the plan's occurrence in PostgreSQL, and run the backup only if this
 * instance won the claim. The claim is an INSERT on the (plan, scheduled time) primary key, so with any number of
 * replicas on one database each occurrence runs exactly once; it needs no advisory lock, so it also holds on the
 * embedded database. A claimed occurrence either names the backup it started or records why it started none.
 */
@Injectable()
export class ScheduledBackupsService {
  private readonly logger = new Logger(ScheduledBackupsService.name);

  constructor(
    @InjectRepository(ScheduleClaimEntity) private readonly claims: Repository<ScheduleClaimEntity>,
    @InjectRepository(BackupPlanEntity) private readonly plans: Repository<BackupPlanEntity>,
    private readonly backups: BackupsService,
    private readonly config: AppConfig,
  ) {}

  /**
   * Runs the occurrence `scheduledFor` of plan `planId` if this instance claims it.
   * @returns the backup started, or null when the plan is gone or disabled (nothing claimed), another instance
   *   claimed the occurrence, or the plan's previous backup still runs (the claim records the skip).
   */
  async runOccurrence(planId: string, scheduledFor: Date): Promise<BackupEntity | null> {
    // Checked before claiming: a plan disabled through another replica leaves no claim behind, only a tick this
    // instance's cron job made before its next plan sync.
    const plan = await this.plans.findOneBy({ id: planId });
    if (!plan?.enabled) return null;
    const inserted = await this.claims
      .createQueryBuilder()
      .insert()
      .values({ planId, scheduledFor, instanceId: this.config.instanceId })
      .orIgnore()
      .returning(['plan_id'])
      .execute();
    if (!(inserted.raw as unknown[] | undefined)?.length) {
      this.logger.debug(`plan ${plan.name}: occurrence ${scheduledFor.toISOString()} already claimed by another instance`);
      return null;
    }
    try {
      const backup = await this.backups.createFromPlan(plan, 'SCHEDULED', 'scheduler');
      await this.claims.update({ planId, scheduledFor }, { backupId: backup.id });
      return backup;
    } catch (error) {
      const reason = error instanceof DrError && error.code === 'PLAN_BUSY' ? error.message : `could not start: ${(error as Error).message}`;
      await this.claims.update({ planId, scheduledFor }, { skipReason: reason });
      this.logger.warn(`plan ${plan.name}: run of ${scheduledFor.toISOString()} skipped: ${reason}`);
      if (error instanceof DrError && error.code === 'PLAN_BUSY') return null;
      throw error;
    }
  }
}
