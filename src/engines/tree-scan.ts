import { BigIntStats, createReadStream, createWriteStream, lstatSync, readlinkSync, WriteStream } from 'node:fs';
import { performance } from 'node:perf_hooks';
import { lstat, mkdir, readdir, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { finished } from 'node:stream/promises';
import { FileIndexEntry, SourceStat } from './file-index-entry';
import { FileIndex, indexPathOf, linkTargetOf, withIndexPath } from './file-index';
import { decodeFileName, displayFileName, encodeFileName, hasEscapedBytes } from './file-name-bytes';
import { PATH_MAX, tooLongForTar, TreePaths } from './tree-paths';

/**
 * Compares two index paths (`/`-separated, relative, `''` for the root) in tree-walk order: component by component,
 * each component by UTF-16 code units, a directory before everything below it. This is the order
 * {@link walkTree} yields entries in and the order of a filesystem backup's file index, so a backup's index and
 * the next walk can be merged in one pass (a merge join, bounded memory).
 * @returns negative, 0 or positive like `Array.prototype.sort`'s comparators.
 */
export function compareTreePaths(a: string, b: string): number {
  if (a === b) return 0;
  if (a === '') return -1;
  if (b === '') return 1;
  const x = a.split('/');
  const y = b.split('/');
  for (let i = 0; i < Math.min(x.length, y.length); i++) {
    if (x[i] !== y[i]) return x[i] < y[i] ? -1 : 1;
  }
  return x.length - y.length;
}

/** One entry of a walk: its index path and its lstat (bigint, nanosecond times). */
export interface WalkedEntry {
  path: string;
  stat: BigIntStats;
}

/** Hooks of {@link walkTree}. */
export interface WalkHooks {
  /** Limits what is yielded (include/exclude globs); directories are descended into all the same. */
  include?: (path: string, stat: BigIntStats) => boolean;
  /** Awaited when the walk enters a directory (after the directory itself was yielded), before its content. */
  onEnter?: (path: string) => Promise<void> | void;
  /** Awaited after a directory's content has been yielded (post-order). */
  onLeave?: (path: string) => Promise<void> | void;
}

/**
 * Walks `root` depth first, yielding the root itself (path `''`) and then every entry below it in
 * {@link compareTreePaths} order (a directory's names sorted, each directory before its content). Symlinks are
 * not followed. Names are bytes, decoded as in file-name-bytes.ts (a directory whose listing shows U+FFFD is read
 * again as bytes), so a name that is not valid UTF-8 is walked like any other; paths longer than PATH_MAX are
 * reached through {@link TreePaths}. Only one directory
 * listing is held per level, so memory grows with the depth, not the size.
 * @throws the lstat/readdir error of the root or of a directory below it (EACCES...); entries that vanish during
 *   the walk are skipped.
 */
export async function* walkTree(root: string, hooks: WalkHooks = {}): AsyncGenerator<WalkedEntry> {
  const paths = new TreePaths(root);
  try {
    const rootStat = await lstat(root, { bigint: true });
    if (!hooks.include || hooks.include('', rootStat)) yield { path: '', stat: rootStat };
    await hooks.onEnter?.('');
    // one generator with an explicit stack of open directories (nested generators would cost a hop per level per entry)
    const stack: WalkFrame[] = [await openFrame(paths, '')];
    while (stack.length) {
      const frame = stack[stack.length - 1];
      if (frame.next >= frame.paths.length) {
        stack.pop();
        await hooks.onLeave?.(frame.prefix);
        continue;
      }
      if (frame.next >= frame.statsFrom + frame.stats.length) {
        frame.statsFrom = frame.next;
        frame.stats = await lstatSlice(paths, frame.paths, frame.next);
      }
      const path = frame.paths[frame.next];
      const stat = frame.stats[frame.next - frame.statsFrom];
      frame.next++;
      if (!stat) continue; // removed while we walked
      if (!hooks.include || hooks.include(path, stat)) yield { path, stat };
      if (stat.isDirectory()) {
        await hooks.onEnter?.(path);
        stack.push(await openFrame(paths, path));
      }
    }
  } finally {
    paths.close();
  }
}

/** A directory being walked: its entries' paths (sorted), where the walk is, and the lstat batch in hand. */
interface WalkFrame {
  prefix: string;
  paths: string[];
  next: number;
  statsFrom: number;
  stats: (BigIntStats | null)[];
}

async function openFrame(paths: TreePaths, prefix: string): Promise<WalkFrame> {
  let names: string[];
  try {
    names = await readdir(paths.of(prefix));
    // Node decodes names as UTF-8, an undecodable byte as U+FFFD: read such a directory again as bytes
    if (names.some((name) => name.includes('\ufffd'))) names = (await readdir(paths.of(prefix), { encoding: 'buffer' })).map(decodeFileName);
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    if (code !== 'ENOENT' && code !== 'ENOTDIR') throw error;
    names = []; // removed (or replaced) while we walked
  }
  names.sort((a, b) => (a < b ? -1 : a > b ? 1 : 0));
  return { prefix, paths: names.map((name) => (prefix ? `${prefix}/${name}` : name)), next: 0, statsFrom: 0, stats: [] };
}

/** How long {@link lstatSlice} may hold the event loop, ms. */
const LSTAT_SLICE_MS = 4;

/**
 * lstat(2) of `paths[from..]`, synchronously, for at most {@link LSTAT_SLICE_MS} (at least one entry), then yields
 * to the event loop (setImmediate). A walk makes one lstat per entry: done on libuv's thread pool, each costs a
 * hand-off between threads, which on a busy machine costs more than the call itself (bench tree of 4,050 files,
 * machine shared, incremental backup through the service: walk 0.55-0.78 s on the thread pool, 0.23-0.38 s this
 * way). Time slices keep the loop responsive (heartbeats, HTTP) even on a slow file system.
 * @returns one stat per path taken, null for an entry that vanished
 */
async function lstatSlice(tree: TreePaths, paths: string[], from: number): Promise<(BigIntStats | null)[]> {
  await new Promise<void>((resolve) => setImmediate(resolve));
  const started = performance.now();
  const stats: (BigIntStats | null)[] = [];
  for (let i = from; i < paths.length && (i === from || performance.now() - started < LSTAT_SLICE_MS); i++) {
    try {
      stats.push(lstatSync(tree.of(paths[i]), { bigint: true }));
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== 'ENOENT') throw error;
      stats.push(null); // removed while we walked
    }
  }
  return stats;
}

