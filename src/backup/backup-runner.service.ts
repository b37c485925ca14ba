import { BeforeApplicationShutdown, Injectable, Logger } from '@nestjs/common';
import { InjectRepository } from '@nestjs/typeorm';
import { plainToInstance } from 'class-transformer';
import { In, LessThan, Repository } from 'typeorm';
import { AppConfig } from '../config/app-config';
import { EngineRegistry } from '../engines/engine-registry';
import { JobHeartbeat } from '../jobs/job-heartbeat';
import { ArtifactPipeline } from '../pipeline/artifact-pipeline';
import { ArtifactManifest, MANIFEST_FORMAT, MANIFEST_FORMAT_VERSION } from '../pipeline/manifest';
import { SERVICE_NAME, SERVICE_VERSION } from '../service-info';
import { StorageLocationsService } from '../storage/storage-locations.service';
import { JobStatus } from './backup-status';
import { BackupEntity } from './backup.entity';

const PROGRESS_INTERVAL_MS = 1000;
/** How long shutdown waits for aborted jobs to record their failure; the reaper of the next start does the rest. */
export const SHUTDOWN_GRACE_MS = 15_000;

/** Waits for `promise`, at most `ms`. */
export async function settleWithin(promise: Promise<unknown>, ms: number): Promise<void> {
  let timer: NodeJS.Timeout | undefined;
  await Promise.race([promise, new Promise((resolve) => (timer = setTimeout(resolve, ms)))]);
  clearTimeout(timer);
}

/** Storage keys of a backup's objects: `<backupId>/artifact.<ext>.zst` and `<backupId>/manifest.json`. */
export function objectKeys(backupId: string, extension: string): { prefix: string; artifactKey: string; manifestKey: string } {
  return { prefix: `${backupId}/`, artifactKey: `${backupId}/artifact.${extension}.zst`, manifestKey: `${backupId}/manifest.json` };
}

/**
 * Runs backups: engine → pipeline → storage, then the manifest, last. A backup is COMPLETED only once its
 * manifest is published; any failure discards what it staged, records the reason, and touches no other backup.
 * Also reaps backups whose process died (stale heartbeat): they become FAILED and their partial objects go.
 */
@Injectable()
export class BackupRunner implements BeforeApplicationShutdown {
  private readonly logger = new Logger(BackupRunner.name);
  private readonly running = new Map<string, { abort: AbortController; finished: Promise<void> }>();
  private readonly toolVersions = new Map<string, Promise<Record<string, string>>>();

  constructor(
    @InjectRepository(BackupEntity) private readonly backups: Repository<BackupEntity>,
    private readonly engines: EngineRegistry,
    private readonly locations: StorageLocationsService,
    private readonly pipeline: ArtifactPipeline,
    private readonly config: AppConfig,
  ) {}

  /** Starts a PENDING backup in the background. @returns a promise that settles when it has finished (never rejects). */
  start(backupId: string): Promise<void> {
    const abort = new AbortController();
    const finished = this.run(backupId, abort.signal)
      .catch((error: Error) => this.logger.error(`backup ${backupId}: ${error.stack ?? error.message}`))
      .finally(() => this.running.delete(backupId));
    this.running.set(backupId, { abort, finished });
    return finished;
  }

  /** Ids of the backups this process is running. */
  runningIds(): string[] {
    return [...this.running.keys()];
  }

