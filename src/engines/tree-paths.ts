import { closeSync, constants, openSync } from 'node:fs';
import { encodeFileName, hasEscapedBytes } from './file-name-bytes';

/** Linux's PATH_MAX: a path a system call takes is at most this many bytes, its terminating NUL included. */
export const PATH_MAX = 4096;

/** Directory handles {@link TreePaths} keeps open at most (each a file descriptor). */
const MAX_HANDLES = 64;

const SLASH = Buffer.from('/');

/**
 * The paths, as system calls take them, of entries below a root directory: names are bytes (see
 * file-name-bytes.ts), and a tree may be deeper than PATH_MAX allows in one path (each component is at most 255
 * bytes, the whole is not bounded). A path shorter than PATH_MAX is the root joined with the entry's path. A longer
 * one goes through an open directory nearer the entry: `/proc/self/fd/<fd>/<rest>`, which the kernel resolves from
 * that directory (the way `openat(2)` with a directory descriptor would, which Node's `fs` does not offer). The
 * directories are opened with O_NOFOLLOW and kept open (at most {@link MAX_HANDLES}, the least recently used closed
 * first), so a depth-first walk opens each deep directory once.
 *
 * A returned path is valid until the next call of {@link of} (which may close a handle it goes through): use it
 * before asking for another. Linux only (procfs), as are GNU tar's archives of such trees.
 */
export class TreePaths {
  private readonly root: Buffer;
  private readonly rootString: string;
  /** Open directories by their relative path (decoded), least recently used first. */
  private readonly handles = new Map<string, number>();

  /** @param root an absolute directory path (valid UTF-8, as configuration and requests give it). */
  constructor(root: string) {
    this.rootString = root.replace(/\/+$/, '') || '/';
    this.root = Buffer.from(this.rootString);
  }

  /**
   * The path of `relative` (decoded, `/`-separated, `''` for the root itself) for a system call.
   * @throws the error of opening an intermediate directory (ENOENT, ENOTDIR, ELOOP for a symlink)
   */
  of(relative: string): string | Buffer {
    if (!relative) return this.rootString;
    // the common case: a name of valid UTF-8 (Node encodes the string alike), well within PATH_MAX
    if (relative.length < PATH_MAX / 4 - this.rootString.length && !hasEscapedBytes(relative)) return `${this.rootString}/${relative}`;
    const rel = encodeFileName(relative);
    if (this.root.length + 1 + rel.length < PATH_MAX) return Buffer.concat([this.root, SLASH, rel]);
    const components = relative.split('/');
    const bytes = components.map((c) => encodeFileName(c));
    let base = this.root;
    let start = 0;
    for (;;) {
      const rest = Buffer.concat(bytes.slice(start).flatMap((b, i) => (i ? [SLASH, b] : [b])));
      if (base.length + 1 + rest.length < PATH_MAX) return Buffer.concat([base, SLASH, rest]);
      // the longest run of directories from `start` that still fits after `base` (at least one: components are short)
      let end = start;
      let length = base.length;
      while (end < components.length - 1 && length + 1 + bytes[end].length < PATH_MAX) {
        length += 1 + bytes[end].length;
        end++;
      }
      if (end === start) throw Object.assign(new Error(`path component too long: ${JSON.stringify(components[start])}`), { code: 'ENAMETOOLONG' });
      const key = components.slice(0, end).join('/');
      const dir = Buffer.concat([base, SLASH, ...bytes.slice(start, end).flatMap((b, i) => (i ? [SLASH, b] : [b]))]);
      base = Buffer.from(`/proc/self/fd/${this.handle(key, dir)}`);
      start = end;
    }
  }

  /** Closes every directory handle. Safe to call more than once; the object stays usable. */
  close(): void {
    for (const fd of this.handles.values()) closeSync(fd);
    this.handles.clear();
  }

  private handle(key: string, path: Buffer): number {
    const open = this.handles.get(key);
    if (open !== undefined) {
      this.handles.delete(key);
      this.handles.set(key, open);
      return open;
    }
    const fd = openSync(path, constants.O_RDONLY | constants.O_DIRECTORY | constants.O_NOFOLLOW);
    this.handles.set(key, fd);
    if (this.handles.size > MAX_HANDLES) {
      const [oldest, oldestFd] = this.handles.entries().next().value as [string, number];
      this.handles.delete(oldest);
      closeSync(oldestFd);
    }
    return fd;
  }
}

/**
 * Whether a relative path (decoded) is too long for GNU tar: tar archives the names it is given and extracts members
 * by their path relative to its working directory, each in one system call, so a path of PATH_MAX bytes or more
 * cannot be archived from a list nor extracted ("File name too long").
 */
export function tooLongForTar(relative: string): boolean {
  return relative.length >= PATH_MAX / 4 && encodeFileName(relative).length >= PATH_MAX;
}