/** The part of an lstat kept in the index for change detection (see {@link SourceStat}). */
export function sourceStatOf(stat: BigIntStats): SourceStat {
  return {
    mode: Number(stat.mode),
    uid: Number(stat.uid),
    gid: Number(stat.gid),
    size: stat.size.toString(),
    ino: stat.ino.toString(),
    mtimeNs: stat.mtimeNs.toString(),
    ctimeNs: stat.ctimeNs.toString(),
  };
}

/**
 * Whether an entry is unchanged since the parent backup recorded it, the way restic and GNU tar's
 * `--listed-incremental` decide it without reading content: same file type and permission bits, owner, size,
 * inode, mtime and ctime (nanoseconds). ctime catches a chmod, a chown, a new hard link and an mtime set back by
 * hand; the inode catches a file replaced by another (a rename over it).
 */
export function unchangedSince(recorded: SourceStat | undefined, now: SourceStat): boolean {
  if (!recorded) return false;
  const directory = (now.mode & 0o170000) === 0o040000;
  return (
    recorded.mode === now.mode &&
    recorded.uid === now.uid &&
    recorded.gid === now.gid &&
    (directory || recorded.size === now.size) &&
    recorded.ino === now.ino &&
    recorded.mtimeNs === now.mtimeNs &&
    recorded.ctimeNs === now.ctimeNs
  );
}

/** st_mode's file type bits, and the type of a regular file. */
const S_IFMT = 0o170000;
const S_IFREG = 0o100000;

/**
 * Whether `now` may be the file the parent recorded as `recorded`, moved (renamed) since: the same inode, file type,
 * permission bits, owner, size and mtime (ns). The ctime is not compared: a rename changes it.
 */
