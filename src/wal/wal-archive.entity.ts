import { Column, CreateDateColumn, Entity, PrimaryGeneratedColumn } from 'typeorm';
import type { EncryptionSettings } from '../pipeline/backup-encryption';

/**
 * A WAL archive: where `dr wal-push` keeps a cluster's WAL (`wal/<name>/...` in a storage location), with the age
 * recipients pushes encrypt for and the reference of the identity that decrypts on fetch (never the key itself).
 */
@Entity('wal_archives')
export class WalArchiveEntity {
  @PrimaryGeneratedColumn('uuid') id: string;
  /** Also the storage prefix `wal/<name>/`. */
  @Column({ type: 'varchar', length: 100, unique: true }) name: string;
  @Column({ name: 'storage_location_id', type: 'uuid' }) storageLocationId: string;
  /** age encryption of pushed files (recipients or a passphrase secret reference); null: none. */
  @Column({ type: 'jsonb', nullable: true }) encryption: EncryptionSettings | null;
  /** Secret reference (`env:NAME`, `file:/path`) of the age identity wal-fetch decrypts with. */
  @Column({ name: 'identity_secret', type: 'varchar', length: 4096, nullable: true }) identitySecret: string | null;
  /** The cluster's wal_segment_size in bytes (16 MiB unless initdb --wal-segsize). */
  @Column({ name: 'segment_size_bytes', type: 'integer', default: 16777216 }) segmentSizeBytes: number;
  @CreateDateColumn({ name: 'created_at', type: 'timestamptz' }) createdAt: Date;
}
