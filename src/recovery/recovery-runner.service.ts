import { BeforeApplicationShutdown, Injectable, Logger } from '@nestjs/common';
import { InjectRepository } from '@nestjs/typeorm';
import { Readable } from 'node:stream';
import { plainToInstance } from 'class-transformer';
import { In, LessThan, Repository } from 'typeorm';
import { abortQuietly, describeError, settleWithin, SHUTDOWN_GRACE_MS } from '../backup/backup-runner.service';
import { JobStatus } from '../backup/backup-status';
import { BackupsService } from '../backup/backups.service';
import { AppConfig } from '../config/app-config';
import { EngineRegistry } from '../engines/engine-registry';
import { JobHeartbeat } from '../jobs/job-heartbeat';
import { ArtifactPipeline } from '../pipeline/artifact-pipeline';
import { StorageLocationsService } from '../storage/storage-locations.service';
import { RecoveryEntity } from './recovery.entity';

/**
 * Runs recoveries: storage → SHA-256 check → zstd → engine restore. The duration from start to the target being
 * usable is recorded (the measured RTO). A failure is recorded with its reason; the backup is never touched.
 */
@Injectable()
export class RecoveryRunner implements BeforeApplicationShutdown {
  private readonly logger = new Logger(RecoveryRunner.name);
  private readonly running = new Map<string, { abort: AbortController; finished: Promise<void> }>();

  constructor(
    @InjectRepository(RecoveryEntity) private readonly recoveries: Repository<RecoveryEntity>,
    private readonly backups: BackupsService,
    private readonly engines: EngineRegistry,
    private readonly locations: StorageLocationsService,
    private readonly pipeline: ArtifactPipeline,
    private readonly config: AppConfig,
  ) {}

  /** Starts a PENDING recovery in the background; the promise settles when it has finished (never rejects). */
  start(recoveryId: string): Promise<void> {
    const abort = new AbortController();
    const finished = this.run(recoveryId, abort.signal)
      .catch((error: Error) => this.logger.error(`recovery ${recoveryId}: ${error.stack ?? error.message}`))
      .finally(() => this.running.delete(recoveryId));
    this.running.set(recoveryId, { abort, finished });
    return finished;
  }

  private async run(recoveryId: string, signal: AbortSignal): Promise<void> {
    const startedAt = new Date();
    const claimed = await this.recoveries.update(
      { id: recoveryId, status: JobStatus.PENDING },
      { status: JobStatus.RUNNING, startedAt, heartbeatAt: startedAt, runnerId: this.config.instanceId },
    );
    if (!claimed.affected) return;
    const recovery = await this.recoveries.findOneByOrFail({ id: recoveryId });
    let storedBytes = 0;
    const heartbeat = new JobHeartbeat(this.recoveries, recovery.id, () => ({ bytesRestored: storedBytes }), 1000).start();
    let stored: Readable | undefined;
    let raw: Readable | undefined;
    try {
      const backup = await this.backups.requireCompleted(recovery.backupId);
      const manifest = await this.backups.manifest(backup.id);
      if (manifest.artifact.sha256 !== backup.sha256) {
        throw new Error(`manifest ${backup.manifestKey} records sha256 ${manifest.artifact.sha256}, the backup record ${backup.sha256}`);
      }
      const engine = this.engines.get(backup.engine);
      const target = plainToInstance(engine.targetClass, recovery.target);
      const driver = this.locations.driverFor(await this.locations.get(backup.storageLocationId));
      stored = await driver.read(backup.artifactKey!);
      raw = this.pipeline.openRaw(stored, backup.artifactKey!, backup.sha256!, (n) => (storedBytes = n));
      const { warnings } = await engine.restore(target, raw, recovery.overwrite, { signal, runId: recovery.id });
      await heartbeat.stop();
      const finishedAt = new Date();
      await this.recoveries.update(recovery.id, {
        status: JobStatus.COMPLETED,
        warnings,
        bytesRestored: storedBytes,
        finishedAt,
        heartbeatAt: finishedAt,
        durationMs: finishedAt.getTime() - startedAt.getTime(),
      });
      this.logger.log(`recovery ${recovery.id} of backup ${backup.id} completed in ${finishedAt.getTime() - startedAt.getTime()} ms`);
    } catch (error) {
      raw?.destroy();
      stored?.destroy();
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
    }
  }

  /** Marks FAILED the recoveries whose process died (heartbeat older than the job lease). @returns their ids */
  async reapStale(): Promise<string[]> {
    const cutoff = new Date(Date.now() - this.config.jobLeaseSeconds * 1000);
    const stale = await this.recoveries.find({
      where: [
        { status: In([JobStatus.RUNNING]), heartbeatAt: LessThan(cutoff) },
        { status: In([JobStatus.PENDING]), createdAt: LessThan(cutoff) },
      ],
    });
    const reaped: string[] = [];
    for (const r of stale) {
      if (this.running.has(r.id)) continue;
      const result = await this.recoveries
        .createQueryBuilder()
        .update()
        .set({ status: JobStatus.FAILED, error: `interrupted: the process running this recovery stopped (no heartbeat for ${this.config.jobLeaseSeconds}s); the target may hold a partial restore`, finishedAt: new Date() })
        .where('id = :id AND status IN (:...statuses)', { id: r.id, statuses: [JobStatus.RUNNING, JobStatus.PENDING] })
        .andWhere('(heartbeat_at IS NULL OR heartbeat_at < :cutoff)', { cutoff })
        .execute();
      if (result.affected) reaped.push(r.id);
    }
    return reaped;
  }

  async beforeApplicationShutdown(): Promise<void> {
    const jobs = [...this.running.values()];
    for (const job of jobs) abortQuietly(job.abort);
    await settleWithin(Promise.all(jobs.map((j) => j.finished)), SHUTDOWN_GRACE_MS);
  }
}
