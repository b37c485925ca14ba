import { Injectable } from '@nestjs/common';
import { OnEvent } from '@nestjs/event-emitter';
import { BACKUP_COMPLETED, BACKUP_FAILED, BackupCompletedEvent, BackupFailedEvent } from '../backup/backup.events';
import { RECOVERY_COMPLETED, RECOVERY_FAILED, RecoveryCompletedEvent, RecoveryFailedEvent } from '../recovery/recovery.events';
import { VERIFICATION_COMPLETED, VERIFICATION_FAILED, VerificationCompletedEvent, VerificationFailedEvent } from '../validation/verification.events';
import { MetricsService } from './metrics.service';

/**
 * Feeds the job counters and histograms from the domain events of the jobs this process ran: outcome, duration
 * and, for backups, the stored bytes. Jobs reaped after their process died are not counted (they ran elsewhere).
 */
@Injectable()
export class JobMetricsListener {
  constructor(private readonly metrics: MetricsService) {}

  @OnEvent(BACKUP_COMPLETED)
  onBackupCompleted(e: BackupCompletedEvent): void {
    this.metrics.recordBackup(e.engine, 'completed', e.durationSeconds, e.storedBytes);
  }

  @OnEvent(BACKUP_FAILED)
  onBackupFailed(e: BackupFailedEvent): void {
    if (!e.reaped) this.metrics.recordBackup(e.engine, 'failed', e.durationSeconds, null);
  }

  @OnEvent(RECOVERY_COMPLETED)
  onRecoveryCompleted(e: RecoveryCompletedEvent): void {
    this.metrics.recordRestore(e.engine, 'completed', e.durationMs !== null ? e.durationMs / 1000 : null);
  }

  @OnEvent(RECOVERY_FAILED)
  onRecoveryFailed(e: RecoveryFailedEvent): void {
    if (!e.reaped) this.metrics.recordRestore(e.engine, 'failed', e.durationMs !== null ? e.durationMs / 1000 : null);
  }

  @OnEvent(VERIFICATION_COMPLETED)
  onVerificationCompleted(e: VerificationCompletedEvent): void {
    this.metrics.recordVerification(e.mode, e.ok ? 'ok' : 'problems');
  }

  @OnEvent(VERIFICATION_FAILED)
  onVerificationFailed(e: VerificationFailedEvent): void {
    if (!e.reaped) this.metrics.recordVerification(e.mode, 'error');
  }
}
