import { Column, CreateDateColumn, Entity, Index, PrimaryGeneratedColumn } from 'typeorm';
import { bigintToNumber } from '../database/column-transformers';
import type { BaseBackupWalRange, EngineName } from '../engines/backup-engine';
import type { TableDigest } from '../engines/pg-dump-digest';
import type { EncryptionSettings } from '../pipeline/backup-encryption';
import { ArtifactManifest, BackupType, StoredObject } from '../pipeline/manifest';
import { FileIndexEntry } from '../engines/file-index-entry';
import { JobStatus } from '../jobs/job-status';

/** One backup run: its record, progress, outcome and where its artifact and manifest are stored. */
/** What started a backup: a request (or the CLI), or a plan's schedule. */
export type BackupTrigger = 'MANUAL' | 'SCHEDULED';

@Entity('backups')
@Index('backups_status_idx', ['status'])
@Index('backups_plan_created_idx', ['planId', 'createdAt'])
export class BackupEntity {
  @PrimaryGeneratedColumn('uuid') id: string;
  @Column({ name: 'plan_id', type: 'uuid', nullable: true }) planId: string | null;
  @Column({ type: 'varchar', length: 30 }) engine: EngineName;
  @Column({ type: 'jsonb' }) source: Record<string, unknown>;
  @Column({ name: 'storage_location_id', type: 'uuid' }) storageLocationId: string;
  @Column({ type: 'varchar', length: 12 }) status: JobStatus;
  @Column({ type: 'varchar', length: 12 }) trigger: BackupTrigger;
  /** FULL, or INCREMENTAL: new and changed files since `parentId` plus a deletion list (filesystem engine). */
  @Column({ name: 'backup_type', type: 'varchar', length: 12, default: 'FULL' }) backupType: BackupType;
  /** The backup an incremental is based on (the previous one of its plan); null for a full. */
  @Column({ name: 'parent_id', type: 'uuid', nullable: true }) parentId: string | null;
  /** The full an incremental's chain starts with; null for a full. */
  @Column({ name: 'full_backup_id', type: 'uuid', nullable: true }) fullBackupId: string | null;
  /** How the objects are (to be) encrypted: recipients or a passphrase secret reference; null: not encrypted. */
  @Column({ type: 'jsonb', nullable: true }) encryption: EncryptionSettings | null;
  /** Storage key of the compressed artifact, e.g. `<id>/artifact.tar.zst`. */
  @Column({ name: 'artifact_key', type: 'varchar', length: 400, nullable: true }) artifactKey: string | null;
  @Column({ name: 'manifest_key', type: 'varchar', length: 400, nullable: true }) manifestKey: string | null;
  /** Bytes produced by the engine (before compression). */
  @Column({ name: 'size_bytes', type: 'bigint', nullable: true, transformer: bigintToNumber }) sizeBytes: number | null;
  /** Bytes of the stored artifact (after compression). */
  @Column({ name: 'stored_bytes', type: 'bigint', nullable: true, transformer: bigintToNumber }) storedBytes: number | null;
  /** Bytes read from the engine so far, updated while RUNNING. */
  @Column({ name: 'progress_bytes', type: 'bigint', default: 0, transformer: bigintToNumber }) progressBytes: number;
  /** SHA-256 (hex) of the stored artifact bytes. */
  @Column({ type: 'char', length: 64, nullable: true }) sha256: string | null;
  /** The published manifest (envelope); `manifest.sig` beside it holds its signature. */
  @Column({ type: 'jsonb', nullable: true }) manifest: ArtifactManifest | null;
  /** Every object stored (artifact, details), with size and SHA-256. */
  @Column({ type: 'jsonb', default: () => "'[]'" }) objects: StoredObject[];
  /** Per-file index (configuration engine), used for diffs; other engines keep theirs in the details object. */
  @Column({ name: 'file_index', type: 'jsonb', nullable: true }) fileIndex: FileIndexEntry[] | null;
  /** Members in the file index (filesystem, configuration). */
  @Column({ name: 'file_count', type: 'integer', nullable: true }) fileCount: number | null;
  /** Per-table digests of the dump (postgres), compared by deep verification. */
  @Column({ type: 'jsonb', nullable: true }) tables: TableDigest[] | null;
  /** WAL range of a base backup (postgres-base): start/end LSN, timeline, times, WAL archive. */
  @Column({ name: 'wal_range', type: 'jsonb', nullable: true }) walRange: BaseBackupWalRange | null;
  /** Non-fatal conditions of the run (tar's "file changed as we read it", digests unavailable). */
  @Column({ type: 'jsonb', default: () => "'[]'" }) warnings: string[];
  /** Id of the Ed25519 key that signed the manifest. */
  @Column({ name: 'signature_key_id', type: 'varchar', length: 32, nullable: true }) signatureKeyId: string | null;
  /** The objects are locked (immutability) until then; retention cannot delete them before. */
  @Column({ name: 'retain_until', type: 'timestamptz', nullable: true }) retainUntil: Date | null;
  /** When retention (or an operator) deleted the objects, and why. */
  @Column({ name: 'deleted_at', type: 'timestamptz', nullable: true }) deletedAt: Date | null;
  @Column({ name: 'deletion_reason', type: 'text', nullable: true }) deletionReason: string | null;
  @Column({ type: 'text', nullable: true }) error: string | null;
  @Column({ name: 'created_by', type: 'varchar', length: 200, nullable: true }) createdBy: string | null;
  /** Process running the backup and its last sign of life; a stale heartbeat means the process died. */
  @Column({ name: 'runner_id', type: 'varchar', length: 200, nullable: true }) runnerId: string | null;
  @Column({ name: 'heartbeat_at', type: 'timestamptz', nullable: true }) heartbeatAt: Date | null;
  @CreateDateColumn({ name: 'created_at', type: 'timestamptz' }) createdAt: Date;
  @Column({ name: 'started_at', type: 'timestamptz', nullable: true }) startedAt: Date | null;
  @Column({ name: 'finished_at', type: 'timestamptz', nullable: true }) finishedAt: Date | null;
}
