import { Column, CreateDateColumn, Entity, PrimaryGeneratedColumn, UpdateDateColumn } from 'typeorm';
import { EngineName } from '../engines/backup-engine';

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
  @CreateDateColumn({ name: 'created_at', type: 'timestamptz' }) createdAt: Date;
  @UpdateDateColumn({ name: 'updated_at', type: 'timestamptz' }) updatedAt: Date;
}
