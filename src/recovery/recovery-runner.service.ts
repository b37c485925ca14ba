import { BeforeApplicationShutdown, Injectable, Logger, OnApplicationBootstrap } from '@nestjs/common';
import { InjectRepository } from '@nestjs/typeorm';
import { mkdir, realpath, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { plainToInstance } from 'class-transformer';
import { Repository } from 'typeorm';
import { BackupChains } from '../backup/backup-chain';
import { BackupsService } from '../backup/backups.service';
import { AppConfig } from '../config/app-config';
import { EngineRunContext } from '../engines/backup-engine';
import { EngineRegistry } from '../engines/engine-registry';
import { PointInTimeTarget } from '../engines/postgres-base.engine';
import { DirectoryStaging } from '../engines/staged-directory';
import { JobLifecycle, JobLifecycles, JobWork } from '../jobs/job-lifecycle';
import { JobStatus } from '../jobs/job-status';
import { sweepScratch } from '../jobs/scratch-sweep';
import { ArtifactPipeline } from '../pipeline/artifact-pipeline';
import { BackupEncryption } from '../pipeline/backup-encryption';
import { StorageLocationsService } from '../storage/storage-locations.service';
import { PointInTimeRecovery, PointReached } from './point-in-time-recovery.service';
import { RecoveryCompletedEvent, RecoveryFailedEvent } from './recovery.events';
import { RecoveryEntity } from './recovery.entity';
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
  private readonly lifecycle: JobLifecycle<RecoveryEntity>;

  constructor(
    @InjectRepository(RecoveryEntity) recoveries: Repository<RecoveryEntity>,
    private readonly backups: BackupsService,
    private readonly engines: EngineRegistry,
    private readonly locations: StorageLocationsService,
    private readonly pipeline: ArtifactPipeline,
    private readonly chains: BackupChains,
    private readonly encryption: BackupEncryption,
    private readonly config: AppConfig,
    lifecycles: JobLifecycles,
    private readonly pointInTimeRecovery: PointInTimeRecovery,
    private readonly reservations: TargetReservations,
  ) {
    this.lifecycle = lifecycles.for(
      {
        kind: 'recovery',
        auditTargetType: 'recovery',
        repository: recoveries,
        heartbeatMs: 1000,
        recordsDuration: true,
        outcomeEvent: async (recovery, end) => {
          const engine = await this.engineOf(recovery);
          return end.status === JobStatus.COMPLETED ? new RecoveryCompletedEvent(recovery, engine) : new RecoveryFailedEvent(recovery, engine, end);
        },
      },
      this.logger,
    );
  }

  /**
   * Reaps the jobs of processes that died, now and every half lease; then, once, removes the scratch files of
   * recoveries that have ended (a proven copy, a spooled dump).
   */
  async onApplicationBootstrap(): Promise<void> {
    await this.lifecycle.bootstrap((recovery) => this.cleanUpReaped(recovery), true);
  }

  /**
   * Starts a PENDING recovery in the background (with the request's `trustUnsignedManifest` choice, kept on the
   * record); the promise settles when it has finished (never rejects), after {@link RECOVERY_COMPLETED} or
   * {@link RECOVERY_FAILED}.
   */
  start(recoveryId: string): Promise<void> {
    return this.lifecycle.start(recoveryId, this.work());
  }

  /** The work of one recovery: check, read, prove, restore; the target reservation released at the end. */
  private work(): JobWork<RecoveryEntity> {
    // stored bytes read from the store; raw (decompressed) bytes the engine took, which reach the target
    let bytesRead = 0;
    let rawBytes = 0;
    let staged = true;
    let raw: Readable | undefined;
    return {
      progress: () => ({ bytesRead }),
      perform: async (recovery, signal) => {
        const trustUnsignedManifest = recovery.trustUnsignedManifest;
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
            raw = await this.pipeline.openRaw(await driver.read(artifact.key), artifact.key, artifact.sha256, {
              decryption,
              onProgress,
              onRawProgress,
              expectedSize: artifact.sizeBytes,
            });
          } else {
            // the engine applies as it reads: the stored object is proven first, into a private scratch copy
            await mkdir(this.config.scratchDir, { recursive: true, mode: 0o700 });
            const spool = join(this.config.scratchDir, `${recovery.id}.stored`);
            await this.pipeline.prove(await driver.read(artifact.key), spool, artifact, onProgress);
            raw = await this.pipeline.openProven(spool, artifact, { decryption, onRawProgress });
          }
          if (pitrPlan) {
            ({ pointInTime, ...result } = await this.pointInTimeRecovery.recover(
              backup,
              target as PointInTimeTarget,
              raw,
              recovery.overwrite,
              context,
              pitrPlan,
            ));
          } else {
            result = await engine.restore(target, raw, recovery.overwrite, context);
          }
        }
        return {
          fields: { warnings: [...warnings, ...result.warnings], bytesRestored: rawBytes, bytesRead, pointInTime },
          details: (durationMs) => ({ backupId: backup.id, type: recovery.type, durationMs }),
          log: (durationMs) => `recovery ${recovery.id} of backup ${backup.id} from ${location.name} completed in ${durationMs} ms`,
        };
      },
      failed: async (recovery) => {
        raw?.destroy();
        await rm(join(this.config.scratchDir, `${recovery.id}.stored`), { force: true }).catch(() => undefined);
        // a staged restore that failed left its target as it was: nothing reached it
        return { fields: { bytesRestored: staged ? 0 : rawBytes, bytesRead }, details: { backupId: recovery.backupId, type: recovery.type } };
      },
      finally: (recovery) =>
        this.reservations.release(recovery.id).catch((e: Error) => this.logger.warn(`recovery ${recovery.id}: could not release its target: ${e.message}`)),
    };
  }

  /**
   * Marks FAILED the recoveries whose process died (heartbeat older than the job lease), then puts their directory
   * targets back as they were (a staging area rolled back and removed, see {@link DirectoryStaging}), removes their
   * scratch copy, and releases their targets. @returns their ids
   */
  reapStale(): Promise<string[]> {
    return this.lifecycle.reapStale((recovery) => this.cleanUpReaped(recovery));
  }

  /** What a reaped recovery left: its staging area, its scratch copy, its target reservation. @returns audit details */
  private async cleanUpReaped(r: RecoveryEntity): Promise<Record<string, unknown>> {
    const path = r.target?.path ?? r.target?.dataDirectory;
    try {
      if (typeof path === 'string') {
        const real = await realpath(path).catch(() => null);
        if (real && (await DirectoryStaging.rollBackLeftover(real, r.id)))
          this.logger.warn(`recovery ${r.id}: its staging area in ${real} was rolled back and removed`);
      }
      await sweepScratch(this.config.scratchDir, async (id) => id === r.id); // its proven copy or spooled dump
    } catch (error) {
      this.logger.warn(`recovery ${r.id}: could not clean up after it: ${(error as Error).message}`);
    }
    await this.reservations.release(r.id);
    return { backupId: r.backupId };
  }

  /** The engine of the backup a recovery restores (`unknown` for none, or when its record cannot be read). */
  private async engineOf(recovery: RecoveryEntity): Promise<string> {
    if (!recovery.backupId) return 'unknown';
    return this.backups.get(recovery.backupId).then(
      (b) => b.engine,
      () => 'unknown',
    );
  }

  async beforeApplicationShutdown(): Promise<void> {
    await this.lifecycle.shutdown();
  }
}