export function sameFileMoved(recorded: SourceStat, now: SourceStat): boolean {
  return (
    recorded.ino === now.ino &&
    recorded.mode === now.mode &&
    recorded.uid === now.uid &&
    recorded.gid === now.gid &&
    recorded.size === now.size &&
    recorded.mtimeNs === now.mtimeNs
  );
}

/**
 * At most this many move candidates (gone regular files and new ones, not matched yet) plus resolved moves are kept
 * in memory by {@link TreeScan} (each a few hundred bytes: about 50 MB at worst). Candidates beyond it are handled
 * as without move detection (archived, deleted), so memory stays bounded whatever the change set.
 */
export const MAX_MOVE_CANDIDATES = 100_000;

/** Entries left out that a backup's warnings name one by one; beyond, a count. */
const MAX_LEFT_OUT_NAMED = 20;

/**
 * A line of the walk spool: an index entry carried over from the parent, a member tar archives (`tar: true`), or a
 * new regular file that may be a moved one (`candidate: true`: archived unless a gone parent entry matched it).
 */
interface WalkLine {
  path: string;
  stat: SourceStat;
  /** The entry as the parent recorded it (unchanged since). */
  carried?: FileIndexEntry;
  /** Archived in this backup: the index entry comes from the tar stream. */
  tar?: true;
  /** A possible move target, resolved after the walk (see {@link TreeScan}). */
  candidate?: true;
}

/** A spool file written with back-pressure (awaits 'drain'), mode 0600. */
class Spool {
  private readonly out: WriteStream;
  private failure?: Error;

  constructor(readonly path: string) {
    this.out = createWriteStream(path, { mode: 0o600, highWaterMark: 1 << 20 });
    this.out.on('error', (error) => (this.failure ??= error));
  }

  /** @returns a promise to await only when the buffer is full (back-pressure), else undefined. @throws a write error */
  write(data: string | Buffer): Promise<void> | undefined {
    if (this.failure) throw this.failure;
    if (this.out.write(data)) return undefined;
    return new Promise<void>((resolve) => this.out.once('drain', resolve).once('close', resolve));
  }

  async close(): Promise<void> {
    if (!this.out.writableEnded) this.out.end();
    await finished(this.out);
    if (this.failure) throw this.failure;
  }

  destroy(): void {
    this.out.destroy();
  }
}

/** Counts of a scan. */
export interface ScanCounts {
  /** Entries in the tree (the new index). */
  entries: number;
  /** Members given to tar in walk order (new and changed entries). */
  archived: number;
  /** Unchanged directories appended to the archive because their content changed (for their mode and mtime). */
  touchedDirectories: number;
  /** Paths of the parent's index no longer in the tree (and not moved), or whose type changed. */
  deleted: number;
  /** Regular files moved (renamed): in the move list, not archived. */
  moved: number;
}

/**
 * Change detection of a filesystem backup, full or incremental. {@link names} walks the tree (see {@link walkTree})
 * and, for an incremental, merges the walk with the parent's file index in one pass (both in
 * {@link compareTreePaths} order): an entry whose lstat is unchanged keeps the parent's index entry (its SHA-256
 * carried over, the file not read); a new or changed one is handed to tar, which archives it without recursion; a
 * parent path missing from the walk (or whose type changed) goes to the deletion list. After the walk come the
 * unchanged directories whose content changed (a member added, replaced or deleted in them), so that extracting the
 * archive puts back their mtime. Without a parent every entry is archived (a full backup).
 *
 * Moves (renames): a regular file new in the walk (its path new, or replacing a regular file of another inode),
 * with one link, whose lstat matches a gone regular file of the parent by {@link sameFileMoved} is recorded in the
 * move list (`from\0to\0`) instead of being archived, and its parent entry (SHA-256 included) carried over to the
 * new path; the gone path is then not in the deletion list. A new path may come before or after the gone one in the
 * walk, so candidates wait in two maps keyed by inode (gone files, new files; a pair is resolved as soon as both
 * are seen) until the end of the pass, at most {@link MAX_MOVE_CANDIDATES} entries: bounded by the change set, not
 * the tree. Hence for an incremental the names go to tar only after the walk (re-read from the walk spool, in walk
 * order, moved files left out). Not moves: hard links (nlink > 1), a file below a path whose type changed (a file
 * that became a directory: it is deleted after the moves run), and a path that was not a regular file.
 *
 * Everything else is spooled to `scratchDir` (walk, deletions, moves), so memory does not grow with the tree. Once
 * tar has archived the names, {@link index} merges the walk spool with the index tar's stream produced into the new
 * file index: the full state of the tree, each entry with its {@link SourceStat}.
 */
