import { closeSync, openSync, writeSync } from 'node:fs';
import { chmod, chown, lstat, mkdir, open, readdir, readFile, rename, rm, rmdir, utimes } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { BigIntStats } from 'node:fs';
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { Readable } from 'node:stream';
import { finished } from 'node:stream/promises';
import { decodeFileName, encodeFileName, hasEscapedBytes } from './file-name-bytes';
import { TarArchiver } from './tar-archiver';

/**
 * A path as the fs functions take it: names are bytes (see file-name-bytes.ts), so a path holding escaped bytes
 * (a name that is not valid UTF-8) is handed over as those bytes.
 */
function fsPath(path: string): string | Buffer {
  return hasEscapedBytes(path) ? encodeFileName(path) : path;
}

/** The names in a directory, decoded as file-name-bytes.ts does (byte-exact, whatever their encoding). */
async function namesIn(dir: string): Promise<string[]> {
  return (await readdir(fsPath(dir), { encoding: 'buffer' })).map(decodeFileName);
}

/** Name of the staging root a restore makes inside its target: `.dr-restore-<runId>`. */
export const STAGING_PREFIX = '.dr-restore-';

/**
 * How much older than the staging's creation a directory's mtime must be to count as restored from an archive
 * member (see {@link DirectoryStaging}), in ms: file systems stamp times from a coarse clock that may lag the
 * wall clock by a tick; 2 s is far beyond any tick.
 */
const CLOCK_SLACK_MS = 2000;

/** What {@link DirectoryStaging.commit} did to the target. */
export interface StagingCommit {
  /** Entries (files, links, whole new subtrees) moved into the target. */
  moved: number;
  /** Of those, how many replaced an entry the target held (kept aside until the commit ended, then removed). */
  replaced: number;
  /** Existing directories whose content was merged (their mode, owner and mtime set from the archive). */
  merged: number;
}

/** One step of a commit, written to the journal before it is carried out (JSON lines). */
interface JournalStep {
  /**
   * `move`: tree/<rel> → target/<rel> (an old entry first moved to replaced/<rel> when `old`); `meta`: a
   * directory's metadata set; `create`: the whole tree renamed to the target, which did not exist.
   */
  op: 'move' | 'meta' | 'create';
  rel: string;
  old?: boolean;
  /** `meta`: the directory's metadata before (to put back). */
  mode?: number;
  uid?: number;
  gid?: number;
  /** Times in nanoseconds since the epoch, as decimal strings. */
  atimeNs?: string;
  mtimeNs?: string;
}

/**
 * Restores a directory through a staging area, so that nothing reaches the target before the whole archive has
 * been read, extracted and checked, and no symlink already in the target is ever followed.
 *
 * Layout: `.dr-restore-<runId>/tree` receives the extraction (a fresh, empty directory: nothing in it was put there
 * by anyone else), `replaced/` keeps what the commit replaced until it has ended, and `journal.jsonl` lists each
 * step of the commit before it is taken. For a target that does not exist yet (and is not a restore root itself)
 * the staging area is made beside it, in its parent, and the commit is one rename(2) of the tree to the target:
 * atomic, with the archive's own metadata of the top directory to the nanosecond. Otherwise it is made inside the
 * target (on its file system, within the restore roots, whatever is mounted where) and merged in as follows.
 *
 * {@link commit} then merges the tree into the target, as `tar -x` over it would (entries of the archive replace
 * those of the target, other entries of the target stay), but by rename(2) and lstat(2) only: an entry of the target
 * that is a symlink where the archive has a directory is replaced, never followed (`link -> /outside` plus an
 * archive member `link/evil` ends as a real directory `link` holding `evil`). An existing directory keeps its
 * mode, owner and mtime unless the archive has a member for it: a directory tar made only as the parent of a
 * member (configuration snapshots, include globs) has an mtime from the extraction, younger than the staging;
 * one restored from a member has its archived mtime (older, by construction: the backup came first).
 *
 * A commit that fails is rolled back from its journal; so is one whose process died, by {@link rollBackLeftover}
 * (the stale-job reaper calls it), after which the target is as it was and the staging is gone.
 */
export class DirectoryStaging {
  private constructor(
    readonly target: string,
    readonly root: string,
    /** The target did not exist: the staging area is beside it and the commit renames the tree to it. */
    private readonly beside: boolean,
    private readonly createdTarget: boolean,
    private readonly openedAtMs: number,
    /** The target's own metadata before the staging area was made in it (null: beside, or a new target). */
    private readonly before: BigIntStats | null,
    private readonly journal: Journal,
  ) {}

