import { Column, CreateDateColumn, Entity, PrimaryGeneratedColumn } from 'typeorm';

export type StorageKind = 'local';

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
  @Column({ type: 'jsonb' }) settings: LocalStorageSettings;
  @Column({ name: 'is_default', type: 'boolean', default: false }) isDefault: boolean;
  @CreateDateColumn({ name: 'created_at', type: 'timestamptz' }) createdAt: Date;
}
