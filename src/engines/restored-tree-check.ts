import { createHash } from 'node:crypto';
import { createReadStream, readlinkSync } from 'node:fs';
import { lstat, mkdir, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { FileIndexEntry } from './file-index-entry';
import { EngineRunContext, RecordedContent, RestoreCheck } from './backup-engine';
import { indexPathOf, linkTargetOf } from './file-index';
import { decodeFileName, displayFileName } from './file-name-bytes';
import { TarArchiver } from './tar-archiver';
import { TreePaths } from './tree-paths';
import { walkTree } from './tree-scan';

/** Problems listed in full; beyond, a count. */
const MAX_LISTED_PROBLEMS = 100;

/**
 * Deep verification of a tar artifact (filesystem and configuration backups): extracts it into
 * `<scratchDir>/verify-<runId>` and compares every member with the file index recorded at backup time (type,
 * size, SHA-256 of the content, permission bits, mtime to the nanosecond — to the second for indexes written before
 * pax archives —, symlink target), then looks for entries that were not recorded. Paths and link targets are
 * compared as bytes (see file-name-bytes.ts), so an entry whose name is not valid UTF-8 is checked like any other,
 * and a recorded entry that is not restored is a problem. The scratch directory is removed whatever happens.
 * @throws whatever tar's extraction raised (a corrupt artifact); differences are returned, not thrown
 */
export async function verifyTarRestore(tar: TarArchiver, input: Readable, recorded: RecordedContent, context: EngineRunContext): Promise<RestoreCheck> {
  return verifyRestoredTree((dir) => tar.extract(dir, input, context.signal), recorded, context);
}

/**
 * The same check as {@link verifyTarRestore} for a tree that `restoreInto` puts into the scratch directory (the
 * chain of an incremental backup, see restoreChainInto).
 * @throws whatever `restoreInto` raised; differences are returned, not thrown
 */
export async function verifyRestoredTree(
  restoreInto: (dir: string) => Promise<unknown>,
  recorded: RecordedContent,
  context: EngineRunContext,
): Promise<RestoreCheck> {
  if (!recorded.files) throw new Error('this backup recorded no file index to compare a restore with');
  const dir = join(context.scratchDir, `verify-${context.runId}`);
  await rm(dir, { recursive: true, force: true });
  await mkdir(dir, { recursive: true, mode: 0o700 });
  const problems: string[] = [];
  let more = 0;
  const report = (problem: string) => (problems.length < MAX_LISTED_PROBLEMS ? problems.push(problem) : more++);
  const checked = { files: 0, directories: 0, symlinks: 0, bytes: 0 };
  const tree = new TreePaths(dir);
  try {
    await restoreInto(dir);
    const recordedPaths = new Set<string>(['']);
    for await (const entry of recorded.files) {
      const path = indexPathOf(entry);
      if (!path) continue; // the archive's root, `.`
      recordedPaths.add(path);
      // directories tar creates implicitly for a member (configuration snapshots archive files only)
      for (let i = path.indexOf('/'); i > 0; i = path.indexOf('/', i + 1)) recordedPaths.add(path.slice(0, i));
      const problem = await checkMember(tree, path, entry, checked);
      if (problem) report(`${displayFileName(path)}: ${problem}`);
    }
    for await (const { path } of walkTree(dir)) {
      if (!recordedPaths.has(path)) report(`${displayFileName(path)}: restored, but not in the backup's file index`);
    }
  } finally {
    tree.close();
    await removeTree(dir);
  }
  if (more) problems.push(`... and ${more} more problems`);
  return { problems, checked, scratchTarget: dir };
}

/** Compares one restored member (at the decoded `path`) with its index entry. @returns what differs, or null */
async function checkMember(tree: TreePaths, path: string, entry: FileIndexEntry, checked: Record<string, number>): Promise<string | null> {
  const stat = await lstat(tree.of(path), { bigint: true }).catch(() => null);
  if (!stat) return 'missing after restore';
  const type = stat.isFile() ? 'file' : stat.isDirectory() ? 'directory' : stat.isSymbolicLink() ? 'symlink' : 'other';
  if (entry.type !== 'other' && type !== entry.type) return `restored as a ${type}, recorded as a ${entry.type}`;
  if (type === 'symlink') {
    checked.symlinks++;
    const target = decodeFileName(readlinkSync(tree.of(path), { encoding: 'buffer' }));
    const recordedTarget = linkTargetOf(entry);
    return target === recordedTarget
      ? null
      : `links to ${displayFileName(target)}, recorded ${recordedTarget === undefined ? 'no target' : displayFileName(recordedTarget)}`;
  }
  const mode = (Number(stat.mode) & 0o7777).toString(8).padStart(4, '0');
  if (mode !== entry.mode) return `mode ${mode}, recorded ${entry.mode}`;
  if (type === 'directory') {
    checked.directories++;
    return null;
  }
  const mtimeDiffers =
    entry.mtimeNs !== undefined
      ? stat.mtimeNs.toString() !== entry.mtimeNs
      : stat.mtimeNs / 1_000_000_000n !== BigInt(Math.floor(Date.parse(entry.mtime) / 1000)); // whole seconds
  if (mtimeDiffers) return `modified ${nsToIso(stat.mtimeNs)}, recorded ${entry.mtimeNs !== undefined ? nsToIso(BigInt(entry.mtimeNs)) : entry.mtime}`;
  if (entry.type === 'file') {
    checked.files++;
    checked.bytes += Number(stat.size);
    if (Number(stat.size) !== entry.sizeBytes) return `${stat.size} bytes, recorded ${entry.sizeBytes}`;
    const hash = createHash('sha256');
    for await (const chunk of createReadStream(tree.of(path), { highWaterMark: 1 << 20 })) hash.update(chunk as Buffer);
    const sha256 = hash.digest('hex');
    if (sha256 !== entry.sha256) return `content sha256 ${sha256}, recorded ${entry.sha256}`;
  }
  return null;
}

/** A time in ns since the epoch as ISO 8601 with nine decimals (`2021-01-01T00:00:00.123456789Z`). */
function nsToIso(ns: bigint): string {
  const seconds = ns / 1_000_000_000n - (ns < 0n && ns % 1_000_000_000n !== 0n ? 1n : 0n);
  const fraction = ns - seconds * 1_000_000_000n;
  return `${new Date(Number(seconds) * 1000).toISOString().slice(0, 19)}.${fraction.toString().padStart(9, '0')}Z`;
}

/**
 * Removes a restored tree, however deep: Node's recursive `rm` fails on paths longer than PATH_MAX, so a tree it
 * could not remove is removed from the bottom up through {@link TreePaths}.
 */
async function removeTree(dir: string): Promise<void> {
  try {
    await rm(dir, { recursive: true, force: true });
    return;
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== 'ENAMETOOLONG') throw error;
  }
  const tree = new TreePaths(dir);
  try {
    const directories: string[] = [];
    for await (const { path, stat } of walkTree(dir)) {
      if (stat.isDirectory()) directories.push(path);
      else await rm(tree.of(path), { force: true });
    }
    for (const path of directories.reverse()) await rm(tree.of(path), { recursive: true, force: true });
  } finally {
    tree.close();
  }
}