  private async run(backupId: string, signal: AbortSignal): Promise<void> {
    const backup = await this.backups.findOneByOrFail({ id: backupId });
    const engine = this.engines.get(backup.engine);
    const location = await this.locations.get(backup.storageLocationId);
    const driver = this.locations.driverFor(location);
    const keys = objectKeys(backup.id, engine.artifactExtension);
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
    let upload: Awaited<ReturnType<typeof driver.createUpload>> | undefined;
    // Aborted on shutdown, and on any failure, so that the engine's child process never outlives the run.
    const runAbort = new AbortController();
    const onShutdown = () => runAbort.abort();
    signal.addEventListener('abort', onShutdown, { once: true });
    try {
      const source = plainToInstance(engine.sourceClass, backup.source);
      const tools = await this.toolVersionsOf(engine.name, () => engine.toolVersions());
      const run = await engine.backup(source, { signal: runAbort.signal, runId: backup.id });
      run.done.catch(() => undefined); // awaited below; when the stream fails first, its rejection is expected
      upload = await driver.createUpload(keys.artifactKey);
      const stored = await this.pipeline.store(run.stream, upload.stream, (n) => (rawBytes = n), runAbort.signal);
      const result = await run.done;
      if (stored.sizeBytes === 0) throw new Error(`the ${engine.name} engine produced no data; nothing was stored`);
      await upload.publish();
      const finishedAt = new Date();
      const manifest: ArtifactManifest = {
        format: MANIFEST_FORMAT,
        formatVersion: MANIFEST_FORMAT_VERSION,
        backupId: backup.id,
        planId: backup.planId,
        engine: engine.name,
        source: backup.source,
        artifact: {
          key: keys.artifactKey,
          contentType: engine.contentType,
          compression: 'zstd',
          compressionLevel: this.config.zstdLevel,
          sizeBytes: stored.sizeBytes,
          storedBytes: stored.storedBytes,
          sha256: stored.sha256,
        },
        tools: { ...tools, zstd: `zstd-napi (libzstd)` },
        service: { name: SERVICE_NAME, version: SERVICE_VERSION },
        startedAt: startedAt.toISOString(),
        finishedAt: finishedAt.toISOString(),
        warnings: result.warnings,
        ...(result.fileIndex ? { files: result.fileIndex } : {}),
      };
      await driver.putObject(keys.manifestKey, Buffer.from(JSON.stringify(manifest, null, 2)));
      await heartbeat.stop();
      const { files: _files, ...manifestWithoutFiles } = manifest;
      await this.backups.update(backup.id, {
        status: JobStatus.COMPLETED,
        sizeBytes: stored.sizeBytes,
        storedBytes: stored.storedBytes,
        progressBytes: stored.sizeBytes,
        sha256: stored.sha256,
        manifest: manifestWithoutFiles as never,
        fileIndex: (result.fileIndex ?? null) as never,
        finishedAt,
        heartbeatAt: finishedAt,
      });
      this.logger.log(`backup ${backup.id} (${engine.name}) completed: ${stored.sizeBytes} bytes → ${stored.storedBytes} stored`);
    } catch (error) {
      runAbort.abort();
      await heartbeat.stop();
      await upload?.abort().catch(() => undefined);
      await driver.delete(keys.manifestKey).catch(() => undefined);
      await driver.delete(keys.artifactKey).catch(() => undefined);
      const reason = signal.aborted ? 'interrupted: the service was shut down during the backup' : describeError(error);
      await this.backups.update(backup.id, { status: JobStatus.FAILED, error: reason, finishedAt: new Date(), progressBytes: rawBytes });
      this.logger.warn(`backup ${backup.id} (${engine.name}) failed: ${reason}`);
    } finally {
      signal.removeEventListener('abort', onShutdown);
    }
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
   * a crash or kill -9), and removes its partial and staged objects.
   * @returns the ids reaped.
   */
  async reapStale(): Promise<string[]> {
    const cutoff = new Date(Date.now() - this.config.jobLeaseSeconds * 1000);
    const stale = await this.backups.find({
      where: [
        { status: In([JobStatus.RUNNING]), heartbeatAt: LessThan(cutoff) },
        { status: In([JobStatus.PENDING]), createdAt: LessThan(cutoff) },
      ],
    });
    const reaped: string[] = [];
    for (const backup of stale) {
      if (this.running.has(backup.id)) continue;
      const reason = `interrupted: the process running this backup stopped (no heartbeat for ${this.config.jobLeaseSeconds}s)`;
      const result = await this.backups
        .createQueryBuilder()
        .update()
        .set({ status: JobStatus.FAILED, error: reason, finishedAt: new Date() })
        .where('id = :id AND status IN (:...statuses)', { id: backup.id, statuses: [JobStatus.RUNNING, JobStatus.PENDING] })
        .andWhere('(heartbeat_at IS NULL OR heartbeat_at < :cutoff)', { cutoff })
        .execute();
      if (!result.affected) continue;
      reaped.push(backup.id);
      try {
        const driver = this.locations.driverFor(await this.locations.get(backup.storageLocationId));
        const { prefix } = objectKeys(backup.id, 'x');
        await driver.removeStaged(prefix);
        if (backup.artifactKey) await driver.delete(backup.artifactKey);
        if (backup.manifestKey) await driver.delete(backup.manifestKey);
      } catch (error) {
        this.logger.warn(`backup ${backup.id}: could not remove partial objects: ${(error as Error).message}`);
      }
      this.logger.warn(`backup ${backup.id} marked FAILED: ${reason}`);
    }
    return reaped;
  }

  /** On shutdown: abort running backups (their child processes are killed) and wait until each is recorded FAILED. */
  async beforeApplicationShutdown(): Promise<void> {
    const jobs = [...this.running.values()];
    for (const job of jobs) abortQuietly(job.abort);
    await settleWithin(Promise.all(jobs.map((j) => j.finished)), SHUTDOWN_GRACE_MS);
  }
}

/** A failure reason for records: the error's message (built by us or by the tools, never holding secrets). */
export function describeError(error: unknown): string {
  const message = error instanceof Error ? error.message : String(error);
  return message.length > 2000 ? `${message.slice(0, 2000)}…` : message;
}

/** Aborts, ignoring errors thrown by abort listeners (a stream already destroyed). */
export function abortQuietly(controller: AbortController): void {
  try {
    controller.abort();
  } catch {
    // the listeners' errors surface through the run's own promise
  }
}
