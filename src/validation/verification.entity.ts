import { Column, CreateDateColumn, Entity, Index, PrimaryGeneratedColumn } from 'typeorm';
import { bigintToNumber } from '../database/column-transformers';
import { JobStatus } from '../jobs/job-status';

/** `checksum`: every object re-read and hashed, the manifest and its signature checked. `restore`: that, then a
 * restore into a scratch target compared with the file index or the table digests recorded at backup time. */
export type VerificationMode = 'checksum' | 'restore';

/** The outcome of one verification of a stored backup. */
@Entity('verifications')
@Index('verifications_backup_idx', ['backupId', 'createdAt'])
export class VerificationEntity {
  @PrimaryGeneratedColumn('uuid') id: string;
  @Column({ name: 'backup_id', type: 'uuid' }) backupId: string;
  @Column({ type: 'varchar', length: 20 }) mode: VerificationMode;
  /** The verification job: COMPLETED means it ran to the end (see `ok`); FAILED means it could not run. */
  @Column({ type: 'varchar', length: 12 }) status: JobStatus;
  /** Whether the backup passed; null until COMPLETED. */
  @Column({ type: 'boolean', nullable: true }) ok: boolean | null;
  /** Each problem found, in words that name the object and what is wrong. */
  @Column({ type: 'jsonb', default: () => "'[]'" }) problems: string[];
  /** What was compared: files or tables checked, the signing key, the scratch target used. */
  @Column({ type: 'jsonb', default: () => "'{}'" }) details: Record<string, unknown>;
  /** Why the verification could not run (FAILED). */
  @Column({ type: 'text', nullable: true }) error: string | null;
  @Column({ name: 'bytes_read', type: 'bigint', default: 0, transformer: bigintToNumber }) bytesRead: number;
  @Column({ name: 'duration_ms', type: 'integer', nullable: true }) durationMs: number | null;
  @Column({ name: 'created_by', type: 'varchar', length: 200, nullable: true }) createdBy: string | null;
  @Column({ name: 'runner_id', type: 'varchar', length: 200, nullable: true }) runnerId: string | null;
  @Column({ name: 'heartbeat_at', type: 'timestamptz', nullable: true }) heartbeatAt: Date | null;
  @CreateDateColumn({ name: 'created_at', type: 'timestamptz' }) createdAt: Date;
  @Column({ name: 'started_at', type: 'timestamptz', nullable: true }) startedAt: Date | null;
  @Column({ name: 'finished_at', type: 'timestamptz', nullable: true }) finishedAt: Date | null;
}