  /** The directory to extract into. */
  get tree(): string {
    return join(this.root, 'tree');
  }

  /**
   * Creates the staging area for `target` (a real path checked against the restore roots): beside a target that
   * does not exist when `mayStageBeside` (its parent is within the restore roots; missing levels are made mode
   * 0700), else inside the target, created (mode 0700) when missing.
   * @throws when the target cannot be created or is not a directory.
   */
  static async open(target: string, runId: string, mayStageBeside: boolean): Promise<DirectoryStaging> {
    const existed = await lstat(target).catch(() => null);
    if (existed && !existed.isDirectory()) throw new Error(`${target} is not a directory`);
    const beside = !existed && mayStageBeside;
    if (beside) await mkdir(dirname(target), { recursive: true, mode: 0o700 });
    else if (!existed) await mkdir(target, { recursive: true, mode: 0o700 });
    const root = join(beside ? dirname(target) : target, `${STAGING_PREFIX}${safeRunId(runId)}`);
    await rm(root, { recursive: true, force: true });
    const before = existed ? await lstat(target, { bigint: true }) : null;
    await mkdir(join(root, 'tree'), { recursive: true, mode: 0o700 });
    const journal = new Journal(join(root, 'journal.jsonl'));
    // first step: the target's own metadata, put back last by a rollback (making the staging area changed its mtime)
    if (before) journal.write(metaStep('', before));
    return new DirectoryStaging(target, root, beside, !existed, Date.now(), before, journal);
  }

  /**
   * Merges the staged tree into the target (see the class), then removes the staging area with what it replaced.
   * @returns counts of what it did.
   * @throws the error of a step, after rolling back every step taken (the target is as it was before).
   */
  async commit(): Promise<StagingCommit> {
    const counts: StagingCommit = { moved: 0, replaced: 0, merged: 0 };
    const journal = this.journal;
    // the tree's own metadata as tar left it, before the merge moves its entries out (which changes its mtime)
    let rootStat = await lstat(this.tree, { bigint: true });
    let topChanged = false;
    try {
      if (this.beside) {
        journal.write({ op: 'create', rel: '' });
        await rename(this.tree, this.target);
        counts.moved++;
      } else {
        await this.mergeInto(this.tree, this.target, '', journal, counts, () => (topChanged = true));
      }
      if (this.beside) rootStat = await lstat(this.target, { bigint: true });
      journal.close();
    } catch (error) {
      journal.close();
      await rollBack(this.target, this.root).catch(() => undefined);
      await rm(this.root, { recursive: true, force: true }).catch(() => undefined);
      if (!this.beside) await this.removeCreatedTarget();
      throw error;
    }
    await rm(this.root, { recursive: true, force: true });
    // last, once the staging area is gone from it: the top directory's own metadata (to the microsecond): the
    // archive's when it has a member for it, else what it had when nothing was added or replaced at its level
    if (!this.beside && (this.fromArchive(rootStat) || this.createdTarget)) await copyMeta(this.target, rootStat);
    else if (this.before && !topChanged) await copyMeta(this.target, this.before);
    return counts;
  }

  /**
   * Removes the staging area (a failed extraction) and puts back the target's own times; a target the staging
   * created is removed when still empty.
   */
  async discard(): Promise<void> {
    this.journal.close();
    await rollBack(this.target, this.root);
    if (!this.beside) await this.removeCreatedTarget();
  }

  /**
   * Puts back a target whose restore died (killed process) as it was: the commit's steps undone from the journal,
   * then the staging area removed. Nothing to do when there is no staging area for `runId`.
   * @returns whether a staging area was found.
   */
  static async rollBackLeftover(target: string, runId: string): Promise<boolean> {
    let found = false;
    for (const root of [join(target, `${STAGING_PREFIX}${safeRunId(runId)}`), join(dirname(target), `${STAGING_PREFIX}${safeRunId(runId)}`)]) {
      if (!(await lstat(root).catch(() => null))?.isDirectory()) continue;
      await rollBack(target, root);
      found = true;
    }
    return found;
  }

  private fromArchive(s: BigIntStats): boolean {
    return s.mtimeNs < BigInt(this.openedAtMs - CLOCK_SLACK_MS) * 1_000_000n;
  }

