import { execFileSync } from 'node:child_process';
import {
  appendFileSync,
  existsSync,
  lstatSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  renameSync,
  rmSync,
  symlinkSync,
  utimesSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { DirectoryStaging, restoreThroughStaging, STAGING_PREFIX } from '../../src/engines/staged-directory';

/** path|type|mode|mtime(ns)|link|content of every entry below (and of) `root`: equal listings, equal trees. */
function listing(root: string): string[] {
  return execFileSync('find', ['.', '-printf', '%P|%y|%m|%T@|%l\\n'], { cwd: root })
    .toString()
    .trim()
    .split('\n')
    .map((line) => (line.split('|')[1] === 'f' ? `${line}|${readFileSync(join(root, line.split('|')[0]), 'utf8')}` : line))
    .sort();
}

describe('DirectoryStaging (real file system)', () => {
  const work = mkdtempSync(join(tmpdir(), 'dr-staging-'));
  afterAll(() => rmSync(work, { recursive: true, force: true }));

  function target(name: string): string {
    const dir = join(work, name);
    mkdirSync(join(dir, 'docs'), { recursive: true });
    writeFileSync(join(dir, 'docs', 'a.txt'), 'old a\n');
    writeFileSync(join(dir, 'keep.txt'), 'keep\n');
    mkdirSync(join(work, `${name}-outside`));
    symlinkSync(join(work, `${name}-outside`), join(dir, 'link'));
    const old = new Date('2020-01-01T00:00:00Z');
    utimesSync(join(dir, 'docs'), old, old);
    utimesSync(dir, old, old);
    return dir;
  }

  function fill(tree: string): void {
    mkdirSync(join(tree, 'docs'));
    writeFileSync(join(tree, 'docs', 'a.txt'), 'new a\n');
    mkdirSync(join(tree, 'link'));
    writeFileSync(join(tree, 'link', 'evil'), 'evil\n');
    writeFileSync(join(tree, 'added.txt'), 'added\n');
  }

  it('merges by rename: replaces entries and a symlink, keeps the others, follows no link', async () => {
    const dir = target('merge');
    const { commit: counts } = await restoreThroughStaging(dir, 'run-1', false, async (tree) => fill(tree));
    expect(counts).toEqual({ moved: 3, replaced: 2, merged: 1 }); // docs/a.txt, link (a directory now), added.txt
    expect(readFileSync(join(dir, 'docs', 'a.txt'), 'utf8')).toBe('new a\n');
    expect(readFileSync(join(dir, 'keep.txt'), 'utf8')).toBe('keep\n');
    expect(lstatSync(join(dir, 'link')).isDirectory()).toBe(true);
    expect(readdirSync(join(work, 'merge-outside'))).toEqual([]);
    expect(readdirSync(dir).filter((n) => n.startsWith(STAGING_PREFIX))).toEqual([]);
  });

  it('a failing fill leaves the target exactly as it was (times to the nanosecond included)', async () => {
    const dir = target('failing');
    const before = listing(dir);
    await expect(
      restoreThroughStaging(dir, 'run-2', false, async (tree) => {
        fill(tree);
        throw new Error('checksum mismatch');
      }),
    ).rejects.toThrow('checksum mismatch');
    expect(listing(dir)).toEqual(before);
  });

  it('a new target is staged beside it and renamed into place; a failure leaves no target and no staging', async () => {
    const dir = join(work, 'parent', 'new-target');
    mkdirSync(join(work, 'parent'));
    await expect(restoreThroughStaging(dir, 'run-3', true, async () => Promise.reject(new Error('corrupt')))).rejects.toThrow('corrupt');
    expect(readdirSync(join(work, 'parent'))).toEqual([]);
    await restoreThroughStaging(dir, 'run-4', true, async (tree) => fill(tree));
    expect(readdirSync(join(work, 'parent'))).toEqual(['new-target']);
    expect(readdirSync(dir).sort()).toEqual(['added.txt', 'docs', 'link']);
  });

  it('rolls back a commit its process did not finish (killed between two moves), from the journal', async () => {
    const dir = target('crashed');
    const before = listing(dir);
    const staging = await DirectoryStaging.open(dir, 'run-5', false);
    fill(staging.tree);
    // what commit() had done when the process died: docs/a.txt replaced, `link` set aside but the new one not moved in
    const root = join(dir, `${STAGING_PREFIX}run-5`);
    const docs = lstatSync(join(dir, 'docs'), { bigint: true });
    const meta = {
      op: 'meta',
      rel: 'docs',
      mode: Number(docs.mode) & 0o7777,
      uid: Number(docs.uid),
      gid: Number(docs.gid),
      atimeNs: `${docs.atimeNs}`,
      mtimeNs: `${docs.mtimeNs}`,
    };
    appendFileSync(join(root, 'journal.jsonl'), `${JSON.stringify(meta)}\n`);
    appendFileSync(join(root, 'journal.jsonl'), `${JSON.stringify({ op: 'move', rel: 'docs/a.txt', old: true })}\n`);
    mkdirSync(join(root, 'replaced', 'docs'), { recursive: true });
    renameSync(join(dir, 'docs', 'a.txt'), join(root, 'replaced', 'docs', 'a.txt'));
    renameSync(join(staging.tree, 'docs', 'a.txt'), join(dir, 'docs', 'a.txt'));
    appendFileSync(join(root, 'journal.jsonl'), `${JSON.stringify({ op: 'move', rel: 'link', old: true })}\n`);
    renameSync(join(dir, 'link'), join(root, 'replaced', 'link'));
    appendFileSync(join(root, 'journal.jsonl'), '{"op":"move","rel":"add'); // the line being written

    expect(await DirectoryStaging.rollBackLeftover(dir, 'run-5')).toBe(true);
    expect(listing(dir)).toEqual(before);
    expect(existsSync(root)).toBe(false);
    expect(await DirectoryStaging.rollBackLeftover(dir, 'run-5')).toBe(false);
  });
});
