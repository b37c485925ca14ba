import { rm } from 'node:fs/promises';
import { BeforeApplicationShutdown, Injectable, Logger, OnApplicationBootstrap } from '@nestjs/common';
import { SchedulerRegistry } from '@nestjs/schedule';
import { InjectRepository } from '@nestjs/typeorm';
import { plainToInstance } from 'class-transformer';
import { Repository } from 'typeorm';
import { AuditService } from '../audit/audit.service';
import { AppConfig } from '../config/app-config';
import { EngineRegistry } from '../engines/engine-registry';
import { BackgroundJobs, describeError, startReaper } from '../jobs/background-jobs';
import { JobHeartbeat } from '../jobs/job-heartbeat';
import { reapStaleJobs } from '../jobs/stale-jobs';
import { ArtifactPipeline } from '../pipeline/artifact-pipeline';
import { Subject } from 'rxjs';
import { FileIndex, MemoryFileIndex } from '../engines/file-index';
import { ParentIndex } from '../engines/backup-engine';
import { BackupEncryption } from '../pipeline/backup-encryption';
import { ArtifactManifest, MANIFEST_FORMAT, MANIFEST_FORMAT_VERSION, StoredObject } from '../pipeline/manifest';
import { StagedUpload } from '../storage/storage-driver';
import { BackupObjects, backupKeys } from './backup-objects';
import { BackupLeftovers } from './backup-leftovers.service';
import { sweepScratch } from '../jobs/scratch-sweep';
import { BackupPlanEntity } from './backup-plan.entity';
import { SERVICE_NAME, SERVICE_VERSION } from '../service-info';
import { StorageLocationsService } from '../storage/storage-locations.service';
import { JobStatus } from './backup-status';
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
  private readonly jobs = new BackgroundJobs(this.logger);
  private readonly toolVersions = new Map<string, Promise<Record<string, string>>>();

  /** Ids of backups that have just completed (copies and retention follow them). */
  readonly completed = new Subject<string>();
  /** Ids of backups this process has finished running, whatever the outcome (metrics read the record). */
  readonly ended = new Subject<string>();

  constructor(
    @InjectRepository(BackupEntity) private readonly backups: Repository<BackupEntity>,
    @InjectRepository(BackupPlanEntity) private readonly plans: Repository<BackupPlanEntity>,
    private readonly engines: EngineRegistry,
    private readonly locations: StorageLocationsService,
    private readonly pipeline: ArtifactPipeline,
    private readonly objects: BackupObjects,
    private readonly encryption: BackupEncryption,
    private readonly config: AppConfig,
    private readonly registry: SchedulerRegistry,
    private readonly audit: AuditService,
    private readonly leftovers: BackupLeftovers,
  ) {}

  /**
   * Reaps the jobs of processes that died, now and every half lease; then, once, removes what ended jobs left
   * behind (staged objects, empty folders, scratch files: {@link BackupLeftovers}).
   */
  async onApplicationBootstrap(): Promise<void> {
    await startReaper(this.registry, 'backup-reaper', this.config.jobLeaseSeconds, () => this.reapStale(), this.logger);
    await this.leftovers.sweep().catch((error: Error) => this.logger.warn(`sweep of leftovers: ${error.message}`));
  }

  /** Starts a PENDING backup in the background. @returns a promise that settles when it has finished (never rejects). */
  start(backupId: string): Promise<void> {
    return this.jobs.start(backupId, (signal) => this.run(backupId, signal)).then(() => this.ended.next(backupId));
  }

  private async run(backupId: string, signal: AbortSignal): Promise<void> {
    const backup = await this.backups.findOneByOrFail({ id: backupId });
    const engine = this.engines.get(backup.engine);
    const location = await this.locations.get(backup.storageLocationId);
    const driver = this.locations.driverFor(location);
    const keys = backupKeys(backup.id, engine.artifactExtension, backup.encryption !== null);
    const startedAt = new Date();
    const claimed = await this.backups.update(
      { id: backup.id, status: JobStatus.PENDING },
      {
        status: JobStatus.RUNNING,
        startedAt,
        heartbeatAt: startedAt,
        runnerId: this.config.instanceId,
        artifactKey: keys.artifactKey,
        manifestKey: keys.manifestKey,
      },
    );
    if (!claimed.affected) return; // reaped or taken meanwhile
    let rawBytes = 0;
    const heartbeat = new JobHeartbeat(this.backups, backup.id, () => ({ progressBytes: rawBytes }), PROGRESS_INTERVAL_MS).start();
    let upload: StagedUpload | undefined;
    let files: FileIndex | undefined;
    let globalsPath: string | undefined;
    // Aborted on shutdown, and on any failure, so that the engine's child process never outlives the run.
    const runAbort = new AbortController();
    const onShutdown = () => runAbort.abort();
    signal.addEventListener('abort', onShutdown, { once: true });
    try {
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
      run.done.then((r) => ((files = r.files), (globalsPath = r.globalsPath)), () => undefined); // awaited below; when the stream fails first, its rejection is expected
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
      // the details object and an incremental's deletion and move lists are independent: written (and fsynced) together
      const lists = result.incremental
        ? Promise.allSettled([
            this.objects.writeList(driver, keys.deletionsKey, 'deletions', result.incremental.deletionsPath, encryption, uploadOptions),
            this.objects.writeList(driver, keys.movesKey, 'moves', result.incremental.movesPath, encryption, uploadOptions),
          ]).then((settled) =>
            settled.map((s) => {
              if (s.status === 'rejected') throw s.reason;
              return s.value;
            }),
          )
        : undefined;
      lists?.catch(() => undefined); // awaited below (also when the details fail, before the cleanup removes them)
      const details = await this.objects
        .writeDetails(
        driver,
        keys.detailsKey,
        {
          kind: 'dr-backup-details',
          backupId: backup.id,
          engine: engine.name,
          source: backup.source,
          tools: { ...tools, ...result.tools, zstd: 'libzstd (zstd-napi)', ...(encryption ? { age: 'age-encryption (typage)' } : {}) },
          warnings: [...runWarnings, ...result.warnings],
          ...(result.files ? { fileCount: result.files.count } : {}),
          ...(result.tables ? { tables: result.tables } : {}),
          ...(result.walRange ? { walRange: result.walRange } : {}),
          ...(result.indexOrder ? { indexOrder: result.indexOrder } : {}),
          ...(engine.supportsIncremental ? { backupType: backup.backupType } : {}),
          ...(result.incremental && backup.parentId && backup.fullBackupId
            ? {
                incremental: {
                  parentId: backup.parentId,
                  fullBackupId: backup.fullBackupId,
                  archived: result.incremental.archived,
                  touchedDirectories: result.incremental.touchedDirectories,
                  deleted: result.incremental.deleted,
                  moved: result.incremental.moved,
                },
              }
            : {}),
        },
        result.files,
        encryption,
        uploadOptions,
      )
        .catch(async (error: Error) => {
          await lists?.catch(() => undefined);
          throw error;
        });
      const objects = [artifact, details];
      if (lists) objects.push(...(await lists));
      if (result.globalsPath) objects.push(await this.objects.writeList(driver, keys.globalsKey, 'globals', result.globalsPath, encryption, uploadOptions));
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
      await heartbeat.stop();
      const finishedAt = new Date();
      await this.backups.update(backup.id, {
        status: JobStatus.COMPLETED,
        sizeBytes: stored.sizeBytes,
        storedBytes: stored.storedBytes,
        progressBytes: stored.sizeBytes,
        sha256: stored.sha256,
        manifest: manifest,
        objects: manifest.objects,
        fileIndex: (engine.indexInRecord && result.files instanceof MemoryFileIndex ? result.files.all : null),
        fileCount: result.files?.count ?? null,
        tables: (result.tables ?? null),
        walRange: (result.walRange ?? null),
        warnings: [...runWarnings, ...result.warnings] as never,
        signatureKeyId,
        retainUntil: retainUntil ?? null,
        finishedAt,
        heartbeatAt: finishedAt,
      });
      this.logger.log(`backup ${backup.id} (${engine.name}) completed: ${stored.sizeBytes} bytes → ${stored.storedBytes} stored`);
      await this.audit.record({ actor: backup.createdBy, action: 'backup.run', targetType: 'backups', targetId: backup.id, outcome: 'SUCCESS', details: { engine: engine.name, planId: backup.planId, trigger: backup.trigger, storedBytes: stored.storedBytes } });
      this.completed.next(backup.id);
    } catch (error) {
      runAbort.abort();
      await heartbeat.stop();
      await upload?.abort().catch(() => undefined);
      // The signature and manifest go first, so nothing left behind looks like a complete backup.
      for (const key of [keys.signatureKey, keys.manifestKey, keys.globalsKey, keys.deletionsKey, keys.movesKey, keys.detailsKey, keys.artifactKey]) {
        await driver.delete(key).catch((e: Error) => this.logger.warn(`backup ${backup.id}: could not remove ${key}: ${e.message}`));
      }
      const reason = signal.aborted ? 'interrupted: the service was shut down during the backup' : describeError(error);
      await this.backups.update(backup.id, { status: JobStatus.FAILED, error: reason, finishedAt: new Date(), progressBytes: rawBytes });
      this.logger.warn(`backup ${backup.id} (${engine.name}) failed: ${reason}`);
      await this.audit.record({ actor: backup.createdBy, action: 'backup.run', targetType: 'backups', targetId: backup.id, outcome: 'FAILURE', details: { engine: engine.name, planId: backup.planId, trigger: backup.trigger, error: reason } });
    } finally {
      await files?.dispose().catch(() => undefined);
      if (globalsPath) await rm(globalsPath, { force: true }).catch(() => undefined);
      signal.removeEventListener('abort', onShutdown);
    }
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
  async reapStale(): Promise<string[]> {
    const reason = `interrupted: the process running this backup stopped (no heartbeat for ${this.config.jobLeaseSeconds}s)`;
    const reaped = await reapStaleJobs(this.backups, this.config.jobLeaseSeconds, this.jobs.ids(), reason);
    for (const backup of reaped) {
      try {
        const driver = this.locations.driverFor(await this.locations.get(backup.storageLocationId));
        const keys = backupKeys(backup.id, this.engines.get(backup.engine).artifactExtension, backup.encryption !== null);
        await driver.removeStaged(keys.prefix);
        for (const key of [keys.signatureKey, keys.manifestKey, keys.globalsKey, keys.deletionsKey, keys.movesKey, keys.detailsKey, keys.artifactKey]) await driver.delete(key);
        await sweepScratch(this.config.scratchDir, async (id) => id === backup.id); // its spooled index and scan files
      } catch (error) {
        this.logger.warn(`backup ${backup.id}: could not remove partial objects: ${(error as Error).message}`);
      }
      this.logger.warn(`backup ${backup.id} marked FAILED: ${reason}`);
      await this.audit.record({ action: 'backup.run', targetType: 'backups', targetId: backup.id, outcome: 'FAILURE', details: { engine: backup.engine, error: reason } });
    }
    return reaped.map((b) => b.id);
  }

  /** On shutdown: abort running backups (their child processes are killed) and wait until each is recorded FAILED. */
  async beforeApplicationShutdown(): Promise<void> {
    await this.jobs.abortAll();
  }
}