export class TreeScan {
  readonly counts: ScanCounts = { entries: 0, archived: 0, touchedDirectories: 0, deleted: 0, moved: 0 };
  /** Entries left out, named (sockets: tar cannot archive them), complete once {@link names} has ended. */
  readonly warnings: string[] = [];
  private leftOutCount = 0;
  private readonly walk: Spool;
  private readonly deletions: Spool;
  private readonly touched: Spool;
  private readonly moves: Spool;
  /** Per open directory (a stack): whether something in it was archived or deleted. */
  private readonly changedBelow: boolean[] = [];
  /** Per open directory (a stack): whether it or a directory above it was another type in the parent. */
  private readonly typeChangedBelow: boolean[] = [];
  /** The last directory walked whose path was another type in the parent (read by the onEnter hook). */
  private typeChangedDir?: string;
  /** Gone regular files of the parent not matched yet, by inode. */
  private readonly goneByIno = new Map<string, FileIndexEntry>();
  /** New regular files (possible move targets) not matched yet, by inode: their path and lstat. */
  private readonly newByIno = new Map<string, { path: string; stat: SourceStat }>();
  /** Full backup whose index is made as the members pass (see {@link indexAsArchived}). */
  private live = false;
  /** Full backup: the walk entries handed to tar whose members have not passed yet (bounded by the pipe to tar). */
  private readonly awaiting = new EntryQueue<{ path: string; stat: SourceStat }>();
  /** Resolved moves: the new path, and the parent's entry (its old path) it carries over. */
  private readonly movedTo = new Map<string, FileIndexEntry>();

  private constructor(
    private readonly root: string,
    private readonly base: string,
    private readonly parent: AsyncIterable<FileIndexEntry> | undefined,
    private readonly include: ((path: string, isDirectory: boolean) => boolean) | undefined,
  ) {
    this.walk = new Spool(`${base}.walk.jsonl`);
    this.deletions = new Spool(`${base}.deletions.nul`);
    this.touched = new Spool(`${base}.touched.nul`);
    this.moves = new Spool(`${base}.moves.nul`);
  }

  /**
   * @param root the directory backed up.
   * @param parent the parent backup's file index (entries with `stat`, in walk order), or undefined for a full.
   * @param include limits the entries backed up (include/exclude globs), or undefined for all.
   */
  static async create(
    scratchDir: string,
    runId: string,
    root: string,
    parent: AsyncIterable<FileIndexEntry> | undefined,
    include?: (path: string, isDirectory: boolean) => boolean,
  ): Promise<TreeScan> {
    await mkdir(scratchDir, { recursive: true, mode: 0o700 });
    return new TreeScan(root, join(scratchDir, `${runId}.scan`), parent, include);
  }

  /** Path of the spooled deletion list (NUL-separated index paths), complete once {@link names} has ended. */
  get deletionsPath(): string {
    return this.deletions.path;
  }

  /** Path of the spooled move list (NUL-separated pairs `from\0to\0`), complete once {@link names} has ended. */
  get movesPath(): string {
    return this.moves.path;
  }

