import { lstat, mkdir, realpath, rename, rm } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { Readable } from 'node:stream';
import { describeError } from '../jobs/background-jobs';
import { ChainMember } from './backup-engine';
import { decodeFileName, displayFileName, encodeFileName } from './file-name-bytes';
import { TarArchiver } from './tar-archiver';
import { splitNulSeparated } from './tree-scan';

/**
 * Restores a chain of filesystem backups into `dir` (which exists): the full's archive is extracted, then for each
 * incremental in order its move list is applied (each `from` renamed to `to`), then its deletion list (each listed
 * path removed, recursively), and its archive extracted over the tree. Extracting an incremental also puts back the mode and mtime of every directory whose
 * content it changes (those directories are archived too), so the result is the tree as it was at the last
 * member. By hand: `tar -x` of the full, then per incremental `mv` of each pair of its move list, `xargs -0 rm -rf --`
 * of its deletion list and `tar -x` of its archive (docs/artifact-format.md).
 * @returns tar's warnings (see {@link TarArchiver.extract}), each naming its chain member
 * @throws an Error naming the chain member that failed (missing object, checksum mismatch, a moved file missing,
 *   tar error).
 */
export async function restoreChainInto(tar: TarArchiver, dir: string, chain: ChainMember[], signal: AbortSignal): Promise<string[]> {
  const warnings: string[] = [];
  for (const [i, member] of chain.entries()) {
    let raw: Readable | undefined;
    try {
      if (i === 0 && member.type !== 'FULL') throw new Error('the chain does not start with a full backup');
      if (i > 0) {
        const moves = await member.openMoves();
        if (moves) await applyMoves(dir, moves);
        const deletions = await member.openDeletions();
        if (deletions) await applyDeletions(dir, deletions);
      }
      raw = await member.openArtifact();
      for (const warning of await tar.extract(dir, raw, signal)) warnings.push(`chain member ${i + 1} of ${chain.length}: ${warning}`);
    } catch (error) {
      raw?.destroy();
      if (signal.aborted) throw error;
      throw new Error(`chain member ${i + 1} of ${chain.length} (${member.type} backup ${member.backupId}) cannot be restored: ${describeError(error)}`);
    }
  }
  return warnings;
}

/** @throws when `path` (an index path from a list) is absolute or holds `..`, `.` or an empty component. */
function checkListedPath(list: string, path: string): void {
  if (path.startsWith('/') || path.split('/').some((c) => c === '..' || c === '.' || c === '')) {
    throw new Error(`the ${list} names an unsafe path: ${JSON.stringify(displayFileName(path))}`);
  }
}

/**
 * The exact bytes of `root` joined with a listed path (decoded as in file-name-bytes.ts), for system calls. The
 * string functions of node:path work on decoded paths alike (`/` is never an escaped byte).
 */
function bytesOf(path: string): Buffer {
  return encodeFileName(path);
}

/** The real path of a decoded path, decoded (undefined when it does not exist). */
async function realpathOf(path: string): Promise<string | null> {
  return realpath(bytesOf(path), { encoding: 'buffer' }).then(decodeFileName, () => null);
}

/** @throws when the deepest existing directory of `full`'s parent resolves (symlinks) outside `root`. */
async function checkInside(root: string, full: string, list: string, path: string): Promise<void> {
  let dir = dirname(full);
  for (;;) {
    const real = await realpathOf(dir);
    if (real !== null) {
      if (real !== root && !real.startsWith(`${root}/`))
        throw new Error(`the ${list} names a path outside the target: ${JSON.stringify(displayFileName(path))}`);
      return;
    }
    if (dir === root || dirname(dir) === dir) return;
    dir = dirname(dir);
  }
}

/**
 * Applies a move list (NUL-separated pairs `from\0to\0` of index paths relative to `dir`): each `from` renamed to
 * `to` (replacing a file there), `to`'s parent directories created first (mode 0700 until the archive extracted
 * after puts back theirs). Paths are checked as {@link applyDeletions} does.
 * @returns the number of moves applied.
 * @throws on an unsafe path, a `from` that is missing (naming it), an odd number of paths, or a rename error.
 */
export async function applyMoves(dir: string, list: Readable): Promise<number> {
  const root = await realpath(dir);
  let from: string | undefined;
  let count = 0;
  const take = async (path: string) => {
    if (from === undefined) {
      from = path;
      return;
    }
    const to = path;
    for (const p of [from, to]) checkListedPath('move list', p);
    const fromFull = join(root, ...from.split('/'));
    const toFull = join(root, ...to.split('/'));
    await checkInside(root, fromFull, 'move list', from);
    await checkInside(root, toFull, 'move list', to);
    if (!(await lstat(bytesOf(fromFull)).catch(() => null))) {
      throw new Error(
        `the move list moves ${JSON.stringify(displayFileName(from))} to ${JSON.stringify(displayFileName(to))}, but ${JSON.stringify(displayFileName(from))} is missing`,
      );
    }
    await mkdir(bytesOf(dirname(toFull)), { recursive: true, mode: 0o700 });
    await rename(bytesOf(fromFull), bytesOf(toFull));
    from = undefined;
    count++;
  };
  for await (const path of splitNulSeparated(list)) await take(path);
  if (from !== undefined) throw new Error(`the move list ends with ${JSON.stringify(displayFileName(from))} and no destination`);
  return count;
}

/**
 * Removes every path of a NUL-separated deletion list (index paths, relative to `dir`) from `dir`, recursively.
 * A path that is absolute, holds `..`, or whose parent resolves outside `dir` (through a symlink) is refused.
 * Paths already gone are fine (a deleted directory's content follows it in the list).
 * @throws on a refused path or a removal error.
 */
export async function applyDeletions(dir: string, list: Readable): Promise<number> {
  const root = await realpath(dir);
  let count = 0;
  const remove = async (path: string) => {
    if (!path) return;
    checkListedPath('deletion list', path);
    const full = join(root, ...path.split('/'));
    const parent = await realpathOf(dirname(full));
    if (parent === null) return; // its directory is gone already
    if (parent !== root && !parent.startsWith(`${root}/`))
      throw new Error(`the deletion list names a path outside the target: ${JSON.stringify(displayFileName(path))}`);
    if (await lstat(bytesOf(full)).catch(() => null)) await rm(bytesOf(full), { recursive: true, force: true });
    count++;
  };
  for await (const path of splitNulSeparated(list)) await remove(path);
  return count;
}
