import { Column, CreateDateColumn, Entity, Index, PrimaryGeneratedColumn } from 'typeorm';
import { bigintToNumber } from '../database/column-transformers';
import { JobStatus } from '../jobs/job-status';

/**
 * One copy of a completed backup in another storage location (the "2" and "1" of 3-2-1): every object copied as
 * stored (still compressed and encrypted), read back and hashed at the destination before the copy counts.
 */
@Entity('backup_copies')
@Index('backup_copies_status_idx', ['status'])
export class BackupCopyEntity {
  @PrimaryGeneratedColumn('uuid') id: string;
  @Column({ name: 'backup_id', type: 'uuid' }) backupId: string;
  @Column({ name: 'storage_location_id', type: 'uuid' }) storageLocationId: string;
  @Column({ type: 'varchar', length: 12 }) status: JobStatus;
  @Column({ type: 'text', nullable: true }) error: string | null;
  @Column({ name: 'bytes_copied', type: 'bigint', default: 0, transformer: bigintToNumber }) bytesCopied: number;
  /** When every object of the copy was read back from the destination and matched its SHA-256. */
  @Column({ name: 'verified_at', type: 'timestamptz', nullable: true }) verifiedAt: Date | null;
  @Column({ name: 'runner_id', type: 'varchar', length: 200, nullable: true }) runnerId: string | null;
  @Column({ name: 'heartbeat_at', type: 'timestamptz', nullable: true }) heartbeatAt: Date | null;
  @CreateDateColumn({ name: 'created_at', type: 'timestamptz' }) createdAt: Date;
  @Column({ name: 'started_at', type: 'timestamptz', nullable: true }) startedAt: Date | null;
  @Column({ name: 'finished_at', type: 'timestamptz', nullable: true }) finishedAt: Date | null;
}
