import { EngineName } from '../engines/backup-engine';
import type { TableDigest } from '../engines/pg-dump-digest';

export const MANIFEST_FORMAT = 'dr-backup-manifest';
export const MANIFEST_FORMAT_VERSION = 1;

/** What an object of a backup holds. */
export type StoredObjectRole = 'artifact' | 'details' | 'deletions' | 'moves' | 'globals';

/** Full (self-contained) or incremental (new and changed members since its parent, plus a deletion list). */
export type BackupType = 'FULL' | 'INCREMENTAL';
export const BACKUP_TYPES: BackupType[] = ['FULL', 'INCREMENTAL'];

/** One object a backup stored, with what it takes to check it. */
export interface StoredObject {
  /** Key relative to the storage location's root, e.g. `<backupId>/artifact.tar.zst.age`. */
  key: string;
  role: StoredObjectRole;
  /** MIME type of the content before compression. */
  contentType: string;
  /** Bytes before compression and encryption. */
  rawSizeBytes: number;
  /** Bytes stored. */
  sizeBytes: number;
  /** SHA-256 (hex) of the bytes stored. */
  sha256: string;
}

/** How a backup's objects are encrypted; `null` when they are not. */
export type ManifestEncryption = { format: 'age-v1'; recipients: string[] } | { format: 'age-v1'; passphrase: true } | null;

/**
 * `manifest.json`: the envelope of a backup, readable without any key so integrity can be checked by anyone, and
 * signed (`manifest.sig`, written last). It names every object with its size and SHA-256; what describes the
 * source (names, paths, tables) is in the `details` object, encrypted like the artifact.
 * Format documented in docs/artifact-format.md; bump {@link MANIFEST_FORMAT_VERSION} on any incompatible change.
 */
export interface ArtifactManifest {
  format: typeof MANIFEST_FORMAT;
  formatVersion: number;
  backupId: string;
  planId: string | null;
  engine: EngineName;
  compression: { algorithm: 'zstd'; level: number };
  encryption: ManifestEncryption;
  objects: StoredObject[];
  service: { name: string; version: string };
  startedAt: string;
  finishedAt: string;
}

/**
 * The first line of the `details` object (JSON lines, zstd, age when the backup is encrypted); the file index
 * follows, one {@link FileIndexEntry} per line with `"type"` kept as the member's type.
 */
export interface BackupDetailsHeader {
  kind: 'dr-backup-details';
  backupId: string;
  engine: EngineName;
  /** The source as requested, holding secret references only (never values). */
  source: Record<string, unknown>;
  tools: Record<string, string>;
  warnings: string[];
  /** Members in the file index that follows (filesystem, configuration). */
  fileCount?: number;
  /** Per-table digests of the dump (postgres). */
  tables?: TableDigest[];
  /**
   * `tree`: the file index is in tree-walk order and every entry carries its `stat` (filesystem backups since
   * incremental backups exist); such an index can be the parent of an incremental. Absent: archive order, no stat.
   */
  indexOrder?: 'tree';
  /** FULL or INCREMENTAL (filesystem); absent in backups made before incremental backups existed (FULL). */
  backupType?: BackupType;
  /** An incremental's chain: the backup it is based on and the chain's full, and what it holds. */
  incremental?: {
    parentId: string;
    fullBackupId: string;
    /** Members archived because new or changed. */
    archived: number;
    /** Unchanged directories archived for their mode and mtime (content changed in them). */
    touchedDirectories: number;
    /** Paths in the deletion list. */
    deleted: number;
    /** Regular files moved (renamed), in the move list (absent in incrementals made before move detection). */
    moved?: number;
  };
}