  private async removeCreatedTarget(): Promise<void> {
    if (this.createdTarget) await rmdir(this.target).catch(() => undefined); // only when empty
  }

  /**
   * Moves each entry of `from` (staged) into `to` (an existing real directory of the target); `onTopChange` is
   * called when an entry of the target's top level is added or replaced.
   */
  private async mergeInto(from: string, to: string, rel: string, journal: Journal, counts: StagingCommit, onTopChange: () => void): Promise<void> {
    for (const name of await namesIn(from)) {
      if (!rel && name.startsWith(STAGING_PREFIX)) continue; // never merged over a staging area
      const childRel = rel ? `${rel}/${name}` : name;
      const staged = await lstat(fsPath(join(from, name)), { bigint: true });
      const existing = await lstat(fsPath(join(to, name))).catch(() => null);
      if (staged.isDirectory() && existing?.isDirectory()) {
        // its metadata first, so a rollback puts back its times too (the moves below change its mtime)
        journal.write(metaStep(childRel, await lstat(fsPath(join(to, name)), { bigint: true })));
        await this.mergeInto(join(from, name), join(to, name), childRel, journal, counts, onTopChange);
        if (this.fromArchive(staged)) await copyMeta(join(to, name), staged);
        counts.merged++;
        continue;
      }
      journal.write({ op: 'move', rel: childRel, old: existing !== null });
      if (!rel) onTopChange();
      if (existing) {
        const aside = join(this.root, 'replaced', ...childRel.split('/'));
        await mkdir(fsPath(dirname(aside)), { recursive: true, mode: 0o700 });
        await rename(fsPath(join(to, name)), fsPath(aside));
        counts.replaced++;
      }
      await rename(fsPath(join(from, name)), fsPath(join(to, name)));
      counts.moved++;
    }
  }
}

/** Gives `dir` the mode, owner (when the service runs as root) and times (to the nanosecond) of `from`. */
async function copyMeta(dir: string, from: BigIntStats): Promise<void> {
  if (process.getuid?.() === 0) await chown(fsPath(dir), Number(from.uid), Number(from.gid));
  await chmod(fsPath(dir), Number(from.mode) & 0o7777);
  await setTimes(dir, from.atimeNs, from.mtimeNs);
}

const execFileAsync = promisify(execFile);

/**
 * Sets a directory's access and modification times to the nanosecond. utimes(2) through Node takes a double of
 * seconds (exact to about half a microsecond), so the mtime is then set exactly by coreutils' `touch -m -d @S.N`
 * (utimensat(2)).
 */
async function setTimes(path: string, atimeNs: bigint, mtimeNs: bigint): Promise<void> {
  await utimes(fsPath(path), Number(atimeNs) / 1e9, Number(mtimeNs) / 1e9);
  const seconds = mtimeNs / 1_000_000_000n;
  const nanos = (mtimeNs % 1_000_000_000n).toString().padStart(9, '0');
  if (!hasEscapedBytes(path)) {
    await execFileAsync('touch', ['-m', '-h', '-d', `@${seconds}.${nanos}`, '--', path]);
    return;
  }
  // arguments are text: a name that is not UTF-8 is reached through this process's descriptor of the directory
  const handle = await open(fsPath(path), 'r');
  try {
    await execFileAsync('touch', ['-m', '-d', `@${seconds}.${nanos}`, '--', `/proc/${process.pid}/fd/${handle.fd}`]);
  } finally {
    await handle.close();
  }
}

/** A journal step recording a directory's metadata before it is changed. */
function metaStep(rel: string, s: BigIntStats): JournalStep {
  return {
    op: 'meta',
    rel,
    mode: Number(s.mode) & 0o7777,
    uid: Number(s.uid),
    gid: Number(s.gid),
    atimeNs: s.atimeNs.toString(),
    mtimeNs: s.mtimeNs.toString(),
  };
}

/**
 * Undoes a commit's journalled steps in `target`, newest first: a moved entry is taken out again (back into the
 * staged tree, so a retried rollback finds it there) and what it replaced put back. Each step checks where things
 * are, so a step the process did not finish is undone as far as it went. The staging area `root` is then removed,
 * and last the directories get their metadata back (the target's own first recorded, so put back last).
 */
