import { BeforeApplicationShutdown, Injectable, Logger, OnApplicationBootstrap } from '@nestjs/common';
import { SchedulerRegistry } from '@nestjs/schedule';
import { InjectRepository } from '@nestjs/typeorm';
import { Readable } from 'node:stream';
import { plainToInstance } from 'class-transformer';
import { Subject } from 'rxjs';
import { Repository } from 'typeorm';
import { BackupObjects } from '../backup/backup-objects';
import { BackupChains } from '../backup/backup-chain';
import { JobStatus } from '../backup/backup-status';
import { BackupsService } from '../backup/backups.service';
import { AuditService } from '../audit/audit.service';
import { AppConfig } from '../config/app-config';
import { EngineRegistry } from '../engines/engine-registry';
import { BackgroundJobs, describeError, startReaper } from '../jobs/background-jobs';
import { JobHeartbeat } from '../jobs/job-heartbeat';
import { JobRow, reapStaleJobs } from '../jobs/stale-jobs';
import { ArtifactPipeline } from '../pipeline/artifact-pipeline';
import { BackupEncryption } from '../pipeline/backup-encryption';
import { StorageLocationsService } from '../storage/storage-locations.service';
import { RecoveryEntity } from './recovery.entity';
import { EngineRunContext } from '../engines/backup-engine';
import { PointInTimeTarget } from '../engines/postgres-base.engine';
import { PointInTimeRecovery, PointReached } from '../wal/point-in-time-recovery.service';

/**
 * Runs recoveries: manifest and signature check → storage → SHA-256 check → age decryption → zstd → engine
 * restore. The duration from start to the target being usable is recorded (the measured RTO). A failure is
 * recorded with its reason; the backup is never touched.
 */
@Injectable()
export class RecoveryRunner implements OnApplicationBootstrap, BeforeApplicationShutdown {
  private readonly logger = new Logger(RecoveryRunner.name);
  private readonly jobs = new BackgroundJobs(this.logger);
  /** Ids of recoveries this process has finished running, whatever the outcome (metrics read the record). */
  readonly ended = new Subject<string>();

  constructor(
    @InjectRepository(RecoveryEntity) private readonly recoveries: Repository<RecoveryEntity>,
    private readonly backups: BackupsService,
    private readonly engines: EngineRegistry,
    private readonly locations: StorageLocationsService,
    private readonly pipeline: ArtifactPipeline,
    private readonly objects: BackupObjects,
    private readonly chains: BackupChains,
    private readonly encryption: BackupEncryption,
    private readonly config: AppConfig,
    private readonly registry: SchedulerRegistry,
    private readonly audit: AuditService,
    private readonly pointInTimeRecovery: PointInTimeRecovery,
  ) {}

  /** Reaps the jobs of processes that died, now and every half lease. */
  async onApplicationBootstrap(): Promise<void> {
    await startReaper(this.registry, 'recovery-reaper', this.config.jobLeaseSeconds, () => this.reapStale(), this.logger);
  }

  /**
   * Starts a PENDING recovery in the background (with the request's `trustUnsignedManifest` choice, kept on the
   * record); the promise settles when it has finished (never rejects). `ended` emits its id when it has.
   */
  start(recoveryId: string): Promise<void> {
    return this.jobs.start(recoveryId, (signal) => this.run(recoveryId, signal)).then(() => this.ended.next(recoveryId));
  }

