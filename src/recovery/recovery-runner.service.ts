import { BeforeApplicationShutdown, Injectable, Logger, OnApplicationBootstrap } from '@nestjs/common';
import { SchedulerRegistry } from '@nestjs/schedule';
import { InjectRepository } from '@nestjs/typeorm';
import { mkdir, realpath, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { plainToInstance } from 'class-transformer';
import { Subject } from 'rxjs';
import { Repository } from 'typeorm';
import { BackupChains } from '../backup/backup-chain';
import { JobStatus } from '../backup/backup-status';
import { BackupsService } from '../backup/backups.service';
import { AuditService } from '../audit/audit.service';
import { AppConfig } from '../config/app-config';
import { EngineRegistry } from '../engines/engine-registry';
import { DirectoryStaging } from '../engines/staged-directory';
import { BackgroundJobs, describeError, startReaper } from '../jobs/background-jobs';
import { JobHeartbeat } from '../jobs/job-heartbeat';
import { JobRow, reapStaleJobs } from '../jobs/stale-jobs';
import { sweepScratch } from '../jobs/scratch-sweep';
import { ArtifactPipeline } from '../pipeline/artifact-pipeline';
import { BackupEncryption } from '../pipeline/backup-encryption';
import { StorageLocationsService } from '../storage/storage-locations.service';
import { RecoveryEntity } from './recovery.entity';
import { EngineRunContext } from '../engines/backup-engine';
import { PointInTimeTarget } from '../engines/postgres-base.engine';
import { PointInTimeRecovery, PointReached } from '../wal/point-in-time-recovery.service';
import { TargetReservations } from './target-reservations';

/**
 * Runs recoveries: manifest and signature check → storage → size and SHA-256 check → age decryption → zstd → engine
 * restore. Nothing reaches the target before the object is proven against its signed manifest: engines that
 * stage (directories, PostgreSQL) commit only once the stream has ended, proven; for the others (MySQL, which
 * executes as it reads) the stored object is proven first into a scratch copy, then applied from that copy. An
 * incremental's whole chain is checked (manifests, signatures) before the first byte is read and proven before
 * the commit. The duration from start to the target being usable is recorded (the measured RTO). A failure is
 * recorded with its reason; the backup is never touched. The target is reserved from the request until the end
 * ({@link TargetReservations}).
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
    private readonly chains: BackupChains,
    private readonly encryption: BackupEncryption,
    private readonly config: AppConfig,
    private readonly registry: SchedulerRegistry,
    private readonly audit: AuditService,
    private readonly pointInTimeRecovery: PointInTimeRecovery,
    private readonly reservations: TargetReservations,
  ) {}

  /**
   * Reaps the jobs of processes that died, now and every half lease; then, once, removes the scratch files of
   * recoveries that have ended (a proven copy, a spooled dump).
   */
  async onApplicationBootstrap(): Promise<void> {
    await startReaper(this.registry, 'recovery-reaper', this.config.jobLeaseSeconds, () => this.reapStale(), this.logger);
    await sweepScratch(this.config.scratchDir, async (id) => {
      const row = await this.recoveries.findOne({ where: { id }, select: { id: true, status: true } });
      return row !== null && row.status !== JobStatus.RUNNING && row.status !== JobStatus.PENDING;
    }).catch((error: Error) => this.logger.warn(`sweep of recovery scratch files: ${error.message}`));
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
    // stored bytes read from the store; raw (decompressed) bytes the engine took, which reach the target
    let bytesRead = 0;
    let rawBytes = 0;
    let staged = true;
    const heartbeat = new JobHeartbeat(this.recoveries, recovery.id, () => ({ bytesRead }), 1000).start();
    let raw: Readable | undefined;
    try {
      if (!recovery.backupId) throw new Error('this recovery has no backup to restore (it was reported externally)');
      const backup = await this.backups.requireCompleted(recovery.backupId);
      const location = await this.locations.get(recovery.storageLocationId ?? backup.storageLocationId);
      const driver = this.locations.driverFor(location);
      const warnings: string[] = [];
      const engine = this.engines.get(backup.engine);
      staged = engine.restoreIsStaged;
      const target = plainToInstance(engine.targetClass, recovery.target);
      const context: EngineRunContext = { signal, runId: recovery.id, scratchDir: this.config.scratchDir };
      let pointInTime: PointReached | null = null;
      let result: { warnings: string[] };
      if (backup.backupType === 'INCREMENTAL') {
        // the chain: full, then each incremental up to this one, every member checked like a single backup; every
        // manifest and signature is checked before the first byte is read, every object proven before the commit
        if (!engine.restoreChain) throw new Error(`the ${engine.name} engine cannot restore incremental backups`);
        const chain = await this.chains.chainOf(backup);
        const options = {
          storageLocationId: recovery.storageLocationId,
          trustUnsignedManifest,
          warnings,
          onRead: (n: number) => (bytesRead += n),
          onRaw: (n: number) => (rawBytes += n),
        };
        await this.chains.checkManifests(chain, options);
        result = await engine.restoreChain(target, this.chains.open(chain, options), recovery.overwrite, context);
      } else {
        const artifact = await this.chains.checkedObject(backup, 'artifact', driver, { trustUnsignedManifest, warnings });
        const decryption = await this.encryption.decryptionKeys(backup.encryption);
        if (backup.objects.some((o) => o.role === 'globals')) {
          // the roles/accounts the database needs: checked against the same signed manifest (its warnings, if any,
          // were recorded for the artifact above)
          const globals = await this.chains.checkedObject(backup, 'globals', driver, { trustUnsignedManifest, warnings: [] });
          context.openGlobals = async () =>
            this.pipeline.openRaw(await driver.read(globals.key), globals.key, globals.sha256, { decryption, expectedSize: globals.sizeBytes });
        }
        // POINT_IN_TIME: the WAL archive is checked before anything is read or laid down.
        const pitrPlan = recovery.type === 'POINT_IN_TIME' ? await this.pointInTimeRecovery.precheck(backup, target as PointInTimeTarget) : null;
        const onProgress = (n: number) => (bytesRead = n);
        const onRawProgress = (n: number) => (rawBytes = n);
        if (engine.restoreIsStaged) {
          // applied into a staging area (or spooled) and committed only once the stream has ended, proven
          raw = await this.pipeline.openRaw(await driver.read(artifact.key), artifact.key, artifact.sha256, { decryption, onProgress, onRawProgress, expectedSize: artifact.sizeBytes });
        } else {
          // the engine applies as it reads: the stored object is proven first, into a private scratch copy
          await mkdir(this.config.scratchDir, { recursive: true, mode: 0o700 });
          const spool = join(this.config.scratchDir, `${recovery.id}.stored`);
          await this.pipeline.prove(await driver.read(artifact.key), spool, artifact, onProgress);
          raw = await this.pipeline.openProven(spool, artifact, { decryption, onRawProgress });
        }
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
        bytesRestored: rawBytes,
        bytesRead,
        pointInTime: pointInTime,
        finishedAt,
        heartbeatAt: finishedAt,
        durationMs: finishedAt.getTime() - startedAt.getTime(),
      });
      await this.audit.record({ actor: recovery.createdBy, action: 'recovery.run', targetType: 'recovery', targetId: recovery.id, outcome: 'SUCCESS', details: { backupId: backup.id, type: recovery.type, durationMs: finishedAt.getTime() - startedAt.getTime() } });
      this.logger.log(`recovery ${recovery.id} of backup ${backup.id} from ${location.name} completed in ${finishedAt.getTime() - startedAt.getTime()} ms`);
    } catch (error) {
      raw?.destroy();
      await rm(join(this.config.scratchDir, `${recovery.id}.stored`), { force: true }).catch(() => undefined);
      await heartbeat.stop();
      const finishedAt = new Date();
      const reason = signal.aborted ? 'interrupted: the service was shut down during the recovery' : describeError(error);
      await this.recoveries.update(recovery.id, {
        status: JobStatus.FAILED,
        error: reason,
        finishedAt,
        durationMs: finishedAt.getTime() - startedAt.getTime(),
        // a staged restore that failed left its target as it was: nothing reached it
        bytesRestored: staged ? 0 : rawBytes,
        bytesRead,
      });
      this.logger.warn(`recovery ${recovery.id} failed: ${reason}`);
      await this.audit.record({ actor: recovery.createdBy, action: 'recovery.run', targetType: 'recovery', targetId: recovery.id, outcome: 'FAILURE', details: { backupId: recovery.backupId, type: recovery.type, error: reason } });
    } finally {
      await this.reservations.release(recovery.id).catch((e: Error) => this.logger.warn(`recovery ${recovery.id}: could not release its target: ${e.message}`));
    }
  }

  /**
   * Marks FAILED the recoveries whose process died (heartbeat older than the job lease), then puts their directory
   * targets back as they were (a staging area rolled back and removed, see {@link DirectoryStaging}), removes their
   * scratch copy, and releases their targets. @returns their ids
   */
  async reapStale(): Promise<string[]> {
    const reason = `interrupted: the process running this recovery stopped (no heartbeat for ${this.config.jobLeaseSeconds}s)`;
    // Only PENDING and RUNNING rows are reaped, whose statuses are JobStatus values; the wider type is safe here.
    const repository = this.recoveries as unknown as Repository<JobRow>;
    const reaped = (await reapStaleJobs(repository, this.config.jobLeaseSeconds, this.jobs.ids(), reason)) as unknown as RecoveryEntity[];
    for (const r of reaped) {
      const path = r.target?.path ?? r.target?.dataDirectory;
      try {
        if (typeof path === 'string') {
          const real = await realpath(path).catch(() => null);
          if (real && (await DirectoryStaging.rollBackLeftover(real, r.id))) this.logger.warn(`recovery ${r.id}: its staging area in ${real} was rolled back and removed`);
        }
        await sweepScratch(this.config.scratchDir, async (id) => id === r.id); // its proven copy or spooled dump
      } catch (error) {
        this.logger.warn(`recovery ${r.id}: could not clean up after it: ${(error as Error).message}`);
      }
      await this.reservations.release(r.id);
      await this.audit.record({ action: 'recovery.run', targetType: 'recovery', targetId: r.id, outcome: 'FAILURE', details: { backupId: r.backupId, error: reason } });
    }
    return reaped.map((r) => r.id);
  }

  async beforeApplicationShutdown(): Promise<void> {
    await this.jobs.abortAll();
  }
}
