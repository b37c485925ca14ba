import { Readable } from 'node:stream';
import { FileIndexEntry } from './file-index-entry';
import { FileIndex } from './file-index';
import { TableDigest } from './pg-dump-digest';

export type EngineName = 'postgres' | 'filesystem' | 'configuration' | 'mysql' | 'postgres-base';
export const ENGINE_NAMES: EngineName[] = ['postgres', 'filesystem', 'configuration', 'mysql', 'postgres-base'];

/**
 * What a PostgreSQL base backup (engine `postgres-base`) covers of the WAL: replay from `startLsn` on `timeline`;
 * the backup is consistent once replay has passed `endLsn`. LSNs as PostgreSQL prints them (`0/2000028`), times ISO 8601.
 */
export interface BaseBackupWalRange {
  /** The WAL archive holding the WAL this backup needs. */
  walArchiveId: string;
  timeline: number;
  startLsn: string;
  endLsn: string;
  /** Before the backup's start checkpoint / after its end point was reached (conservative bounds). */
  startedAt: string;
  stoppedAt: string;
}

/** A running engine backup: the raw byte stream and the promise of its outcome once the stream has ended. */
export interface EngineBackupRun {
  stream: Readable;
  /** Resolves after the source tool exited successfully; rejects when it failed (the artifact is then discarded). */
  done: Promise<EngineBackupResult>;
}

export interface EngineBackupResult {
  /** Per-file index of what the artifact holds (filesystem, configuration): for deep verification and diffs. */
  files?: FileIndex;
  /** Per-table digests of the dump (postgres, mysql): for deep verification. */
  tables?: TableDigest[];
  /** Versions learnt during the run (e.g. the source server's), added to the details object's `tools`. */
  tools?: Record<string, string>;
  /** Non-fatal conditions worth recording (e.g. a file changed while it was read). */
  warnings: string[];
  /** WAL range of a base backup (postgres-base), for point-in-time recovery. */
  walRange?: BaseBackupWalRange;
  /** Whether the index is in tree-walk order with each entry's lstat (it can be an incremental's parent). */
  indexOrder?: 'tree';
  /** An incremental's deletion list and counts (filesystem engine, when a parent index was given). */
  incremental?: IncrementalResult;
  /**
   * Scratch file holding what the source needs from its server to be restored onto another one (the roles a
   * database references, as SQL): stored as the backup's `globals` object, then removed by the caller.
   */
  globalsPath?: string;
}

/** What an incremental backup found beside its archive. */
export interface IncrementalResult {
  /** Scratch file of NUL-separated index paths to delete before extracting the archive (removed with the index). */
  deletionsPath: string;
  /** Scratch file of NUL-separated pairs `from\0to\0` (index paths) to rename before the deletions (removed with the index). */
  movesPath: string;
  moved: number;
  archived: number;
  touchedDirectories: number;
  deleted: number;
}

/** The parent of an incremental backup: its file index, read back from storage, in tree-walk order. */
export interface ParentIndex {
  backupId: string;
  entries: AsyncIterable<FileIndexEntry>;
}

/** One backup of a chain (full first), opened on demand for a chain restore. */
export interface ChainMember {
  backupId: string;
  type: 'FULL' | 'INCREMENTAL';
  /** The raw (decrypted, decompressed) artifact, its size and SHA-256 checked as it is read (proven at its end). */
  openArtifact(): Promise<Readable>;
  /** The raw NUL-separated deletion list (incrementals), checked the same way; null for the full. */
  openDeletions(): Promise<Readable | null>;
  /** The raw move list (pairs `from\0to\0`), checked the same way; null for the full and incrementals without one. */
  openMoves(): Promise<Readable | null>;
}

/** What a recovery reserves for as long as it may run (see TARGET_BUSY). */
export interface TargetReservationKey {
  /**
   * The target's identity: `path:<real path>` for a directory (a reservation covers the directories below and
   * above it too), `postgresql://host:port/database` or `mysql://host:port/database` for a database.
   */
  key: string;
  /** The request field that names the target, for the error. */
  field: string;
}

export interface EngineRestoreResult {
  warnings: string[];
}

/** What a backup recorded of its content, for deep verification to compare a restore with. */
export interface RecordedContent {
  /** The file index (filesystem, configuration), read back from the details object. */
  files?: AsyncIterable<FileIndexEntry>;
  /** Per-table digests of the dump (postgres). */
  tables?: TableDigest[];
}

/** Outcome of {@link BackupEngine.verifyRestore}. */
export interface RestoreCheck {
  /** Each difference found, naming the file or table and what differs. Empty: the restore matches. */
  problems: string[];
  /** Counts of what was compared (files, tables, rows, bytes). */
  checked: Record<string, number>;
  /** Where the scratch restore went (removed since). */
  scratchTarget: string;
}