  /**
   * The names tar is to archive, in order (relative to the root, `.` for the root itself).
   * @throws when the walk fails, or the parent's index is not in walk order (written by another version).
   */
  async *names(): AsyncGenerator<string> {
    const parent = this.parent?.[Symbol.asyncIterator]();
    let previous: string | undefined;
    const nextParent = async (): Promise<FileIndexEntry | undefined> => {
      if (!parent) return undefined;
      const next = await parent.next();
      if (next.done) return undefined;
      const entry = internalEntry(next.value);
      if (previous !== undefined && compareTreePaths(previous, entry.path) >= 0) {
        throw new Error(`the parent's file index is not in tree order (${JSON.stringify(previous)} before ${JSON.stringify(entry.path)}); take a full backup`);
      }
      if (!entry.stat) throw new Error(`the parent's file index records no lstat for ${JSON.stringify(entry.path)}; take a full backup`);
      previous = entry.path;
      return entry;
    };
    let recorded = await nextParent();
    const hooks: WalkHooks = {
      include: this.include && ((path, stat) => this.include!(path, stat.isDirectory())),
      onEnter: (path) => {
        this.changedBelow.push(false);
        const above = this.typeChangedBelow.length > 0 && this.typeChangedBelow[this.typeChangedBelow.length - 1];
        this.typeChangedBelow.push(above || (path !== '' && path === this.typeChangedDir));
      },
      onLeave: async (path) => {
        // what the parent had below this directory and the walk did not find is gone
        while (recorded && (path === '' || recorded.path.startsWith(`${path}/`))) {
          await this.gone(recorded);
          recorded = await nextParent();
        }
        this.typeChangedBelow.pop();
        const changed = this.changedBelow.pop()!;
        // the directory's own entry was not archived (unchanged), but restoring its content changes its mtime
        if (changed && this.parent && !this.archivedDirs.has(path) && (!this.include || this.include(path, true))) {
          this.counts.touchedDirectories++;
          await this.touched.write(Buffer.concat([encodeFileName(path === '' ? '.' : path), NUL]));
        }
        this.archivedDirs.delete(path);
      },
    };
    for await (const { path, stat } of walkTree(this.root, hooks)) {
      if (tooLongForTar(path)) {
        throw new Error(
          `cannot back up ${JSON.stringify(shortened(displayFileName(path)))}: its path is ${encodeFileName(path).length} bytes long, and ` +
            `GNU tar can neither archive nor extract a path of ${PATH_MAX} bytes or more; shorten it or leave it out (source.exclude)`,
        );
      }
      if (stat.isSocket()) {
        // no content, nothing tar archives (it skips them): whatever listens on it makes it again
        this.leftOut(path, 'a socket, which no archive can hold (the program listening on it creates it again)');
        continue;
      }
      while (recorded && compareTreePaths(recorded.path, path) < 0) {
        await this.gone(recorded);
        recorded = await nextParent();
      }
      const now = sourceStatOf(stat);
      let same: FileIndexEntry | undefined;
      // a regular file with one link, new or replacing a regular file of another inode, may have been moved here
      let moveTarget = !!this.parent && (now.mode & S_IFMT) === S_IFREG && stat.nlink === 1n && !this.underTypeChanged();
      if (recorded && recorded.path === path) {
        if (unchangedSince(recorded.stat, now)) same = recorded;
        else if ((recorded.stat!.mode & S_IFMT) !== (now.mode & S_IFMT)) {
          await this.deleted(recorded.path); // type changed
          moveTarget = false;
          if (stat.isDirectory()) this.typeChangedDir = path;
        } else if (recorded.stat!.ino === now.ino) moveTarget = false; // changed in place (or a link of it removed)
        recorded = await nextParent();
      }
      this.counts.entries++;
      if (same) {
        const pending = this.walk.write(`${JSON.stringify({ path, stat: now, carried: same } satisfies WalkLine)}\n`);
        if (pending) await pending;
        continue;
      }
      this.markChanged();
      if (moveTarget && this.newFile(path, now)) {
        const pending = this.walk.write(`${JSON.stringify({ path, stat: now, candidate: true } satisfies WalkLine)}\n`);
        if (pending) await pending;
        continue;
      }
      if (!this.live) {
        const pending = this.walk.write(`${JSON.stringify({ path, stat: now, tar: true } satisfies WalkLine)}\n`);
        if (pending) await pending;
      } else {
        this.awaiting.push({ path, stat: now }); // before tar has the name: its member cannot come first
      }
      this.counts.archived++;
      if (stat.isDirectory()) this.archivedDirs.add(path);
      if (!this.parent) yield path === '' ? '.' : path; // an incremental's names go to tar after the walk (moves resolved)
    }
    while (recorded) {
      await this.gone(recorded);
      recorded = await nextParent();
    }
    if (this.leftOutCount > MAX_LEFT_OUT_NAMED) this.warnings.push(`... and ${this.leftOutCount - MAX_LEFT_OUT_NAMED} more sockets not backed up`);
    // gone files no new file matched are deleted
    for (const entry of this.goneByIno.values()) await this.deleted(entry.path);
    this.goneByIno.clear();
    this.newByIno.clear();
    await this.walk.close();
    await this.deletions.close();
    await this.touched.close();
    await this.moves.close();
    if (this.parent) {
      const lines = createInterface({ input: createReadStream(this.walk.path), crlfDelay: Infinity });
      for await (const line of lines) {
        if (!line) continue;
        const walked = JSON.parse(line) as WalkLine;
        if (walked.carried || (walked.candidate && this.movedTo.has(walked.path))) continue;
        if (walked.candidate) this.counts.archived++;
        yield walked.path === '' ? '.' : walked.path;
      }
    }
    for await (const name of readNulSeparated(this.touched.path)) yield name;
  }

