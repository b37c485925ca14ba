import { Column, CreateDateColumn, Entity, Index, PrimaryGeneratedColumn } from 'typeorm';
import { bigintToNumber } from '../database/column-transformers';
import type { PointReached } from './point-in-time-recovery.service';
import { RecoveryEnvironment, RecoveryStatus } from './recovery-status';

/**
 * `FULL`: a restore run by the service; `EXTERNAL`: a recovery run outside it and reported (no backup needed);
 * `POINT_IN_TIME`: a base backup (postgres-base) laid down and WAL replayed from its archive up to a target.
 */
export type RecoveryType = 'FULL' | 'EXTERNAL' | 'POINT_IN_TIME';

/** One restore of a backup into a target; its duration is the measured recovery time (RTO). */
@Entity('recoveries')
@Index('recoveries_status_idx', ['status'])
export class RecoveryEntity {
  @PrimaryGeneratedColumn('uuid') id: string;
  @Column({ name: 'backup_id', type: 'uuid', nullable: true }) backupId: string | null;
  /** Location read from: a copy's; null reads the backup's primary location. */
  @Column({ name: 'storage_location_id', type: 'uuid', nullable: true }) storageLocationId: string | null;
  @Column({ type: 'varchar', length: 20 }) type: RecoveryType;
  /** Engine-specific target (a directory path or a database URL without password, plus secret names). */
  @Column({ type: 'jsonb' }) target: Record<string, unknown>;
  @Column({ type: 'boolean', default: false }) overwrite: boolean;
  @Column({ type: 'varchar', length: 20 }) status: RecoveryStatus;
  /** `production` recoveries wait for a second person's approval before they run. */
  @Column({ type: 'varchar', length: 20, default: 'non-production' }) environment: RecoveryEnvironment;
  /** The request's choice, kept for a start after approval. */
  @Column({ name: 'trust_unsigned_manifest', type: 'boolean', default: false }) trustUnsignedManifest: boolean;
  /** An AWAITING_APPROVAL recovery becomes EXPIRED at this time. */
  @Column({ name: 'approval_expires_at', type: 'timestamptz', nullable: true }) approvalExpiresAt: Date | null;
  @Column({ name: 'approved_by', type: 'varchar', length: 200, nullable: true }) approvedBy: string | null;
  @Column({ name: 'approved_at', type: 'timestamptz', nullable: true }) approvedAt: Date | null;
  @Column({ name: 'rejected_by', type: 'varchar', length: 200, nullable: true }) rejectedBy: string | null;
  @Column({ name: 'rejected_at', type: 'timestamptz', nullable: true }) rejectedAt: Date | null;
  @Column({ type: 'text', nullable: true }) error: string | null;
  /** Non-fatal conditions of a completed restore (e.g. a parallel restore that had to run sequentially). */
  @Column({ type: 'jsonb', default: () => "'[]'" }) warnings: string[];
  /**
   * Bytes that reached the target (the raw artifact applied). A restore that failed without touching its target
   * (every directory restore, and any whose artifact did not prove out) records 0.
   */
  @Column({ name: 'bytes_restored', type: 'bigint', default: 0, transformer: bigintToNumber }) bytesRestored: number;
  /** Stored bytes read from the storage location (the progress of a running recovery). */
  @Column({ name: 'bytes_read', type: 'bigint', default: 0, transformer: bigintToNumber }) bytesRead: number;
  @Column({ name: 'duration_ms', type: 'integer', nullable: true }) durationMs: number | null;
  /** POINT_IN_TIME: the exact point reached (LSN, last transaction time, timeline) and the recovered server. */
  @Column({ name: 'point_in_time', type: 'jsonb', nullable: true }) pointInTime: PointReached | null;
  /** Who requested the recovery (`apikey:<name>`, `jwt:<sub>` or `cli`). */
  @Column({ name: 'created_by', type: 'varchar', length: 200, nullable: true }) createdBy: string | null;
  @Column({ name: 'runner_id', type: 'varchar', length: 200, nullable: true }) runnerId: string | null;
  @Column({ name: 'heartbeat_at', type: 'timestamptz', nullable: true }) heartbeatAt: Date | null;
  @CreateDateColumn({ name: 'created_at', type: 'timestamptz' }) createdAt: Date;
  @Column({ name: 'started_at', type: 'timestamptz', nullable: true }) startedAt: Date | null;
  @Column({ name: 'finished_at', type: 'timestamptz', nullable: true }) finishedAt: Date | null;
}