  private async run(recoveryId: string, signal: AbortSignal): Promise<void> {
    const startedAt = new Date();
    const claimed = await this.recoveries.update(
      { id: recoveryId, status: JobStatus.PENDING },
      { status: JobStatus.RUNNING, startedAt, heartbeatAt: startedAt, runnerId: this.config.instanceId },
    );
    if (!claimed.affected) return;
    const recovery = await this.recoveries.findOneByOrFail({ id: recoveryId });
    const trustUnsignedManifest = recovery.trustUnsignedManifest;
    let storedBytes = 0;
    const heartbeat = new JobHeartbeat(this.recoveries, recovery.id, () => ({ bytesRestored: storedBytes }), 1000).start();
    let raw: Readable | undefined;
    try {
      if (!recovery.backupId) throw new Error('this recovery has no backup to restore (it was reported externally)');
      const backup = await this.backups.requireCompleted(recovery.backupId);
      const location = await this.locations.get(recovery.storageLocationId ?? backup.storageLocationId);
      const driver = this.locations.driverFor(location);
      const warnings: string[] = [];
      const engine = this.engines.get(backup.engine);
      const target = plainToInstance(engine.targetClass, recovery.target);
      const context: EngineRunContext = { signal, runId: recovery.id, scratchDir: this.config.scratchDir };
      let pointInTime: PointReached | null = null;
      let result: { warnings: string[] };
      if (backup.backupType === 'INCREMENTAL') {
        // the chain: full, then each incremental up to this one, every member checked like a single backup
        if (!engine.restoreChain) throw new Error(`the ${engine.name} engine cannot restore incremental backups`);
        const chain = await this.chains.chainOf(backup);
        const members = this.chains.open(chain, {
          storageLocationId: recovery.storageLocationId,
          trustUnsignedManifest,
          warnings,
          onRead: (n) => (storedBytes += n),
        });
        result = await engine.restoreChain(target, members, recovery.overwrite, context);
      } else {
        const { manifest, signature } = await this.objects.readManifest(driver, backup.manifestKey!);
        if (!signature.ok) {
          if (!trustUnsignedManifest) {
            throw new Error(`the manifest's signature does not verify (${signature.reason}); restore refused (set "trustUnsignedManifest": true to restore anyway)`);
          }
          warnings.push(`restored although the manifest's signature does not verify: ${signature.reason}`);
        }
        const artifact = backup.objects.find((o) => o.role === 'artifact');
        const listed = manifest.objects?.find((o) => o.role === 'artifact');
        if (!artifact || !listed || listed.key !== artifact.key || listed.sha256 !== artifact.sha256) {
          throw new Error(`manifest ${backup.manifestKey} does not describe the artifact the backup record names`);
        }
        const decryption = await this.encryption.decryptionKeys(backup.encryption);
        const globals = backup.objects.find((o) => o.role === 'globals');
        if (globals) {
          const listedGlobals = manifest.objects?.find((o) => o.role === 'globals');
          if (!listedGlobals || listedGlobals.key !== globals.key || listedGlobals.sha256 !== globals.sha256) {
            throw new Error(`manifest ${backup.manifestKey} does not describe the globals object the backup record names`);
          }
          context.openGlobals = async () => this.pipeline.openRaw(await driver.read(globals.key), globals.key, globals.sha256, { decryption });
        }
        // POINT_IN_TIME: the WAL archive is checked before anything is read or laid down.
        const pitrPlan = recovery.type === 'POINT_IN_TIME' ? await this.pointInTimeRecovery.precheck(backup, target as PointInTimeTarget) : null;
        raw = await this.pipeline.openRaw(await driver.read(artifact.key), artifact.key, artifact.sha256, {
          decryption,
          onProgress: (n) => (storedBytes = n),
        });
        if (pitrPlan) {
          ({ pointInTime, ...result } = await this.pointInTimeRecovery.recover(backup, target as PointInTimeTarget, raw, recovery.overwrite, context, pitrPlan));
        } else {
          result = await engine.restore(target, raw, recovery.overwrite, context);
        }
      }
      await heartbeat.stop();
      const finishedAt = new Date();
      await this.recoveries.update(recovery.id, {
        status: JobStatus.COMPLETED,
        warnings: [...warnings, ...result.warnings] as never,
        bytesRestored: storedBytes,
        pointInTime: pointInTime as never,
        finishedAt,
        heartbeatAt: finishedAt,
        durationMs: finishedAt.getTime() - startedAt.getTime(),
      });
      await this.audit.record({ actor: recovery.createdBy, action: 'recovery.run', targetType: 'recovery', targetId: recovery.id, outcome: 'SUCCESS', details: { backupId: backup.id, type: recovery.type, durationMs: finishedAt.getTime() - startedAt.getTime() } });
      this.logger.log(`recovery ${recovery.id} of backup ${backup.id} from ${location.name} completed in ${finishedAt.getTime() - startedAt.getTime()} ms`);
    } catch (error) {
      raw?.destroy();
      await heartbeat.stop();
      const finishedAt = new Date();
      const reason = signal.aborted ? 'interrupted: the service was shut down during the recovery' : describeError(error);
      await this.recoveries.update(recovery.id, {
        status: JobStatus.FAILED,
        error: reason,
        finishedAt,
        durationMs: finishedAt.getTime() - startedAt.getTime(),
        bytesRestored: storedBytes,
      });
      this.logger.warn(`recovery ${recovery.id} failed: ${reason}`);
      await this.audit.record({ actor: recovery.createdBy, action: 'recovery.run', targetType: 'recovery', targetId: recovery.id, outcome: 'FAILURE', details: { backupId: recovery.backupId, type: recovery.type, error: reason } });
    }
  }

  /** Marks FAILED the recoveries whose process died (heartbeat older than the job lease). @returns their ids */
  async reapStale(): Promise<string[]> {
    const reason = `interrupted: the process running this recovery stopped (no heartbeat for ${this.config.jobLeaseSeconds}s); the target may hold a partial restore`;
    // Only PENDING and RUNNING rows are reaped, whose statuses are JobStatus values; the wider type is safe here.
    const repository = this.recoveries as unknown as Repository<JobRow>;
    const reaped = await reapStaleJobs(repository, this.config.jobLeaseSeconds, this.jobs.ids(), reason);
    for (const r of reaped) await this.audit.record({ action: 'recovery.run', targetType: 'recovery', targetId: r.id, outcome: 'FAILURE', details: { backupId: (r as unknown as RecoveryEntity).backupId, error: reason } });
    return reaped.map((r) => r.id);
  }

  async beforeApplicationShutdown(): Promise<void> {
    await this.jobs.abortAll();
  }
}
