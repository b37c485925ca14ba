import { stat } from 'node:fs/promises';
import { Injectable } from '@nestjs/common';
import { IsArray, IsNotEmpty, IsOptional, IsString, Matches, MaxLength } from 'class-validator';
import fg from 'fast-glob';
import { Readable } from 'node:stream';
import { DrError } from '../errors/dr-error';
import {
  TargetReservationKey,
  BackupEngine,
  ChainMember,
  EngineBackupRun,
  EngineRestoreResult,
  EngineRunContext,
  RecordedContent,
  RestoreCheck,
} from './backup-engine';
import { verifyRestoredTree, verifyTarRestore } from './restored-tree-check';
import { restoreChainInto } from './chain-restore';
import { extractProven, restoreThroughStaging } from './staged-directory';
import { RestoreDirectoryPolicy } from './restore-directory';
import { SpooledFileIndex } from './file-index';
import { TarArchiver } from './tar-archiver';
import { indexedTarRun } from './tar-indexer';
import { hasEscapedBytes } from './file-name-bytes';
import { TreeScan } from './tree-scan';
import { globSelector } from './tree-selection';

/** `source` of a filesystem backup. Globs are relative to `path` (fast-glob/picomatch syntax). */
export class FilesystemSource {
  @IsString()
  @Matches(/^\//, { message: 'path must be an absolute path' })
  @MaxLength(4096)
  path: string;

  @IsOptional()
  @IsArray()
  @IsString({ each: true })
  @IsNotEmpty({ each: true })
  include?: string[];

  @IsOptional()
  @IsArray()
  @IsString({ each: true })
  @IsNotEmpty({ each: true })
  exclude?: string[];
}

/** `target` of a filesystem restore: a directory below one of `DR_RESTORE_ROOTS`. */
export class DirectoryTarget {
  @IsString()
  @Matches(/^\//, { message: 'path must be an absolute path' })
  @MaxLength(4096)
  path: string;
}

/**
 * Backs up a directory tree as a GNU tar stream (modes, mtimes, owners, symlinks as links), indexed on the way
 * (path, size, mode, mtime and SHA-256 of every member, spooled to scratch) for deep verification, and restores it
 * into a target directory. The tree is walked by {@link TreeScan} (in index order, each entry's lstat recorded) and
 * the names handed to tar without recursion; include/exclude globs select entries with fast-glob first. With a
 * parent index in the run context (an INCREMENTAL backup) only new and changed entries are archived, the rest of
 * the index carried over, moved (renamed) files recorded in a move list instead of archived, and a deletion list kept; {@link restoreChain} restores full + incrementals in order.
 */
@Injectable()
export class FilesystemEngine implements BackupEngine<FilesystemSource, DirectoryTarget> {
  readonly name = 'filesystem' as const;
  readonly artifactExtension = 'tar';
  readonly contentType = 'application/x-tar';
  readonly indexInRecord = false;
  readonly supportsIncremental = true;
  /** Extracted into a staging tree inside the target, merged in only once the artifact is proven. */
  readonly restoreIsStaged = true;
  readonly sourceClass = FilesystemSource;
  readonly targetClass = DirectoryTarget;

  constructor(
    private readonly tar: TarArchiver,
    private readonly directories: RestoreDirectoryPolicy,
  ) {}

  async toolVersions(): Promise<Record<string, string>> {
    return { tar: await this.tar.version() };
  }

  async checkSource(source: FilesystemSource): Promise<void> {
    const s = await stat(source.path).catch(() => null);
    if (!s?.isDirectory()) {
      throw DrError.validation([{ field: 'source.path', message: 'not an existing directory' }]);
    }
  }

