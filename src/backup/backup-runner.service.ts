import { rm } from 'node:fs/promises';
import { BeforeApplicationShutdown, Injectable, Logger, OnApplicationBootstrap } from '@nestjs/common';
import { InjectRepository } from '@nestjs/typeorm';
import { plainToInstance } from 'class-transformer';
import { Repository } from 'typeorm';
import { AppConfig } from '../config/app-config';
import { BackupEngine, ParentIndex } from '../engines/backup-engine';
import { EngineRegistry } from '../engines/engine-registry';
import { FileIndex, MemoryFileIndex } from '../engines/file-index';
import { JobLifecycle, JobLifecycles, JobWork } from '../jobs/job-lifecycle';
import { JobStatus } from '../jobs/job-status';
import { sweepScratch } from '../jobs/scratch-sweep';
import { ArtifactPipeline } from '../pipeline/artifact-pipeline';
import { BackupEncryption } from '../pipeline/backup-encryption';
import { ArtifactManifest, MANIFEST_FORMAT, MANIFEST_FORMAT_VERSION, StoredObject } from '../pipeline/manifest';
import { SERVICE_NAME, SERVICE_VERSION } from '../service-info';
import { StagedUpload, StorageDriver } from '../storage/drivers/storage-driver';
import { StorageLocationsService } from '../storage/storage-locations.service';
import { BackupCompletedEvent, BackupFailedEvent } from './backup.events';
import { BackupLeftovers } from './backup-leftovers.service';
import { BackupKeys, BackupObjects, backupKeys } from './backup-objects';
import { BackupPlanEntity } from './backup-plan.entity';
import { BackupEntity } from './backup.entity';

const PROGRESS_INTERVAL_MS = 1000;
/**
 * Runs backups: engine → pipeline → storage, then the details object, the manifest and, last, its signature. A
 * backup is COMPLETED only once its signed manifest is published; any failure discards what it staged and
 * published, records the reason, and touches no other backup. Completions are announced on {@link completed}.
 * Also reaps backups whose process died (stale heartbeat): they become FAILED and their partial objects go.
 */
@Injectable()
export class BackupRunner implements OnApplicationBootstrap, BeforeApplicationShutdown {
  private readonly logger = new Logger(BackupRunner.name);
  private readonly lifecycle: JobLifecycle<BackupEntity>;
  private readonly toolVersions = new Map<string, Promise<Record<string, string>>>();

  constructor(
    @InjectRepository(BackupEntity) private readonly backups: Repository<BackupEntity>,
    @InjectRepository(BackupPlanEntity) private readonly plans: Repository<BackupPlanEntity>,
    private readonly engines: EngineRegistry,
    private readonly locations: StorageLocationsService,
    private readonly pipeline: ArtifactPipeline,
    private readonly objects: BackupObjects,
    private readonly encryption: BackupEncryption,
    private readonly config: AppConfig,
    lifecycles: JobLifecycles,
    private readonly leftovers: BackupLeftovers,
  ) {
    this.lifecycle = lifecycles.for(
      {
        kind: 'backup',
        auditTargetType: 'backups',
        repository: backups,
        heartbeatMs: PROGRESS_INTERVAL_MS,
        recordsDuration: false,
        outcomeEvent: (backup, end) => (end.status === JobStatus.COMPLETED ? new BackupCompletedEvent(backup) : new BackupFailedEvent(backup, end)),
      },
      this.logger,
    );
  }

  /**
   * Reaps the jobs of processes that died, now and every half lease; then, once, removes what ended jobs left
   * behind (staged objects, empty folders, scratch files: {@link BackupLeftovers}).
   */
  async onApplicationBootstrap(): Promise<void> {
    await this.lifecycle.bootstrap((backup) => this.cleanUpReaped(backup), false);
    await this.leftovers.sweep().catch((error: Error) => this.logger.warn(`sweep of leftovers: ${error.message}`));
  }

  /**
   * Starts a PENDING backup in the background; {@link BACKUP_COMPLETED} or {@link BACKUP_FAILED} follows its
   * recorded outcome. @returns a promise that settles when it has finished (never rejects).
   */
  start(backupId: string): Promise<void> {
    return this.lifecycle.start(backupId, this.work());
  }

