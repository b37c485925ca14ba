import { JobStatus } from '../jobs/job-status';

/**
 * Lifecycle of a recovery. A non-production one starts PENDING. A production one starts AWAITING_APPROVAL and
 * runs only once a second person approves it (→ PENDING); it can instead be REJECTED, or become EXPIRED when
 * nobody approves it within `DR_APPROVAL_TTL_SECONDS`. Then PENDING → RUNNING → COMPLETED | FAILED.
 */
export const RecoveryStatus = {
  AWAITING_APPROVAL: 'AWAITING_APPROVAL',
  PENDING: JobStatus.PENDING,
  RUNNING: JobStatus.RUNNING,
  COMPLETED: JobStatus.COMPLETED,
  FAILED: JobStatus.FAILED,
  REJECTED: 'REJECTED',
  EXPIRED: 'EXPIRED',
} as const;

export type RecoveryStatus = (typeof RecoveryStatus)[keyof typeof RecoveryStatus];

export const RECOVERY_STATUSES: RecoveryStatus[] = Object.values(RecoveryStatus);

/** Where a recovery restores into: `production` needs two-person approval; anything else runs at once. */
export const RECOVERY_ENVIRONMENTS = ['production', 'non-production'] as const;
export type RecoveryEnvironment = (typeof RECOVERY_ENVIRONMENTS)[number];
