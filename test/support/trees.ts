import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { chmodSync, linkSync, mkdirSync, symlinkSync, utimesSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';

/**
 * Writes a directory tree of `files` files in nested directories, with varied modes, sizes (0 B to 256 KiB, plus
 * one of 3 MiB), names with spaces and non-ASCII characters, relative and dangling symlinks, a hard link, empty
 * directories and old mtimes: what a real tree holds and a careless archiver loses.
 */
export function makeTree(root: string, files = 3000): void {
  mkdirSync(root, { recursive: true });
  const modes = [0o644, 0o600, 0o755, 0o640, 0o444, 0o700];
  for (let i = 0; i < files; i++) {
    const dir = join(root, `d${i % 37}`, `sub ${i % 5}`, i % 3 === 0 ? 'tiefer-ördner' : '');
    mkdirSync(dir, { recursive: true });
    const size = i % 97 === 0 ? 0 : (i * 7919) % (256 * 1024);
    const path = join(dir, `file-${i}${i % 11 === 0 ? ' with space' : ''}.dat`);
    const text = Buffer.from(`line ${i} `.repeat(Math.ceil(size / 20))).subarray(0, Math.floor(size / 2));
    writeFileSync(path, Buffer.concat([text, randomBytes(size - text.length)]));
    chmodSync(path, modes[i % modes.length]);
    const when = new Date(Date.UTC(2020, i % 12, 1 + (i % 28), 12, 0, 0));
    utimesSync(path, when, when);
  }
  writeFileSync(join(root, 'big.bin'), randomBytes(3 * 1024 * 1024));
  symlinkSync('d1/sub 1/file-1.dat', join(root, 'link-to-file'));
  symlinkSync('../d2', join(root, 'd1', 'link-to-dir'));
  symlinkSync('does/not/exist', join(root, 'dangling-link'));
  linkSync(join(root, 'big.bin'), join(root, 'big-hardlink.bin'));
  mkdirSync(join(root, 'empty-dir', 'nested-empty'), { recursive: true });
  chmodSync(join(root, 'empty-dir'), 0o750);
  chmodSync(join(root, 'd3'), 0o711);
  const old = new Date(Date.UTC(2019, 5, 15));
  utimesSync(join(root, 'empty-dir', 'nested-empty'), old, old);
}

/**
 * One line per entry: relative path, type, permission bits, size (files), mtime in whole seconds (not for
 * symlinks) and link target, sorted. Two trees with the same listing have the same shape and metadata.
 */
export function treeListing(root: string): string[] {
  const out = execFileSync('find', ['.', '-mindepth', '1', '-printf', '%P|%y|%m|%s|%T@|%l\\n'], { cwd: root, maxBuffer: 64 << 20 })
    .toString()
    .trim()
    .split('\n');
  return out
    .map((line) => {
      const [path, type, mode, size, mtime, link] = line.split('|');
      return [path, type, mode, type === 'f' ? size : '-', type === 'l' ? '-' : String(Math.floor(Number(mtime))), link].join('|');
    })
    .sort();
}

/** `diff -r` of two trees (symlinks compared as links). @returns diff's output, empty when identical */
export function diffTrees(a: string, b: string): string {
  try {
    execFileSync('diff', ['-r', '--no-dereference', a, b], { maxBuffer: 64 << 20 });
    return '';
  } catch (error) {
    return String((error as { stdout?: Buffer }).stdout ?? error);
  }
}
