import { isUtf8 } from 'node:buffer';
import { readdir } from 'node:fs';
import { lstat } from 'node:fs/promises';
import { Injectable } from '@nestjs/common';
import { ArrayMaxSize, ArrayNotEmpty, IsArray, IsString, Matches, MaxLength } from 'class-validator';
import fg from 'fast-glob';
import micromatch from 'micromatch';
import { Readable } from 'node:stream';
import { DrError } from '../errors/dr-error';
import { TargetReservationKey, BackupEngine, EngineBackupRun, EngineRestoreResult, EngineRunContext, RecordedContent, RestoreCheck } from './backup-engine';
import { verifyTarRestore } from './restored-tree-check';
import { DirectoryTarget } from './filesystem.engine';
import { RestoreDirectoryPolicy } from './restore-directory';
import { extractProven, restoreThroughStaging } from './staged-directory';
import { TarArchiver } from './tar-archiver';
import { MemoryFileIndex } from './file-index';
import { decodeFileName, displayFileName, encodeFileName } from './file-name-bytes';
import { indexedTarRun } from './tar-indexer';

/** `source` of a configuration snapshot: absolute glob patterns, e.g. `/etc/app/*.yml`. */
export class ConfigurationSource {
  @IsArray()
  @ArrayNotEmpty()
  @ArrayMaxSize(200)
  @IsString({ each: true })
  @Matches(/^\//, { each: true, message: 'each path must be an absolute path or glob' })
  @MaxLength(4096, { each: true })
  paths: string[];
}

/**
 * Snapshots configuration files matched by globs into a tar archive (paths kept relative to `/`), with a
 * per-file SHA-256 index taken from the archive itself, so two snapshots can be diffed. Restores into a target
 * directory, recreating the original paths below it (`/etc/app/a.yml` → `<target>/etc/app/a.yml`).
 */
@Injectable()
export class ConfigurationEngine implements BackupEngine<ConfigurationSource, DirectoryTarget> {
  readonly name = 'configuration' as const;
  readonly artifactExtension = 'tar';
  readonly contentType = 'application/x-tar';
  readonly indexInRecord = true;
  /** Extracted into a staging tree inside the target, merged in only once the artifact is proven. */
  readonly restoreIsStaged = true;
  readonly sourceClass = ConfigurationSource;
  readonly targetClass = DirectoryTarget;

  constructor(
    private readonly tar: TarArchiver,
    private readonly directories: RestoreDirectoryPolicy,
  ) {}

  async toolVersions(): Promise<Record<string, string>> {
    return { tar: await this.tar.version() };
  }

  /**
   * The files the globs match, relative to `/`, sorted.
   * @throws DrError VALIDATION_FAILED (field `source.paths`) naming an entry the globs may match whose name is not
   *   valid UTF-8: fast-glob reads names as UTF-8 strings and cannot select it, and a snapshot that left it out
   *   without a word would look complete (the filesystem engine backs such names up)
   */
  private async matchFiles(source: ConfigurationSource): Promise<string[]> {
    const undecodable: string[] = [];
    const files = await fg(source.paths, {
      dot: true,
      onlyFiles: true,
      followSymbolicLinks: true,
      unique: true,
      absolute: true,
      fs: { readdir: readdirNoting(undecodable) },
    });
    const missed: string[] = [];
    for (const path of undecodable) if (await mayMatch(path, source.paths)) missed.push(displayFileName(path));
    missed.sort();
    if (missed.length) {
      throw DrError.validation([
        {
          field: 'source.paths',
          message:
            `cannot select ${missed
              .slice(0, 5)
              .map((p) => JSON.stringify(p))
              .join(', ')}${missed.length > 5 ? ` and ${missed.length - 5} more` : ''}: ` +
            'names that are not valid UTF-8 cannot be matched by configuration snapshots; back them up with the filesystem engine',
        },
      ]);
    }
    return files.map((f) => f.replace(/^\/+/, '')).sort();
  }

  async checkSource(source: ConfigurationSource): Promise<void> {
    if ((await this.matchFiles(source)).length === 0) {
      throw DrError.validation([{ field: 'source.paths', message: 'no file matches these paths' }]);
    }
  }

  async backup(source: ConfigurationSource, context: EngineRunContext): Promise<EngineBackupRun> {
    const entries = await this.matchFiles(source);
    if (entries.length === 0) throw new Error('no file matches source.paths');
    const index = new MemoryFileIndex();
    const tar = this.tar.create({ cwd: '/', entries, signal: context.signal });
    return indexedTarRun(tar, index, async () => undefined);
  }

  async checkTarget(target: DirectoryTarget, overwrite: boolean): Promise<void> {
    await this.directories.check(target.path, overwrite);
  }

  /**
   * Extracts the snapshot into a staging tree inside the target and merges it in once it is proven (see
   * {@link restoreThroughStaging}): the directories above the files (which the snapshot has no members for) are
   * created where missing, a symlink in their place is replaced, never followed, and existing ones keep their mode.
   */
  async restore(target: DirectoryTarget, input: Readable, overwrite: boolean, context: EngineRunContext): Promise<EngineRestoreResult> {
    const path = await this.directories.check(target.path, overwrite);
    const { filled: warnings } = await restoreThroughStaging(path, context.runId, !(await this.directories.isRoot(path)), (tree) =>
      extractProven(this.tar, tree, input, context.signal),
    );
    return { warnings };
  }

  async reservationKey(target: DirectoryTarget): Promise<TargetReservationKey> {
    return { key: `path:${await this.directories.resolve(target.path)}`, field: 'target.path' };
  }

  describeTarget(target: DirectoryTarget): Record<string, unknown> {
    return { ...target };
  }

  async verifyRestore(_source: ConfigurationSource, input: Readable, recorded: RecordedContent, context: EngineRunContext): Promise<RestoreCheck> {
    return verifyTarRestore(this.tar, input, recorded, context);
  }
}

/**
 * fs.readdir for fast-glob that also lists, into `undecodable`, the absolute paths (decoded as in
 * file-name-bytes.ts) of the names in each directory read that are not valid UTF-8.
 */
function readdirNoting(undecodable: string[]): typeof readdir {
  return ((path: string, options: object, callback: (...args: unknown[]) => void) => {
    readdir(path, { encoding: 'buffer' }, (error, names) => {
      if (!error) for (const name of names) if (!isUtf8(name)) undecodable.push(`${path.replace(/\/+$/, '')}/${decodeFileName(name)}`);
      readdir(path, options as never, callback as never);
    });
  }) as unknown as typeof readdir;
}

/**
 * Whether `path` (absolute, decoded) is matched by a glob of `patterns`, or is a directory below which one may match:
 * the pattern cut to the directory's depth matches it, or a `**` comes before that depth.
 */
async function mayMatch(path: string, patterns: string[]): Promise<boolean> {
  const options = { dot: true };
  if (micromatch.isMatch(path, patterns, options)) return true;
  const stat = await lstat(encodeFileName(path)).catch(() => null);
  if (!stat?.isDirectory()) return false;
  const depth = path.split('/').length;
  return patterns.some((pattern) => {
    const segments = pattern.split('/');
    if (segments.length <= depth) return false;
    const globstar = segments.slice(0, depth).indexOf('**');
    if (globstar >= 0) return micromatch.isMatch(path.split('/').slice(0, globstar).join('/') || '/', segments.slice(0, globstar).join('/') || '/', options);
    return micromatch.isMatch(path, segments.slice(0, depth).join('/'), options);
  });
}
