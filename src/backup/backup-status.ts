/** Lifecycle of a backup or a recovery: PENDING → RUNNING → COMPLETED | FAILED. */
export enum JobStatus {
  PENDING = 'PENDING',
  RUNNING = 'RUNNING',
  COMPLETED = 'COMPLETED',
  FAILED = 'FAILED',
}

export type BackupTrigger = 'MANUAL' | 'SCHEDULED';