  /** The work of one backup: engine → pipeline → storage, then the details, lists, manifest and signature. */
  private work(): JobWork<BackupEntity> {
    let rawBytes = 0;
    let engine: BackupEngine;
    let keys: BackupKeys;
    let driver: StorageDriver;
    let upload: StagedUpload | undefined;
    let files: FileIndex | undefined;
    let globalsPath: string | undefined;
    // Aborted on shutdown, and on any failure, so that the engine's child process never outlives the run.
    const runAbort = new AbortController();
    const onShutdown = () => runAbort.abort();
    let shutdown: AbortSignal | undefined;
    return {
      claim: (backup) => {
        engine = this.engines.get(backup.engine);
        keys = backupKeys(backup.id, engine.artifactExtension, backup.encryption !== null);
        return { artifactKey: keys.artifactKey, manifestKey: keys.manifestKey };
      },
      progress: () => ({ progressBytes: rawBytes }),
      perform: async (backup, signal, startedAt) => {
        shutdown = signal;
        signal.addEventListener('abort', onShutdown, { once: true });
        driver = this.locations.driverFor(await this.locations.get(backup.storageLocationId));
        const retainUntil = await this.retainUntil(backup, startedAt);
        const uploadOptions = retainUntil ? { retainUntil } : {};
        const encryption = await this.encryption.encryptionKey(backup.encryption);
        const source = plainToInstance(engine.sourceClass, backup.source);
        const tools = await this.toolVersionsOf(engine.name, () => engine.toolVersions());
        const runWarnings = [...(backup.warnings ?? [])];
        let parent: ParentIndex | undefined;
        if (backup.backupType === 'INCREMENTAL') {
          const opened = await this.openParentIndex(backup).catch((error: Error) => error);
          if (opened instanceof Error) {
            // decided when the backup was accepted; the parent's index turned out unusable since: take a full
            runWarnings.push(`full backup instead of an incremental: the index of parent ${backup.parentId} cannot be used: ${opened.message}`);
            await this.backups.update(backup.id, { backupType: 'FULL', parentId: null, fullBackupId: null });
            Object.assign(backup, { backupType: 'FULL', parentId: null, fullBackupId: null });
          } else parent = opened;
        }
        const run = await engine.backup(source, { signal: runAbort.signal, runId: backup.id, scratchDir: this.config.scratchDir, parent });
        run.done.then(
          (r) => ((files = r.files), (globalsPath = r.globalsPath)),
          () => undefined,
        ); // awaited below; when the stream fails first, its rejection is expected
        upload = await driver.createUpload(keys.artifactKey, uploadOptions);
        const stored = await this.pipeline.store(run.stream, upload.stream, {
          onProgress: (n) => (rawBytes = n),
          signal: runAbort.signal,
          encryption,
        });
        const result = await run.done;
        if (stored.sizeBytes === 0) throw new Error(`the ${engine.name} engine produced no data; nothing was stored`);
        await upload.publish();
        const artifact: StoredObject = {
          key: keys.artifactKey,
          role: 'artifact',
          contentType: engine.contentType,
          rawSizeBytes: stored.sizeBytes,
          sizeBytes: stored.storedBytes,
          sha256: stored.sha256,
        };
        const warnings = [...runWarnings, ...result.warnings];
        const objects = await this.objects.writeAll(driver, keys, backup, engine, artifact, result, { tools, warnings, encryption, uploadOptions });
        const manifest: ArtifactManifest = {
          format: MANIFEST_FORMAT,
          formatVersion: MANIFEST_FORMAT_VERSION,
          backupId: backup.id,
          planId: backup.planId,
          engine: engine.name,
          compression: { algorithm: 'zstd', level: this.config.zstdLevel },
          encryption: this.encryption.describe(backup.encryption),
          objects,
          service: { name: SERVICE_NAME, version: SERVICE_VERSION },
          startedAt: startedAt.toISOString(),
          finishedAt: new Date().toISOString(),
        };
        const signatureKeyId = await this.objects.publishManifest(driver, keys, manifest, uploadOptions);
        return {
          fields: {
            sizeBytes: stored.sizeBytes,
            storedBytes: stored.storedBytes,
            progressBytes: stored.sizeBytes,
            sha256: stored.sha256,
            manifest,
            objects: manifest.objects,
            fileIndex: engine.indexInRecord && result.files instanceof MemoryFileIndex ? result.files.all : null,
            fileCount: result.files?.count ?? null,
            tables: result.tables ?? null,
            walRange: result.walRange ?? null,
            warnings,
            signatureKeyId,
            retainUntil: retainUntil ?? null,
          },
          details: { engine: engine.name, planId: backup.planId, trigger: backup.trigger, storedBytes: stored.storedBytes },
          log: `backup ${backup.id} (${engine.name}) completed: ${stored.sizeBytes} bytes → ${stored.storedBytes} stored`,
        };
      },
      failed: async (backup) => {
        runAbort.abort();
        await upload?.abort().catch(() => undefined);
        // The signature and manifest go first, so nothing left behind looks like a complete backup.
        if (driver) await this.objects.deleteAll(driver, keys, (key, e) => this.logger.warn(`backup ${backup.id}: could not remove ${key}: ${e.message}`));
        return { fields: { progressBytes: rawBytes }, details: { engine: backup.engine, planId: backup.planId, trigger: backup.trigger } };
      },
      finally: async () => {
        await files?.dispose().catch(() => undefined);
        if (globalsPath) await rm(globalsPath, { force: true }).catch(() => undefined);
        shutdown?.removeEventListener('abort', onShutdown);
      },
    };
  }

