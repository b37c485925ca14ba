import { Column, CreateDateColumn, Entity, PrimaryGeneratedColumn, UpdateDateColumn } from 'typeorm';
import { EngineName } from '../engines/backup-engine';
import type { EncryptionSettings } from '../pipeline/backup-encryption';

/** What to back up, with which engine, into which storage location, and when (a cron expression). */
@Entity('backup_plans')
export class BackupPlanEntity {
  @PrimaryGeneratedColumn('uuid') id: string;
  @Column({ type: 'varchar', length: 100, unique: true }) name: string;
  @Column({ type: 'varchar', length: 30 }) engine: EngineName;
  /** Engine-specific source description; holds secret *names*, never secret values. */
  @Column({ type: 'jsonb' }) source: Record<string, unknown>;
  @Column({ name: 'storage_location_id', type: 'uuid' }) storageLocationId: string;
  /** Cron expression (5 or 6 fields), evaluated in `timezone`; null for on-demand only plans. */
  @Column({ type: 'varchar', length: 120, nullable: true }) schedule: string | null;
  @Column({ type: 'varchar', length: 64, default: 'UTC' }) timezone: string;
  @Column({ type: 'boolean', default: true }) enabled: boolean;
  /** Encryption of this plan's backups; null: the storage location's, if any. */
  @Column({ type: 'jsonb', nullable: true }) encryption: EncryptionSettings | null;
  /** Locations every completed backup is copied to (3-2-1), each copy verified by hash. */
  @Column({ name: 'copy_location_ids', type: 'uuid', array: true, default: () => "'{}'" }) copyLocationIds: string[];
  /** Which backups to keep (restic's forget rules); null keeps everything. */
  @Column({ type: 'jsonb', nullable: true }) retention: Record<string, unknown> | null;
  /** Lock each backup's objects for this many days after it completes (stores with immutability only). */
  @Column({ name: 'immutable_days', type: 'integer', nullable: true }) immutableDays: number | null;
  /** Incrementals taken after each full (filesystem engine): 0 = every backup is full. */
  @Column({ name: 'incrementals_per_full', type: 'integer', default: 0 }) incrementalsPerFull: number;
  @CreateDateColumn({ name: 'created_at', type: 'timestamptz' }) createdAt: Date;
  @UpdateDateColumn({ name: 'updated_at', type: 'timestamptz' }) updatedAt: Date;
}
