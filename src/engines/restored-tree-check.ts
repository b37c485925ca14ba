import { createHash } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { lstat, mkdir, readdir, readlink, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { FileIndexEntry } from '../pipeline/manifest';
import { EngineRunContext, RecordedContent, RestoreCheck } from './backup-engine';
import { TarArchiver } from './tar-archiver';

/** Problems listed in full; beyond, a count. */
const MAX_LISTED_PROBLEMS = 100;

/**
 * Deep verification of a tar artifact (filesystem and configuration backups): extracts it into
 * `<scratchDir>/verify-<runId>` and compares every member with the file index recorded at backup time (type,
 * size, SHA-256 of the content, permission bits, mtime to the second, symlink target), then looks for members
 * that were not recorded. The scratch directory is removed whatever happens.
 * @throws whatever tar's extraction raised (a corrupt artifact); differences are returned, not thrown
 */
export async function verifyTarRestore(
  tar: TarArchiver,
  input: Readable,
  recorded: RecordedContent,
  context: EngineRunContext,
): Promise<RestoreCheck> {
  return verifyRestoredTree((dir) => tar.extract(dir, input, context.signal), recorded, context);
}

/**
 * The same check as {@link verifyTarRestore} for a tree that `restoreInto` puts into the scratch directory (the
 * chain of an incremental backup, see restoreChainInto).
 * @throws whatever `restoreInto` raised; differences are returned, not thrown
 */
export async function verifyRestoredTree(
  restoreInto: (dir: string) => Promise<void>,
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
  try {
    await restoreInto(dir);
    const recordedPaths = new Set<string>(['']);
    for await (const entry of recorded.files) {
      if (!entry.path) continue; // the archive's root, `.`
      recordedPaths.add(entry.path);
      // directories tar creates implicitly for a member (configuration snapshots archive files only)
      for (let i = entry.path.indexOf('/'); i > 0; i = entry.path.indexOf('/', i + 1)) recordedPaths.add(entry.path.slice(0, i));
      const problem = await checkMember(dir, entry, checked);
      if (problem) report(`${entry.path}: ${problem}`);
    }
    for await (const path of walk(dir, '')) {
      if (!recordedPaths.has(path)) report(`${path}: restored, but not in the backup's file index`);
    }
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
  if (more) problems.push(`... and ${more} more problems`);
  return { problems, checked, scratchTarget: dir };
}

/** Compares one restored member with its index entry. @returns what differs, or null */
async function checkMember(dir: string, entry: FileIndexEntry, checked: Record<string, number>): Promise<string | null> {
  const path = join(dir, ...entry.path.split('/'));
  const stat = await lstat(path).catch(() => null);
  if (!stat) return 'missing after restore';
  const type = stat.isFile() ? 'file' : stat.isDirectory() ? 'directory' : stat.isSymbolicLink() ? 'symlink' : 'other';
  if (entry.type !== 'other' && type !== entry.type) return `restored as a ${type}, recorded as a ${entry.type}`;
  if (type === 'symlink') {
    checked.symlinks++;
    const target = await readlink(path);
    return target === entry.linkTarget ? null : `links to ${target}, recorded ${entry.linkTarget}`;
  }
  const mode = (stat.mode & 0o7777).toString(8).padStart(4, '0');
  if (mode !== entry.mode) return `mode ${mode}, recorded ${entry.mode}`;
  if (type === 'directory') {
    checked.directories++;
    return null;
  }
  if (Math.floor(stat.mtimeMs / 1000) !== Math.floor(Date.parse(entry.mtime) / 1000)) {
    return `modified ${stat.mtime.toISOString()}, recorded ${entry.mtime}`;
  }
  if (entry.type === 'file') {
    checked.files++;
    checked.bytes += stat.size;
    if (stat.size !== entry.sizeBytes) return `${stat.size} bytes, recorded ${entry.sizeBytes}`;
    const hash = createHash('sha256');
    for await (const chunk of createReadStream(path, { highWaterMark: 1 << 20 })) hash.update(chunk as Buffer);
    const sha256 = hash.digest('hex');
    if (sha256 !== entry.sha256) return `content sha256 ${sha256}, recorded ${entry.sha256}`;
  }
  return null;
}

/** Every path below `dir` (relative, `/`-separated), depth first; symlinks are not followed. */
async function* walk(dir: string, prefix: string): AsyncIterable<string> {
  for (const entry of await readdir(join(dir, prefix), { withFileTypes: true })) {
    const path = prefix ? `${prefix}/${entry.name}` : entry.name;
    yield path;
    if (entry.isDirectory()) yield* walk(dir, path);
  }
}
