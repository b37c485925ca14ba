/**
 * Lifecycle of a backup, a copy, a verification or a recovery: PENDING → RUNNING → COMPLETED | FAILED.
 * A COMPLETED backup (or copy) becomes DELETED when retention removes its objects; its record stays.
 */
export enum JobStatus {
  PENDING = 'PENDING',
  RUNNING = 'RUNNING',
  COMPLETED = 'COMPLETED',
  FAILED = 'FAILED',
  DELETED = 'DELETED',
}
