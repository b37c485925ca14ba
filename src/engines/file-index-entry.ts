/*
 * The entries of a backup's file index (the details object, see docs/artifact-format.md): written by the engines,
 * read by verification, incremental change detection and the file listing.
 */

/** One member of an archive, as recorded in a backup's file index. */
export interface FileIndexEntry {
  /**
   * Path inside the archive, `/`-separated, no leading `/` (tar's convention). When the path's bytes are not valid
   * UTF-8, this is for people only (each such byte written `\xNN`) and {@link pathB64} holds the exact bytes.
   */
  path: string;
  /** Base64 of the path's bytes; present only when they are not valid UTF-8 (see file-name-bytes.ts). */
  pathB64?: string;
  type: 'file' | 'directory' | 'symlink' | 'other';
  sizeBytes: number;
  /** Permission bits, octal string such as `0644`. */
  mode: string;
  /** ISO-8601 modification time (milliseconds; see {@link mtimeNs} for the exact time). */
  mtime: string;
  /**
   * Modification time in nanoseconds since the epoch, a decimal string, as the archive holds it (a pax `mtime`
   * record, else the header's whole seconds); absent in indexes written before archives were pax.
   */
  mtimeNs?: string;
  /** SHA-256 of the content (files only). */
  sha256?: string;
  /** Target of a symlink (for people only when {@link linkTargetB64} is present). */
  linkTarget?: string;
  /** Base64 of a symlink target's bytes; present only when they are not valid UTF-8. */
  linkTargetB64?: string;
  /** lstat of the source entry when it was backed up (filesystem engine), for the next incremental's change detection. */
  stat?: SourceStat;
}

/**
 * The part of a source entry's lstat(2) a filesystem backup records for change detection (see
 * `unchangedSince` in src/engines/tree-scan.ts). Integers that may exceed 2^53 are decimal strings.
 */
export interface SourceStat {
  /** st_mode: file type and permission bits. */
  mode: number;
  uid: number;
  gid: number;
  /** st_size, bytes. */
  size: string;
  /** st_ino. */
  ino: string;
  /** st_mtime in nanoseconds since the epoch. */
  mtimeNs: string;
  /** st_ctime in nanoseconds since the epoch. */
  ctimeNs: string;
}