  /**
   * Full backup: asks for the index to be made as tar's members pass ({@link archivedMember}, then
   * {@link allArchived} at the end) instead of by {@link index} merging a spool of the walk afterwards. Call before
   * {@link names}. @returns whether it applies (false for an incremental, which is merged afterwards as before)
   */
  indexAsArchived(): boolean {
    this.live = !this.parent;
    return this.live;
  }

  /**
   * Full backup: the index entry of the next member of tar's stream, given as tar-stream's codec decoded it
   * ({@link TarIndexingStream}), with the exact path and lstat of the walk entry tar was given for it: the same
   * entry {@link index} gives for an incremental's archived members, made while the archive passes, so a full
   * backup's index is complete when tar ends (no spool of the walk, no merge afterwards).
   * @throws when tar archived another path than the next one listed (a name changed or vanished as tar read it)
   */
  archivedMember(member: FileIndexEntry): FileIndexEntry {
    if (!this.live) throw new Error('archivedMember() needs indexAsArchived() before the walk');
    const walked = this.awaiting.shift();
    // tar-stream decodes names as UTF-8 (an undecodable byte becomes U+FFFD): compare in that form, and take the
    // exact bytes from the walk, which gave tar the name
    if (!walked || member.path !== lossyUtf8(walked.path)) {
      throw new Error(
        `tar archived ${JSON.stringify(member.path)} where ${walked ? JSON.stringify(displayFileName(walked.path)) : 'no more members'} was expected`,
      );
    }
    return withIndexPath({ ...member, stat: walked.stat }, walked.path, exactLinkTarget(this.root, walked.path, member.linkTarget));
  }

  /**
   * Full backup, once tar's stream has ended: every name listed was archived.
   * @throws when tar archived fewer members than it was given
   */
  allArchived(): void {
    const walked = this.awaiting.shift();
    if (walked) throw new Error(`tar archived fewer members than listed where ${JSON.stringify(displayFileName(walked.path))} was expected`);
  }

  /** Records an entry left out of the backup as a warning naming it (the first {@link MAX_LEFT_OUT_NAMED}, then a count). */
  private leftOut(path: string, why: string): void {
    if (++this.leftOutCount <= MAX_LEFT_OUT_NAMED) this.warnings.push(`not backed up: ${JSON.stringify(shortened(displayFileName(path)))} is ${why}`);
  }

  /** Whether the innermost open directory, or one above it, was another type in the parent. */
  private underTypeChanged(): boolean {
    return this.typeChangedBelow.length > 0 && this.typeChangedBelow[this.typeChangedBelow.length - 1];
  }

  /** Room for one more move candidate or move in memory (see {@link MAX_MOVE_CANDIDATES}). */
  private get candidateRoom(): boolean {
    return this.goneByIno.size + this.newByIno.size + this.movedTo.size < MAX_MOVE_CANDIDATES;
  }

