import { OnEvent } from '@nestjs/event-emitter';
import { BeforeApplicationShutdown, Injectable, Logger, OnApplicationBootstrap } from '@nestjs/common';
import { SchedulerRegistry } from '@nestjs/schedule';
import { InjectRepository } from '@nestjs/typeorm';
import { pipeline } from 'node:stream/promises';
import { In, Repository } from 'typeorm';
import { AuditService } from '../audit/audit.service';
import { AppConfig } from '../config/app-config';
import { DrError } from '../errors/dr-error';
import { BackgroundJobs, describeError, startReaper } from '../jobs/background-jobs';
import { JobHeartbeat } from '../jobs/job-heartbeat';
import { reapStaleJobs } from '../jobs/stale-jobs';
import { ArtifactPipeline, MeteringStream } from '../pipeline/artifact-pipeline';
import { StorageDriver } from '../storage/drivers/storage-driver';
import { StorageLocationsService } from '../storage/storage-locations.service';
import { BackupCopyEntity } from './backup-copy.entity';
import { signatureKeyOf } from './backup-objects';
import { BackupPlanEntity } from './backup-plan.entity';
import { BACKUP_COMPLETED, BackupCompletedEvent } from './backup.events';
import { JobStatus } from '../jobs/job-status';
import { BackupEntity } from './backup.entity';

/**
 * Copies completed backups to other storage locations (3-2-1). Every object is copied as stored (compressed,
 * encrypted), artifact and details first, manifest and signature last, so an interrupted copy never looks
 * complete; then each object is read back from the destination and its SHA-256 compared, and only then is the
 * copy COMPLETED. A plan's copies start when one of its backups completes; any backup can be copied on demand.
 */
@Injectable()
export class BackupCopier implements OnApplicationBootstrap, BeforeApplicationShutdown {
  private readonly logger = new Logger(BackupCopier.name);
  private readonly jobs = new BackgroundJobs(this.logger);

  constructor(
    @InjectRepository(BackupCopyEntity) private readonly copies: Repository<BackupCopyEntity>,
    @InjectRepository(BackupEntity) private readonly backups: Repository<BackupEntity>,
    @InjectRepository(BackupPlanEntity) private readonly plans: Repository<BackupPlanEntity>,
    private readonly locations: StorageLocationsService,
    private readonly pipeline: ArtifactPipeline,
    private readonly config: AppConfig,
    private readonly registry: SchedulerRegistry,
    private readonly audit: AuditService,
  ) {}

  /** Reaps copies whose process died, now and every half lease. */
  async onApplicationBootstrap(): Promise<void> {
    await startReaper(this.registry, 'copy-reaper', this.config.jobLeaseSeconds, () => this.reapStale(), this.logger);
  }

  /** After each completed backup: its plan's copies (started in the background; not awaited by the emitter). */
  @OnEvent(BACKUP_COMPLETED)
  onBackupCompleted(event: BackupCompletedEvent): void {
    void this.copyForPlan(event.backupId).catch((e: Error) => this.logger.error(`copies of ${event.backupId}: ${e.message}`));
  }

  /** Starts a copy to each of the plan's copy locations. @returns the copies started */
  async copyForPlan(backupId: string): Promise<BackupCopyEntity[]> {
    const backup = await this.backups.findOneByOrFail({ id: backupId });
    const plan = backup.planId ? await this.plans.findOneBy({ id: backup.planId }) : null;
    const started: BackupCopyEntity[] = [];
    for (const locationId of plan?.copyLocationIds ?? []) started.push(await this.copy(backup, locationId));
    return started;
  }

  /**
   * Copies `backup` to location `storageLocationId` (again, if an earlier copy there failed or was deleted).
   * @returns the copy, PENDING (it runs in the background).
   * @throws DrError BACKUP_NOT_RESTORABLE (not COMPLETED), VALIDATION_FAILED (the primary location, an unknown
   *   location), CONFLICT (a copy there is running or completed)
   */
  async copy(backup: BackupEntity, storageLocationId: string): Promise<BackupCopyEntity> {
    if (backup.status !== JobStatus.COMPLETED) throw new DrError('BACKUP_NOT_RESTORABLE', `backup ${backup.id} is ${backup.status}, not COMPLETED`);
    if (storageLocationId === backup.storageLocationId) {
      throw DrError.validation([{ field: 'storageLocationId', message: 'the backup is already stored in this location (its primary)' }]);
    }
    if (!(await this.locations.exists(storageLocationId))) {
      throw DrError.validation([{ field: 'storageLocationId', message: `storage location ${storageLocationId} does not exist` }]);
    }
    const existing = await this.copies.findOneBy({ backupId: backup.id, storageLocationId });
    if (existing && [JobStatus.PENDING, JobStatus.RUNNING, JobStatus.COMPLETED].includes(existing.status)) {
      throw new DrError('CONFLICT', `backup ${backup.id} already has a ${existing.status} copy in location ${storageLocationId}`);
    }
    const fresh = { status: JobStatus.PENDING, error: null, bytesCopied: 0, verifiedAt: null, startedAt: null, finishedAt: null, heartbeatAt: null };
    const copy = existing
      ? await this.copies.save(Object.assign(existing, fresh))
      : await this.copies.save(this.copies.create({ backupId: backup.id, storageLocationId, ...fresh }));
    void this.jobs.start(copy.id, (signal) => this.run(copy.id, signal));
    return copy;
  }