  /**
   * The file index of an incremental's parent, read back from its details object (decrypted with the configured
   * identity when encrypted), streamed in tree-walk order.
   * @throws when the parent is not COMPLETED, has no details object, cannot be decrypted (a plan encrypting to
   *   recipients only, without `DR_AGE_IDENTITY_SECRET`), or its index was written without lstat in tree order.
   */
  private async openParentIndex(backup: BackupEntity): Promise<ParentIndex> {
    const parent = await this.backups.findOneBy({ id: backup.parentId! });
    if (!parent || parent.status !== JobStatus.COMPLETED) throw new Error(`parent ${backup.parentId} is ${parent?.status ?? 'missing'}, not COMPLETED`);
    const details = parent.objects.find((o) => o.role === 'details');
    if (!details) throw new Error('the parent has no details object');
    const driver = this.locations.driverFor(await this.locations.get(parent.storageLocationId));
    const decryption = await this.encryption.decryptionKeys(parent.encryption);
    const { header, files } = await this.objects.readDetails(driver, details, decryption);
    if (header.backupId !== parent.id) throw new Error(`${details.key} belongs to backup ${header.backupId}`);
    if (header.indexOrder !== 'tree') {
      await files[Symbol.asyncIterator]().return?.();
      throw new Error('its file index was written by an older version (no lstat, archive order)');
    }
    return { backupId: parent.id, entries: files };
  }

  /** When the plan asks for immutability: the lock date of this backup's objects. */
  private async retainUntil(backup: BackupEntity, startedAt: Date): Promise<Date | undefined> {
    if (!backup.planId) return undefined;
    const plan = await this.plans.findOneBy({ id: backup.planId });
    if (!plan?.immutableDays) return undefined;
    return new Date(startedAt.getTime() + plan.immutableDays * 86_400_000);
  }

  private toolVersionsOf(engine: string, load: () => Promise<Record<string, string>>): Promise<Record<string, string>> {
    let versions = this.toolVersions.get(engine);
    if (!versions) {
      versions = load().catch(() => ({}));
      this.toolVersions.set(engine, versions);
    }
    return versions;
  }

  /**
   * Marks FAILED every PENDING or RUNNING backup whose heartbeat is older than the job lease (its process died:
   * a crash or kill -9), and removes its partial, staged and published objects (and their folder) and its scratch files.
   * @returns the ids reaped.
   */
  reapStale(): Promise<string[]> {
    return this.lifecycle.reapStale((backup) => this.cleanUpReaped(backup));
  }

  /** What a reaped backup left: staged and published objects, its folder, its scratch files. @returns audit details */
  private async cleanUpReaped(backup: BackupEntity): Promise<Record<string, unknown>> {
    try {
      const driver = this.locations.driverFor(await this.locations.get(backup.storageLocationId));
      const keys = backupKeys(backup.id, this.engines.get(backup.engine).artifactExtension, backup.encryption !== null);
      await driver.removeStaged(keys.prefix);
      await this.objects.deleteAll(driver, keys, (_key, error) => {
        throw error;
      });
      await sweepScratch(this.config.scratchDir, async (id) => id === backup.id); // its spooled index and scan files
    } catch (error) {
      this.logger.warn(`backup ${backup.id}: could not remove partial objects: ${(error as Error).message}`);
    }
    this.logger.warn(`backup ${backup.id} marked FAILED: interrupted (no heartbeat for ${this.config.jobLeaseSeconds}s)`);
    return { engine: backup.engine };
  }

  /** On shutdown: abort running backups (their child processes are killed) and wait until each is recorded FAILED. */
  async beforeApplicationShutdown(): Promise<void> {
    await this.lifecycle.shutdown();
  }
}
