import { stat } from 'node:fs/promises';
import { Injectable } from '@nestjs/common';
import { IsArray, IsBoolean, IsNotEmpty, IsOptional, IsString, Matches, MaxLength } from 'class-validator';
import fg from 'fast-glob';
import { Readable } from 'node:stream';
import { DrError } from '../errors/dr-error';
import { BackupEngine, EngineBackupRun, EngineRestoreResult, EngineRunContext, RecordedContent, RestoreCheck } from './backup-engine';
import { verifyTarRestore } from './restored-tree-check';
import { RestoreDirectoryPolicy } from './restore-directory';
import { SpooledFileIndex } from './file-index';
import { TarArchiver } from './tar-archiver';
import { indexedTarRun } from './tar-indexer';

/** `source` of a filesystem backup. Globs are relative to `path` (fast-glob/picomatch syntax). */
export class FilesystemSource {
  @IsString() @Matches(/^\//, { message: 'path must be an absolute path' }) @MaxLength(4096)
  path: string;

  @IsOptional() @IsArray() @IsString({ each: true }) @IsNotEmpty({ each: true })
  include?: string[];

  @IsOptional() @IsArray() @IsString({ each: true }) @IsNotEmpty({ each: true })
  exclude?: string[];
}

/** `target` of a filesystem restore: a directory below one of `DR_RESTORE_ROOTS`. */
export class DirectoryTarget {
  @IsString() @Matches(/^\//, { message: 'path must be an absolute path' }) @MaxLength(4096)
  path: string;
}

/**
 * Backs up a directory tree as a GNU tar stream (modes, mtimes, owners, symlinks as links), indexed on the way
 * (path, size, mode, mtime and SHA-256 of every member, spooled to scratch) for deep verification, and restores it
 * into a target directory. Without include/exclude globs tar walks the tree itself; with them the file list is built
 * with fast-glob and handed to tar.
 */
@Injectable()
export class FilesystemEngine implements BackupEngine<FilesystemSource, DirectoryTarget> {
  readonly name = 'filesystem' as const;
  readonly artifactExtension = 'tar';
  readonly contentType = 'application/x-tar';
  readonly indexInRecord = false;
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
      entries.sort();
    }
    const index = await SpooledFileIndex.create(context.scratchDir, context.runId);
    const tar = this.tar.create({ cwd: source.path, entries, signal: context.signal });
    return indexedTarRun(tar, index, () => index.close());
  }

  async checkTarget(target: DirectoryTarget, overwrite: boolean): Promise<void> {
    await this.directories.check(target.path, overwrite);
  }

  async restore(target: DirectoryTarget, input: Readable, overwrite: boolean, context: EngineRunContext): Promise<EngineRestoreResult> {
    const path = await this.directories.check(target.path, overwrite);
    await this.directories.prepare(path);
    await this.tar.extract(path, input, context.signal);
    return { warnings: [] };
  }

  describeTarget(target: DirectoryTarget): Record<string, unknown> {
    return { ...target };
  }

  async verifyRestore(_source: FilesystemSource, input: Readable, recorded: RecordedContent, context: EngineRunContext): Promise<RestoreCheck> {
    return verifyTarRestore(this.tar, input, recorded, context);
  }
}