  private async run(copyId: string, signal: AbortSignal): Promise<void> {
    const startedAt = new Date();
    const claimed = await this.copies.update(
      { id: copyId, status: JobStatus.PENDING },
      { status: JobStatus.RUNNING, startedAt, heartbeatAt: startedAt, runnerId: this.config.instanceId },
    );
    if (!claimed.affected) return;
    const copy = await this.copies.findOneByOrFail({ id: copyId });
    let bytesCopied = 0;
    const heartbeat = new JobHeartbeat(this.copies, copyId, () => ({ bytesCopied }), 1000).start();
    const backup = await this.backups.findOneByOrFail({ id: copy.backupId });
    const from = this.locations.driverFor(await this.locations.get(backup.storageLocationId));
    const to = this.locations.driverFor(await this.locations.get(copy.storageLocationId));
    const keys = [...backup.objects.map((o) => o.key), backup.manifestKey!, signatureKeyOf(backup.manifestKey!)];
    try {
      const written: { key: string; sha256: string; bytes: number }[] = [];
      for (const key of keys) {
        const upload = await to.createUpload(key, backup.retainUntil ? { retainUntil: backup.retainUntil } : {});
        const meter = new MeteringStream(true, (n) => (bytesCopied = written.reduce((t, w) => t + w.bytes, 0) + n));
        try {
          await pipeline(await from.read(key), meter, upload.stream, { signal });
          await upload.publish();
        } catch (error) {
          await upload.abort().catch(() => undefined);
          throw error;
        }
        const recorded = backup.objects.find((o) => o.key === key);
        const sha256 = meter.digest();
        if (recorded && sha256 !== recorded.sha256) throw new Error(`${key} read from the primary location has sha256 ${sha256}, recorded ${recorded.sha256}`);
        written.push({ key, sha256, bytes: meter.bytes });
      }
      for (const object of written) await this.checkCopied(to, object);
      await heartbeat.stop();
      const finishedAt = new Date();
      await this.copies.update(copyId, { status: JobStatus.COMPLETED, bytesCopied, verifiedAt: finishedAt, finishedAt, heartbeatAt: finishedAt });
      await this.audit.record({
        action: 'copy.run',
        targetType: 'copies',
        targetId: copyId,
        outcome: 'SUCCESS',
        details: { backupId: backup.id, storageLocationId: copy.storageLocationId, bytesCopied },
      });
      this.logger.log(`copy ${copyId} of backup ${backup.id} completed: ${written.length} objects, ${bytesCopied} bytes, verified`);
    } catch (error) {
      await heartbeat.stop();
      // What was copied must not pass for a complete copy: the signature and manifest go first.
      for (const key of [...keys].reverse()) await to.delete(key).catch(() => undefined);
      const reason = signal.aborted ? 'interrupted: the service was shut down during the copy' : describeError(error);
      await this.copies.update(copyId, { status: JobStatus.FAILED, error: reason, finishedAt: new Date(), bytesCopied });
      this.logger.warn(`copy ${copyId} of backup ${backup.id} failed: ${reason}`);
      await this.audit.record({
        action: 'copy.run',
        targetType: 'copies',
        targetId: copyId,
        outcome: 'FAILURE',
        details: { backupId: backup.id, storageLocationId: copy.storageLocationId, error: reason },
      });
    }
  }

  /** Reads an object back from the copy's location and compares size and SHA-256. @throws Error naming the difference */
  private async checkCopied(to: StorageDriver, object: { key: string; sha256: string; bytes: number }): Promise<void> {
    const back = await this.pipeline.digest(await to.read(object.key));
    if (back.bytes !== object.bytes || back.sha256 !== object.sha256) {
      throw new Error(
        `${object.key} read back from the copy holds ${back.bytes} bytes sha256 ${back.sha256}, written ${object.bytes} bytes sha256 ${object.sha256}`,
      );
    }
  }

  /** The copies of backups `backupIds` that hold objects (COMPLETED), for retention to delete with their backup. */
  async completedCopiesOf(backupIds: string[]): Promise<BackupCopyEntity[]> {
    return backupIds.length ? this.copies.findBy({ backupId: In(backupIds), status: JobStatus.COMPLETED }) : [];
  }

  /** Marks FAILED the copies whose process died and removes what they had written. @returns their ids */
  async reapStale(): Promise<string[]> {
    const reaped = await reapStaleJobs(
      this.copies,
      this.config.jobLeaseSeconds,
      this.jobs.ids(),
      `interrupted: the process making this copy stopped (no heartbeat for ${this.config.jobLeaseSeconds}s)`,
    );
    for (const copy of reaped) {
      try {
        const backup = await this.backups.findOneByOrFail({ id: copy.backupId });
        const to = this.locations.driverFor(await this.locations.get(copy.storageLocationId));
        await to.removeStaged(`${backup.id}/`);
        const keys = [signatureKeyOf(backup.manifestKey!), backup.manifestKey!, ...backup.objects.map((o) => o.key)];
        for (const key of keys) await to.delete(key);
      } catch (error) {
        this.logger.warn(`copy ${copy.id}: could not remove partial objects: ${(error as Error).message}`);
      }
    }
    return reaped.map((c) => c.id);
  }

  /** The promise of a copy's end, if it runs in this process. */
  finished(copyId: string): Promise<void> | undefined {
    return this.jobs.finished(copyId);
  }

  async beforeApplicationShutdown(): Promise<void> {
    await this.jobs.abortAll();
  }
}
