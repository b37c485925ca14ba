import { EngineName } from '../engines/backup-engine';

/** One file of an archive, as recorded in a configuration snapshot's index. */
export interface FileIndexEntry {
  /** Path inside the archive, `/`-separated, no leading `/` (tar's convention). */
  path: string;
  type: 'file' | 'directory' | 'symlink' | 'other';
  sizeBytes: number;
  /** Permission bits, octal string such as `0644`. */
  mode: string;
  /** ISO-8601 modification time. */
  mtime: string;
  /** SHA-256 of the content (files only). */
  sha256?: string;
  /** Target of a symlink. */
  linkTarget?: string;
}

export const MANIFEST_FORMAT = 'dr-backup-manifest';
export const MANIFEST_FORMAT_VERSION = 1;

/**
 * `manifest.json`, written last beside the artifact: a backup is complete only once it exists.
 * Format documented in docs/artifact-format.md; bump {@link MANIFEST_FORMAT_VERSION} on any incompatible change.
 */
export interface ArtifactManifest {
  format: typeof MANIFEST_FORMAT;
  formatVersion: number;
  backupId: string;
  planId: string | null;
  engine: EngineName;
  /** The source as requested, holding secret references only (never values). */
  source: Record<string, unknown>;
  artifact: {
    /** Key of the artifact relative to the location root. */
    key: string;
    /** MIME type of the content before compression. */
    contentType: string;
    compression: 'zstd';
    compressionLevel: number;
    /** Bytes produced by the engine. */
    sizeBytes: number;
    /** Bytes stored (compressed). */
    storedBytes: number;
    /** SHA-256 (hex) of the stored bytes. */
    sha256: string;
  };
  tools: Record<string, string>;
  service: { name: string; version: string };
  startedAt: string;
  finishedAt: string;
  warnings: string[];
  /** Per-file index (configuration snapshots). */
  files?: FileIndexEntry[];
}