async function rollBack(target: string, root: string): Promise<void> {
  const text = await readFile(join(root, 'journal.jsonl'), 'utf8').catch(() => '');
  const steps = text
    .split('\n')
    .filter(Boolean)
    .flatMap((line) => {
      try {
        return [JSON.parse(line) as JournalStep];
      } catch {
        return []; // the last line of a process killed mid-write
      }
    });
  const metas: JournalStep[] = [];
  for (const step of steps.reverse()) {
    const inTarget = step.rel ? join(target, ...step.rel.split('/')) : target;
    if (step.op === 'create') {
      // the target did not exist: what is there now is the staged tree
      if (!(await lstat(join(root, 'tree')).catch(() => null)) && (await lstat(fsPath(target)).catch(() => null)))
        await rename(fsPath(target), join(root, 'tree'));
      continue;
    }
    if (step.op === 'meta') {
      metas.push(step);
      continue;
    }
    const staged = join(root, 'tree', ...step.rel.split('/'));
    const aside = join(root, 'replaced', ...step.rel.split('/'));
    if (!step.rel) continue; // only `meta` and `create` name the top directory
    const stillStaged = await lstat(fsPath(staged)).catch(() => null);
    if (!stillStaged && (await lstat(fsPath(inTarget)).catch(() => null))) {
      // the new entry reached the target: take it out again
      await mkdir(fsPath(dirname(staged)), { recursive: true, mode: 0o700 });
      await rename(fsPath(inTarget), fsPath(staged));
    }
    if (step.old && (await lstat(fsPath(aside)).catch(() => null))) await rename(fsPath(aside), fsPath(inTarget));
  }
  await rm(root, { recursive: true, force: true });
  for (const step of metas) {
    const inTarget = step.rel ? join(target, ...step.rel.split('/')) : target;
    const now = await lstat(fsPath(inTarget)).catch(() => null);
    if (!now?.isDirectory()) continue;
    if (process.getuid?.() === 0) await chown(fsPath(inTarget), step.uid!, step.gid!);
    await chmod(fsPath(inTarget), step.mode!);
    await setTimes(inTarget, BigInt(step.atimeNs!), BigInt(step.mtimeNs!));
  }
}

/** Append-only journal of a commit, one JSON line a step, written (not fsynced) before the step is taken. */
class Journal {
  private fd: number | null;

  constructor(path: string) {
    this.fd = openSync(path, 'a', 0o600);
  }

  write(step: JournalStep): void {
    writeSync(this.fd!, `${JSON.stringify(step)}\n`);
  }

  close(): void {
    if (this.fd !== null) closeSync(this.fd);
    this.fd = null;
  }
}

/** A run id as a file name component (ids are UUIDs; anything else is reduced to safe characters). */
function safeRunId(runId: string): string {
  return runId.replace(/[^A-Za-z0-9_-]/g, '_');
}

/**
 * Restores into `target` through a {@link DirectoryStaging}: `fill` puts the content into the staged tree (and
 * must resolve only once its input has been read to the end and checked); the tree is then committed.
 * `mayStageBeside`: the target's parent is within the restore roots (the target is not a root itself). On any
 * failure the staging is discarded and the target left as it was.
 * @returns what `fill` returned (e.g. tar's warnings) and what the commit did. @throws fill's or the commit's error
 */
export async function restoreThroughStaging<T>(
  target: string,
  runId: string,
  mayStageBeside: boolean,
  fill: (tree: string) => Promise<T>,
): Promise<{ filled: T; commit: StagingCommit }> {
  const staging = await DirectoryStaging.open(target, runId, mayStageBeside);
  let filled: T;
  try {
    filled = await fill(staging.tree);
  } catch (error) {
    await staging.discard();
    throw error;
  }
  return { filled, commit: await staging.commit() };
}

/**
 * Extracts `input` into `dir` with tar and resolves only once `input` has ENDED without error, i.e. once the
 * artifact's size and SHA-256 were checked: tar stops reading at the archive's end-of-archive blocks, and the
 * padding after them (with the final check) is read through here. Use it to fill a staging tree.
 * @returns tar's warnings. @throws tar's error, or the input's (SizeMismatchError, ChecksumMismatchError, CorruptArtifactError...)
 */
export async function extractProven(tar: TarArchiver, dir: string, input: Readable, signal: AbortSignal): Promise<string[]> {
  // the input's error is reported through `ended` or the extraction; a stream torn down mid-pipe may emit it twice
  input.on('error', () => undefined);
  const ended = finished(input, { writable: false });
  ended.catch(() => undefined); // awaited below; the extraction's failure is reported first
  const warnings = await tar.extract(dir, input, signal);
  input.unpipe();
  input.resume();
  await ended;
  return warnings;
}