/** Context of one backup or restore run. */
export interface EngineRunContext {
  /** Aborts the run: child processes are killed. */
  signal: AbortSignal;
  /** Unique name of the run, usable for scratch files. */
  runId: string;
  /** Directory for the run's scratch files (spooled indexes, decompressed dumps); the engine removes its own. */
  scratchDir: string;
  /** Back up only what changed since this parent (engines with {@link BackupEngine.supportsIncremental}). */
  parent?: ParentIndex;
  /**
   * Restores: opens the backup's `globals` object (raw SQL, its SHA-256 checked as it is read); absent when the
   * backup has none (taken before globals were captured, or by an engine without them).
   */
  openGlobals?: () => Promise<Readable>;
}

/**
 * A backup engine knows one kind of source and target (a database, a directory), nothing of HTTP, records or
 * storage. Sources and targets arrive validated against the engine's DTO classes.
 */
export interface BackupEngine<Source extends object = object, Target extends object = object> {
  readonly name: EngineName;
  /** File extension of the raw artifact before compression (`pgdump`, `tar`). */
  readonly artifactExtension: string;
  /** MIME type of the raw artifact. */
  readonly contentType: string;
  /** The file index is small and kept in the backup record, so snapshots can be diffed (configuration). */
  readonly indexInRecord: boolean;
  /** Can take INCREMENTAL backups (a parent index in the run context) and restore chains. */
  readonly supportsIncremental?: boolean;
  /** DTO class a `source` is validated against. */
  readonly sourceClass: new () => Source;
  /** DTO class a restore `target` is validated against. */
  readonly targetClass: new () => Target;
  /** Versions of the external tools used, recorded in the manifest. */
  toolVersions(): Promise<Record<string, string>>;
  /** Checks that the source can be read before a backup is accepted (e.g. the directory exists). @throws DrError */
  checkSource(source: Source): Promise<void>;
  /** Starts streaming the source. */
  backup(source: Source, context: EngineRunContext): Promise<EngineBackupRun>;
  /**
   * Refuses a target that would lose data: TARGET_EXISTS / TARGET_NOT_EMPTY unless `overwrite`, TARGET_NOT_ALLOWED
   * outside the allowed roots. Called before the recovery is accepted. @throws DrError
   */
  checkTarget(target: Target, overwrite: boolean): Promise<void>;
  /**
   * Whether {@link restore} applies nothing to the target before its input has ENDED without error (it extracts
   * into a staging area that replaces the target's entries only then, or spools the input to scratch first). The
   * input is proven (size and SHA-256 against the signed manifest) only at its end; for an engine without this
   * property the recovery proves the stored object first (a scratch copy) and hands over a stream of that copy.
   */
  readonly restoreIsStaged: boolean;
  /**
   * Restores from the raw (decompressed) artifact stream into the target. The stream errors instead of ending
   * when the object does not match its manifest (see {@link restoreIsStaged}).
   */
  restore(target: Target, input: Readable, overwrite: boolean, context: EngineRunContext): Promise<EngineRestoreResult>;
  /** The target's identity, reserved while a recovery into it may run. @throws DrError VALIDATION_FAILED */
  reservationKey(target: Target): Promise<TargetReservationKey>;
  /** The target described for records and responses, without secrets. */
  describeTarget(target: Target): Record<string, unknown>;
  /**
   * Deep verification: restores the raw artifact into a scratch target of the engine's own (a directory under
   * the scratch dir, a scratch database), compares it with `recorded`, and removes the scratch target whatever
   * happens. `source` is the backup's source (the scratch database goes to its server unless configured otherwise).
   */
  verifyRestore(source: Source, input: Readable, recorded: RecordedContent, context: EngineRunContext): Promise<RestoreCheck>;
  /**
   * Restores a chain (full, then each incremental in order) into the target (engines that support incrementals).
   * Every member is read to its end, and so proven, before anything reaches the target.
   * @throws an Error naming the chain member that failed.
   */
  restoreChain?(target: Target, chain: ChainMember[], overwrite: boolean, context: EngineRunContext): Promise<EngineRestoreResult>;
  /** Deep verification of an incremental: restores its chain into scratch and compares with `recorded`. */
  verifyChainRestore?(chain: ChainMember[], recorded: RecordedContent, context: EngineRunContext): Promise<RestoreCheck>;
}

/** Injection token of the list of all engines. */
export const BACKUP_ENGINES = Symbol('BACKUP_ENGINES');
