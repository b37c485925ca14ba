import { Column, CreateDateColumn, Entity, Index, PrimaryGeneratedColumn } from 'typeorm';
import { bigintToNumber } from '../database/column-transformers';

/** The outcome of one verification of a stored backup. */
@Entity('verifications')
@Index(['backupId', 'createdAt'])
export class VerificationEntity {
  @PrimaryGeneratedColumn('uuid') id: string;
  @Column({ name: 'backup_id', type: 'uuid' }) backupId: string;
  /** `checksum`: artifact re-read and hashed, manifest compared to the record. */
  @Column({ type: 'varchar', length: 20 }) mode: 'checksum';
  @Column({ type: 'boolean' }) ok: boolean;
  /** Each problem found, in words that name the object and what is wrong. */
  @Column({ type: 'jsonb' }) problems: string[];
  @Column({ name: 'bytes_read', type: 'bigint', transformer: bigintToNumber }) bytesRead: number;
  @Column({ name: 'duration_ms', type: 'integer' }) durationMs: number;
  @Column({ name: 'created_by', type: 'varchar', length: 200, nullable: true }) createdBy: string | null;
  @CreateDateColumn({ name: 'created_at', type: 'timestamptz' }) createdAt: Date;
}
