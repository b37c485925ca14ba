import { Injectable, Logger } from '@nestjs/common';
import { OnEvent } from '@nestjs/event-emitter';
import { InjectRepository } from '@nestjs/typeorm';
import { plainToInstance } from 'class-transformer';
import { In, Repository } from 'typeorm';
import { WalArchivesService } from '../wal/wal-archives.service';
import { DrError } from '../errors/dr-error';
import { StorageLocationsService } from '../storage/storage-locations.service';
import { BackupCopier } from './backup-copier.service';
import { BackupCopyEntity } from './backup-copy.entity';
import { signatureKeyOf } from './backup-objects';
import { BackupPlanEntity } from './backup-plan.entity';
import { BACKUP_COMPLETED, BackupCompletedEvent } from './backup.events';
import { JobStatus } from '../jobs/job-status';
import { BackupEntity } from './backup.entity';
import { applyRetention, RetentionPolicy } from './retention-policy';
import { VerificationRecords } from '../validation/verification-records';

/** One backup in a retention report. */
export interface RetentionEntry {
  backupId: string;
  /** When the backup was taken (its start): the time restic's rules bucket. */
  takenAt: string;
  reasons: string[];
}

/** What retention kept and removed (or would, in a dry run), and why. */
export interface RetentionReport {
  planId: string;
  dryRun: boolean;
  policy: Record<string, unknown> | null;
  keep: RetentionEntry[];
  remove: RetentionEntry[];
  /** Backups whose objects could not all be deleted (they are DELETED; what is left is named). */
  failures: { backupId: string; error: string }[];
}

/**
 * Applies a plan's retention policy (restic's `forget` rules, see {@link applyRetention}) to its completed backups,
 * after each of its backups completes and on demand. Beyond the policy it always keeps the newest backup, the newest
 * backup that passed a verification, and backups whose objects are locked (immutability) until their lock date.
 * A removed backup becomes DELETED with the reason; its objects go from its copies, then from its primary location
 * (manifest and signature first, so nothing half-deleted looks complete).
 */
@Injectable()
export class RetentionService {
  private readonly logger = new Logger(RetentionService.name);

  constructor(
    @InjectRepository(BackupEntity) private readonly backups: Repository<BackupEntity>,
    @InjectRepository(BackupPlanEntity) private readonly plans: Repository<BackupPlanEntity>,
    private readonly verifications: VerificationRecords,
    @InjectRepository(BackupCopyEntity) private readonly copies: Repository<BackupCopyEntity>,
    private readonly locations: StorageLocationsService,
    private readonly copier: BackupCopier,
    private readonly walArchives: WalArchivesService,
  ) {}

  /** Applies a plan's retention after each of its backups completes (in the background; not awaited by the emitter). */
  @OnEvent(BACKUP_COMPLETED)
  onBackupCompleted(event: BackupCompletedEvent): void {
    void this.afterBackup(event.backupId).catch((e: Error) => this.logger.error(`retention after ${event.backupId}: ${e.message}`));
  }

  private async afterBackup(backupId: string): Promise<void> {
    const backup = await this.backups.findOneBy({ id: backupId });
    if (!backup?.planId) return;
    const plan = await this.plans.findOneBy({ id: backup.planId });
    if (!plan?.retention) return;
    const report = await this.apply(plan.id, { dryRun: false });
    if (report.remove.length) this.logger.log(`plan ${plan.name}: retention removed ${report.remove.length} backup(s), kept ${report.keep.length}`);
  }

