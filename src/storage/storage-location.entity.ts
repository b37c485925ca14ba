import { Column, CreateDateColumn, Entity, PrimaryGeneratedColumn } from 'typeorm';
import type { EncryptionSettings } from '../pipeline/backup-encryption';

/** The stores the service can keep artifacts in; each has its driver and settings class. */
export type StorageKind = 'local' | 's3' | 'azure-blob' | 'gcs';
export const STORAGE_KINDS: StorageKind[] = ['local', 's3', 'azure-blob', 'gcs'];

/** Settings of a `local` location (a local disk or an NFS mount). */
export interface LocalStorageSettings {
  /** Absolute directory under which objects are kept. */
  path: string;
}

/** A named place where artifacts are kept, with the settings its driver needs (never secrets themselves). */
@Entity('storage_locations')
export class StorageLocationEntity {
  @PrimaryGeneratedColumn('uuid') id: string;
  @Column({ type: 'varchar', length: 100, unique: true }) name: string;
  @Column({ type: 'varchar', length: 20 }) kind: StorageKind;
  /** The driver's settings (a `local` path, an S3 bucket...); secrets appear only as references. */
  @Column({ type: 'jsonb' }) settings: Record<string, unknown>;
  /** Encryption of backups stored here, unless their plan says otherwise; null: none. */
  @Column({ type: 'jsonb', nullable: true }) encryption: EncryptionSettings | null;
  @Column({ name: 'is_default', type: 'boolean', default: false }) isDefault: boolean;
  @CreateDateColumn({ name: 'created_at', type: 'timestamptz' }) createdAt: Date;
}