  /**
   * A new regular file seen by the walk: matched with a gone parent file of its inode (a move), or kept as a
   * candidate. @returns false when it cannot be a move (no room, or its inode matched a file whose content may differ)
   */
  private newFile(path: string, now: SourceStat): boolean {
    const gone = this.goneByIno.get(now.ino);
    if (gone) {
      if (!sameFileMoved(gone.stat!, now)) return false;
      this.goneByIno.delete(now.ino);
      this.moved(gone, path);
      return true;
    }
    if (!this.candidateRoom || this.newByIno.has(now.ino)) return false;
    this.newByIno.set(now.ino, { path, stat: now });
    return true;
  }

  /** A parent entry the walk no longer finds: matched with a new file (a move), kept as a candidate, or deleted. */
  private async gone(entry: FileIndexEntry): Promise<void> {
    const recorded = entry.stat!;
    if ((recorded.mode & S_IFMT) === S_IFREG) {
      const target = this.newByIno.get(recorded.ino);
      if (target && sameFileMoved(recorded, target.stat)) {
        this.newByIno.delete(recorded.ino);
        this.moved(entry, target.path);
        this.markChanged();
        return;
      }
      if (!target && !this.goneByIno.has(recorded.ino) && this.candidateRoom) {
        this.goneByIno.set(recorded.ino, entry);
        this.markChanged();
        return;
      }
    }
    await this.deleted(entry.path);
  }

  /** Records the move of the parent's `from` entry to `to` (spooled; its index entry kept for {@link index}). */
  private moved(from: FileIndexEntry, to: string): void {
    const { stat: _stat, ...entry } = from;
    this.movedTo.set(to, entry);
    this.counts.moved++;
    void this.moves.write(Buffer.concat([encodeFileName(from.path), NUL, encodeFileName(to), NUL])); // small, rare: no need to wait for 'drain'
  }

  /** Directories archived in walk order that are still open (their post-order visit has not come yet). */
  private readonly archivedDirs = new Set<string>();

  /** Notes that the innermost open directory's content changed: restoring it disturbs that directory's mtime. */
  private markChanged(): void {
    if (this.changedBelow.length) this.changedBelow[this.changedBelow.length - 1] = true;
  }

  private async deleted(path: string): Promise<void> {
    this.counts.deleted++;
    await this.deletions.write(Buffer.concat([encodeFileName(path), NUL]));
    this.markChanged();
  }

  /**
   * The new file index: the walk spool merged with `archived`, the index tar's stream produced (its members in
   * the order {@link names} gave them, followed by the touched directories, which are skipped here).
   */
  index(archived: FileIndex): FileIndex {
    if (this.live) {
      // a full backup's members were merged with the walk as they passed (archivedMember): the index is complete
      return {
        count: this.counts.entries,
        entries: () => archived.entries(),
        ...(archived.lines ? { lines: () => archived.lines!() } : {}),
        dispose: async () => {
          await archived.dispose();
          await this.dispose();
        },
      };
    }
    const walkPath = this.walk.path;
    const count = this.counts.entries;
    const movedTo = this.movedTo;
    const root = this.root;
    return {
      count,
      async *entries(): AsyncIterable<FileIndexEntry> {
        const members = archived.entries()[Symbol.asyncIterator]();
        const lines = createInterface({ input: createReadStream(walkPath), crlfDelay: Infinity });
        try {
          for await (const line of lines) {
            if (!line) continue;
            const walked = JSON.parse(line) as WalkLine;
            if (walked.carried) {
              yield withIndexPath({ ...walked.carried, stat: walked.stat }, walked.path, walked.carried.linkTarget);
              continue;
            }
            const moved = walked.candidate ? movedTo.get(walked.path) : undefined;
            if (moved) {
              yield withIndexPath({ ...moved, stat: walked.stat }, walked.path, moved.linkTarget);
              continue;
            }
            const member = await members.next();
            // tar-stream decodes names as UTF-8 (an undecodable byte becomes U+FFFD): compare in that form, and take
            // the exact bytes from the walk, which gave tar the name
            if (member.done || member.value.path !== lossyUtf8(walked.path)) {
              throw new Error(
                `tar archived ${member.done ? 'fewer members than listed' : JSON.stringify(member.value.path)} where ${JSON.stringify(displayFileName(walked.path))} was expected`,
              );
            }
            yield withIndexPath({ ...member.value, stat: walked.stat }, walked.path, exactLinkTarget(root, walked.path, member.value.linkTarget));
          }
        } finally {
          lines.close();
        }
      },
      dispose: async () => {
        await archived.dispose();
        await this.dispose();
      },
    };
  }