  /**
   * Evaluates (and unless `dryRun`, carries out) plan `planId`'s retention.
   * @throws DrError NOT_FOUND
   */
  async apply(planId: string, options: { dryRun: boolean; now?: Date }): Promise<RetentionReport> {
    const plan = await this.plans.findOneBy({ id: planId });
    if (!plan) throw DrError.notFound('backup plan', planId);
    const now = options.now ?? new Date();
    const backups = await this.backups.find({ where: { planId, status: JobStatus.COMPLETED }, order: { startedAt: 'DESC' } });
    const takenAt = (b: BackupEntity) => b.startedAt ?? b.createdAt;
    const reasons = new Map<string, string[]>(backups.map((b) => [b.id, []]));
    if (!plan.retention) {
      for (const b of backups) reasons.get(b.id)!.push('no retention policy');
    } else {
      const policy = plainToInstance(RetentionPolicy, plan.retention);
      const result = applyRetention(
        backups.map((b) => ({ id: b.id, time: takenAt(b) })),
        policy,
        { timezone: plan.timezone, now },
      );
      for (const kept of result.keep) reasons.get(kept.id)!.push(...kept.reasons);
      if (backups.length) reasons.get(backups[0].id)!.push('newest backup');
      const verified = await this.newestVerified(backups.map((b) => b.id));
      if (verified) reasons.get(verified)!.push('newest verified backup');
      for (const b of backups) if (b.retainUntil && b.retainUntil > now) reasons.get(b.id)!.push(`immutable until ${b.retainUntil.toISOString()}`);
      await this.keepChains(planId, backups, reasons);
    }
    const entry = (b: BackupEntity, why: string[]): RetentionEntry => ({ backupId: b.id, takenAt: takenAt(b).toISOString(), reasons: why });
    const keep = backups.filter((b) => reasons.get(b.id)!.length).map((b) => entry(b, reasons.get(b.id)!));
    const removed = backups.filter((b) => !reasons.get(b.id)!.length);
    const report: RetentionReport = {
      planId,
      dryRun: options.dryRun,
      policy: plan.retention,
      keep,
      remove: removed.map((b) => entry(b, ['not kept by any rule of the retention policy'])),
      failures: [],
    };
    if (!options.dryRun) {
      for (const backup of removed) {
        const error = await this.delete(backup, `retention of plan ${plan.name}: not kept by ${JSON.stringify(plan.retention)}`);
        if (error) report.failures.push({ backupId: backup.id, error });
      }
      // WAL retention follows base backup retention: WAL no kept base backup needs goes.
      const walArchiveIds = removed.map((b) => b.walRange?.walArchiveId).filter((id): id is string => Boolean(id));
      if (walArchiveIds.length) await this.walArchives.applyRetentionFor(walArchiveIds);
    }
    return report;
  }

  /**
   * A kept incremental (and one still running) needs every ancestor up to its full to be restored: each ancestor
   * is kept, with the reason naming the nearest incremental that needs it. `backups` is newest first.
   */
  private async keepChains(planId: string, backups: BackupEntity[], reasons: Map<string, string[]>): Promise<void> {
    const byId = new Map(backups.map((b) => [b.id, b]));
    const running = await this.backups.find({ where: { planId, status: In([JobStatus.PENDING, JobStatus.RUNNING]) } });
    const needing = [...running, ...backups.filter((b) => reasons.get(b.id)!.length)].filter((b) => b.backupType === 'INCREMENTAL');
    const marked = new Set<string>();
    for (const b of needing) {
      for (let parent = byId.get(b.parentId!); parent && !marked.has(parent.id); parent = parent.parentId ? byId.get(parent.parentId) : undefined) {
        marked.add(parent.id);
        reasons
          .get(parent.id)!
          .push(
            `in the chain of incremental ${b.id}${b.status === JobStatus.COMPLETED ? ', which is kept' : `, which is ${b.status}`} (chain full ${b.fullBackupId})`,
          );
      }
    }
  }

  /** The newest of `backupIds` with a passed verification (any mode). */
  private async newestVerified(backupIds: string[]): Promise<string | undefined> {
    const ids = await this.verifications.passedAmong(backupIds);
    return backupIds.find((id) => ids.has(id)); // backupIds are newest first
  }

  /**
   * Marks the backup DELETED (claimed once, across replicas) and deletes its objects from its copies and its
   * primary location. @returns what could not be deleted, or null
   */
  private async delete(backup: BackupEntity, reason: string): Promise<string | null> {
    const claimed = await this.backups.update(
      { id: backup.id, status: JobStatus.COMPLETED },
      { status: JobStatus.DELETED, deletedAt: new Date(), deletionReason: reason },
    );
    if (!claimed.affected) return null; // another replica, or an operator, got there first
    const keys = [signatureKeyOf(backup.manifestKey!), backup.manifestKey!, ...[...backup.objects].reverse().map((o) => o.key)];
    const left: string[] = [];
    for (const copy of await this.copier.completedCopiesOf([backup.id])) {
      const ok = await this.deleteObjects(copy.storageLocationId, keys, left);
      if (ok) await this.copies.update(copy.id, { status: JobStatus.DELETED });
    }
    await this.deleteObjects(backup.storageLocationId, keys, left);
    this.logger.log(`backup ${backup.id} deleted: ${reason}${left.length ? `; left: ${left.join(', ')}` : ''}`);
    if (!left.length) return null;
    const error = `objects not deleted: ${left.join('; ')}`;
    await this.backups.update(backup.id, { deletionReason: `${reason}; ${error}` });
    return error;
  }

  /** Deletes `keys` in a location, collecting failures. @returns whether all went */
  private async deleteObjects(locationId: string, keys: string[], left: string[]): Promise<boolean> {
    const before = left.length;
    try {
      const location = await this.locations.get(locationId);
      const driver = this.locations.driverFor(location);
      for (const key of keys) {
        await driver.delete(key).catch((error: Error) => left.push(`${location.name}:${key} (${error.message})`));
      }
    } catch (error) {
      left.push(`location ${locationId} (${(error as Error).message})`);
    }
    return left.length === before;
  }
}