  async backup(source: FilesystemSource, context: EngineRunContext): Promise<EngineBackupRun> {
    let entries: string[] | undefined;
    if (source.include?.length || source.exclude?.length) {
      entries = await fg(source.include?.length ? source.include : ['**'], {
        cwd: source.path,
        ignore: source.exclude ?? [],
        dot: true,
        onlyFiles: false,
        followSymbolicLinks: false,
        markDirectories: false,
        unique: true,
      });
    }
    const selected = entries ? new Set(entries) : undefined;
    // fast-glob reads names as UTF-8 strings: a name that is not valid UTF-8 is selected by the same globs here
    const globs = globSelector(source.include, source.exclude);
    const include = selected && ((path: string, isDirectory: boolean) => selected.has(path) || (hasEscapedBytes(path) && globs(path, isDirectory)));
    const scan = await TreeScan.create(context.scratchDir, context.runId, source.path, context.parent?.entries, include);
    const index = await SpooledFileIndex.create(context.scratchDir, context.runId);
    let scanError: Error | undefined;
    const names = (async function* () {
      try {
        yield* scan.names();
      } catch (error) {
        scanError = error as Error;
        throw error;
      }
    })();
    const tar = this.tar.create({ cwd: source.path, entries: names, signal: context.signal });
    // a full backup's index entries are made as the members pass (the walk entry tar was given, with tar's member)
    const full = scan.indexAsArchived();
    const run = indexedTarRun(
      tar,
      index,
      async () => {
        await index.close();
        if (scanError) throw scanError;
        if (full) scan.allArchived();
      },
      full ? (member) => scan.archivedMember(member) : undefined,
    );
    const done = run.done.then(
      (result) => ({
        ...result,
        warnings: [...scan.warnings, ...result.warnings],
        files: scan.index(index),
        indexOrder: 'tree' as const,
        ...(context.parent ? { incremental: { deletionsPath: scan.deletionsPath, movesPath: scan.movesPath, ...scan.counts } } : {}),
      }),
      async (error: Error) => {
        await scan.dispose();
        throw scanError ?? error;
      },
    );
    return { stream: run.stream, done };
  }

  async checkTarget(target: DirectoryTarget, overwrite: boolean): Promise<void> {
    await this.directories.check(target.path, overwrite);
  }

  /**
   * Extracts the archive into a staging tree inside the target and merges it in once the archive has been read to
   * its end and proven (see {@link restoreThroughStaging}): a corrupt or replaced artifact leaves the target as it
   * was, and a symlink already in the target is replaced, never followed.
   */
  async restore(target: DirectoryTarget, input: Readable, overwrite: boolean, context: EngineRunContext): Promise<EngineRestoreResult> {
    const path = await this.directories.check(target.path, overwrite);
    const { filled: warnings } = await restoreThroughStaging(path, context.runId, !(await this.directories.isRoot(path)), (tree) =>
      extractProven(this.tar, tree, input, context.signal),
    );
    return { warnings };
  }

  /**
   * Restores a chain (full, then incrementals in order, see {@link restoreChainInto}) into a staging tree inside
   * the target, merged in only once every member has been read and proven.
   */
  async restoreChain(target: DirectoryTarget, chain: ChainMember[], overwrite: boolean, context: EngineRunContext): Promise<EngineRestoreResult> {
    const path = await this.directories.check(target.path, overwrite);
    const { filled: warnings } = await restoreThroughStaging(path, context.runId, !(await this.directories.isRoot(path)), (tree) =>
      restoreChainInto(this.tar, tree, chain, context.signal),
    );
    return { warnings };
  }

  /** Deep verification of an incremental: its chain restored into scratch, compared with its file index. */
  async verifyChainRestore(chain: ChainMember[], recorded: RecordedContent, context: EngineRunContext): Promise<RestoreCheck> {
    return verifyRestoredTree((dir) => restoreChainInto(this.tar, dir, chain, context.signal), recorded, context);
  }

  async reservationKey(target: DirectoryTarget): Promise<TargetReservationKey> {
    return { key: `path:${await this.directories.resolve(target.path)}`, field: 'target.path' };
  }

  describeTarget(target: DirectoryTarget): Record<string, unknown> {
    return { ...target };
  }

  async verifyRestore(_source: FilesystemSource, input: Readable, recorded: RecordedContent, context: EngineRunContext): Promise<RestoreCheck> {
    return verifyTarRestore(this.tar, input, recorded, context);
  }
}