  /** Removes the spools. Safe to call more than once. */
  async dispose(): Promise<void> {
    for (const spool of [this.walk, this.deletions, this.touched, this.moves]) {
      spool.destroy();
      await rm(spool.path, { force: true });
    }
  }
}

/** The NUL-separated names of a file (bytes, decoded as in file-name-bytes.ts), one at a time. */
export async function* readNulSeparated(path: string): AsyncGenerator<string> {
  for await (const name of splitNulSeparated(createReadStream(path, { highWaterMark: 1 << 16 }))) yield name;
}

/**
 * Splits a stream of NUL-separated names (a deletion or move list) into names, each decoded from its bytes as in
 * file-name-bytes.ts; empty names are skipped, and the last name needs no NUL after it.
 */
export async function* splitNulSeparated(input: AsyncIterable<Buffer | string>): AsyncGenerator<string> {
  let rest: Buffer = Buffer.alloc(0);
  for await (const chunk of input) {
    let data = rest.length ? Buffer.concat([rest, Buffer.from(chunk)]) : Buffer.from(chunk);
    for (let nul = data.indexOf(0); nul >= 0; nul = data.indexOf(0)) {
      if (nul > 0) yield decodeFileName(data.subarray(0, nul));
      data = data.subarray(nul + 1);
    }
    rest = Buffer.from(data);
  }
  if (rest.length) yield decodeFileName(rest);
}

const NUL = Buffer.of(0);

/** An index entry with its exact path and link target in `path` and `linkTarget` (decoded), as the walk names them. */
function internalEntry(entry: FileIndexEntry): FileIndexEntry {
  const { pathB64: _p, linkTargetB64: _l, ...rest } = entry;
  const linkTarget = linkTargetOf(entry);
  return { ...rest, path: indexPathOf(entry), ...(linkTarget === undefined ? {} : { linkTarget }) };
}

/** A decoded name as a plain UTF-8 decoder (tar-stream's) shows its bytes: each undecodable byte as U+FFFD. */
function lossyUtf8(name: string): string {
  if (!hasEscapedBytes(name)) return name; // valid UTF-8 bytes: decoded back to the same string
  return encodeFileName(name).toString('utf8');
}

/**
 * The exact target of the symlink tar archived at `path` (below `root`) with target `archived` (as tar-stream
 * decoded it): the same when it is valid UTF-8, else read again from the tree, as bytes.
 * @throws when the link changed since tar read it
 */
function exactLinkTarget(root: string, path: string, archived: string | undefined): string | undefined {
  if (archived === undefined || !archived.includes('\ufffd')) return archived;
  const tree = new TreePaths(root);
  let target: string;
  try {
    target = decodeFileName(readlinkSync(tree.of(path), { encoding: 'buffer' }));
  } finally {
    tree.close();
  }
  if (lossyUtf8(target) !== archived)
    throw new Error(`the symlink ${JSON.stringify(displayFileName(path))} changed while it was backed up; take the backup again`);
  return target;
}

/** A long path shortened for a message: its start and end around an ellipsis. */
function shortened(path: string, keep = 120): string {
  return path.length <= 2 * keep ? path : `${path.slice(0, keep)}…${path.slice(-keep)}`;
}

/** A first-in first-out queue (an array with a moving head, compacted as it goes): O(1) push and shift. */
class EntryQueue<T> {
  private items: T[] = [];
  private head = 0;

  push(item: T): void {
    this.items.push(item);
  }

  shift(): T | undefined {
    if (this.head >= this.items.length) return undefined;
    const item = this.items[this.head++];
    if (this.head >= 1024 && this.head * 2 >= this.items.length) {
      this.items = this.items.slice(this.head);
      this.head = 0;
    }
    return item;
  }
}
