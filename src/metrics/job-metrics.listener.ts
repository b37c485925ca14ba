import { Injectable, Logger, OnApplicationShutdown, OnModuleInit } from '@nestjs/common';
import { ModuleRef } from '@nestjs/core';
import { InjectRepository } from '@nestjs/typeorm';
import { Subject, Subscription } from 'rxjs';
import { Repository } from 'typeorm';
import { BackupRunner } from '../backup/backup-runner.service';
import { JobStatus } from '../jobs/job-status';
import { BackupEntity } from '../backup/backup.entity';
import { VerificationEntity } from '../validation/verification.entity';
import { VerificationRunner } from '../validation/verification-runner.service';
import { AppConfig } from '../config/app-config';
import { RecoveryEntity } from '../recovery/recovery.entity';
import { RecoveryStatus } from '../recovery/recovery-status';
import { RecoveryRunner } from '../recovery/recovery-runner.service';
import { JobOutcome, MetricsService } from './metrics.service';

/** The finished job records this listener can read: status, runner and times. */
interface JobRecord {
  status: JobStatus | RecoveryStatus;
  runnerId: string | null;
  startedAt: Date | null;
  finishedAt: Date | null;
}

/**
 * Feeds the job counters and histograms: subscribes to the runners' `ended` subjects (an id each time a job
 * this process ran has ended, whatever the outcome), reads the job's record and records its outcome, duration
 * and, for backups, the stored bytes. Jobs not claimed by this process (taken by another replica, reaped) and
 * jobs still not terminal are skipped. The runners are looked up through the module graph, so that the runners'
 * modules need not export them.
 */
@Injectable()
export class JobMetricsListener implements OnModuleInit, OnApplicationShutdown {
  private readonly logger = new Logger(JobMetricsListener.name);
  private readonly subscriptions: Subscription[] = [];

  constructor(
    private readonly moduleRef: ModuleRef,
    private readonly metrics: MetricsService,
    private readonly config: AppConfig,
    @InjectRepository(BackupEntity) private readonly backups: Repository<BackupEntity>,
    @InjectRepository(RecoveryEntity) private readonly recoveries: Repository<RecoveryEntity>,
    @InjectRepository(VerificationEntity) private readonly verifications: Repository<VerificationEntity>,
  ) {}

  onModuleInit(): void {
    const runner = <T>(type: new (...args: never[]) => T) => this.moduleRef.get(type, { strict: false });
    this.listen(runner(BackupRunner).ended, (id) => this.backupFinished(id));
    this.listen(runner(RecoveryRunner).ended, (id) => this.recoveryFinished(id));
    this.listen(runner(VerificationRunner).ended, (id) => this.verificationFinished(id));
  }

  onApplicationShutdown(): void {
    for (const subscription of this.subscriptions) subscription.unsubscribe();
  }

  private listen(ended: Subject<string>, record: (id: string) => Promise<void>): void {
    this.subscriptions.push(
      ended.subscribe((id) => {
        record(id).catch((e: Error) => this.logger.warn(`metrics of job ${id} not recorded: ${e.message}`));
      }),
    );
  }

  private async backupFinished(id: string): Promise<void> {
    const backup = await this.backups.findOne({
      where: { id },
      select: ['id', 'engine', 'status', 'runnerId', 'startedAt', 'finishedAt', 'storedBytes'],
    });
    const outcome = backup && this.outcomeOf(backup);
    if (!backup || !outcome) return;
    this.metrics.recordBackup(backup.engine, outcome, durationSeconds(backup), backup.storedBytes);
  }

  private async recoveryFinished(id: string): Promise<void> {
    const recovery = await this.recoveries.findOneBy({ id });
    const outcome = recovery && this.outcomeOf(recovery);
    if (!recovery || !outcome) return;
    const backup = recovery.backupId ? await this.backups.findOne({ where: { id: recovery.backupId }, select: ['id', 'engine'] }) : null;
    const seconds = recovery.durationMs !== null ? recovery.durationMs / 1000 : durationSeconds(recovery);
    this.metrics.recordRestore(backup?.engine ?? 'unknown', outcome, seconds);
  }

  private async verificationFinished(id: string): Promise<void> {
    const verification = await this.verifications.findOneBy({ id });
    const outcome = verification && this.outcomeOf(verification);
    if (!verification || !outcome) return;
    this.metrics.recordVerification(verification.mode, outcome === 'failed' ? 'error' : verification.ok ? 'ok' : 'problems');
  }

  /** The outcome of a terminal job this process ran; undefined otherwise. */
  private outcomeOf(job: JobRecord): JobOutcome | undefined {
    if (job.runnerId !== this.config.instanceId) return undefined;
    if (job.status === JobStatus.COMPLETED) return 'completed';
    if (job.status === JobStatus.FAILED) return 'failed';
    return undefined;
  }
}

/** Seconds from start to finish of a job record; null when either is missing. */
function durationSeconds(job: JobRecord): number | null {
  if (!job.startedAt || !job.finishedAt) return null;
  return Math.max(0, (job.finishedAt.getTime() - job.startedAt.getTime()) / 1000);
}
