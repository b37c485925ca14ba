import {
  appendFileSync,
  chmodSync,
  linkSync,
  mkdirSync,
  mkdtempSync,
  readFileSync,
  renameSync,
  rmSync,
  statSync,
  symlinkSync,
  unlinkSync,
  utimesSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { execFileSync } from 'node:child_process';
import { MemoryFileIndex } from '../../src/engines/file-index';
import { decodeFileName, encodeFileName } from '../../src/engines/file-name-bytes';
import { compareTreePaths, TreeScan, walkTree } from '../../src/engines/tree-scan';
import { FileIndexEntry } from '../../src/engines/file-index-entry';

/** Runs a scan to its end. @returns the names tar would archive, the deletion list and the move list (pairs) */
async function scan(root: string, scratch: string, runId: string, parent?: FileIndexEntry[]) {
  const s = await TreeScan.create(
    scratch,
    runId,
    root,
    parent &&
      (async function* () {
        yield* parent;
      })(),
  );
  const names: string[] = [];
  for await (const name of s.names()) names.push(name);
  const deletions = readFileSync(s.deletionsPath, 'utf8').split('\0').filter(Boolean);
  const flat = readFileSync(s.movesPath, 'utf8').split('\0').filter(Boolean);
  const moves: [string, string][] = [];
  for (let i = 0; i < flat.length; i += 2) moves.push([flat[i], flat[i + 1]]);
  // what tar's index would hold for the archived names (in order): a recognisable sha256 per member
  const archived = new MemoryFileIndex();
  for (const name of names) {
    const path = name === '.' ? '' : name;
    archived.add({ path, type: 'file', sizeBytes: 0, mode: '0644', mtime: new Date(0).toISOString(), sha256: `new:${path}` });
  }
  const index: FileIndexEntry[] = [];
  for await (const entry of s.index(archived).entries()) index.push(entry);
  await s.dispose();
  return { names, deletions, moves, index, counts: s.counts };
}

describe('tree scan (change detection of filesystem backups)', () => {
  let root: string;
  let scratch: string;

  beforeEach(() => {
    root = mkdtempSync(join(tmpdir(), 'dr-scan-'));
    scratch = mkdtempSync(join(tmpdir(), 'dr-scan-scratch-'));
    for (const dir of ['a', 'a b', 'a-b', 'a/b', 'a/b/c', 'z']) mkdirSync(join(root, dir), { recursive: true });
    for (const file of ['a/1', 'a/b/2', 'a/b/c/3', 'a b/4', 'a-b/5', 'z/6', 'top']) writeFileSync(join(root, file), file);
    symlinkSync('a/1', join(root, 'link'));
  });

  afterEach(() => {
    rmSync(root, { recursive: true, force: true });
    rmSync(scratch, { recursive: true, force: true });
  });

  it('walks in the order compareTreePaths sorts: a directory before its content, component by component', async () => {
    const walked: string[] = [];
    for await (const { path } of walkTree(root)) walked.push(path);
    expect(walked[0]).toBe('');
    expect([...walked].sort(compareTreePaths)).toEqual(walked);
    // "a/..." comes before "a b" although '/' > ' ' as characters: whole components are compared
    expect(walked.indexOf('a/b/c/3')).toBeLessThan(walked.indexOf('a b'));
    expect(compareTreePaths('a', 'a/b')).toBeLessThan(0);
    expect(compareTreePaths('a/z', 'a b')).toBeLessThan(0);
    expect(compareTreePaths('', 'a')).toBeLessThan(0);
  });

  it('archives everything for a full, then only what changed, listing deletions and touched directories', async () => {
    const full = await scan(root, scratch, 'full');
    expect(full.names[0]).toBe('.');
    expect(full.names).toHaveLength(full.index.length);
    expect(full.deletions).toEqual([]);
    expect(full.index.every((e) => e.stat && e.sha256 === `new:${e.path}`)).toBe(true);

    // nothing changed: nothing archived, every SHA-256 carried over
    const same = await scan(root, scratch, 'same', full.index);
    expect(same.names).toEqual([]);
    expect(same.index.map((e) => e.sha256)).toEqual(full.index.map((e) => e.sha256));

    writeFileSync(join(root, 'a/b/c/3'), 'changed content'); // content: its directory's mtime stays, so it is "touched"
    unlinkSync(join(root, 'a-b/5'));
    rmSync(join(root, 'z'), { recursive: true });
    writeFileSync(join(root, 'z'), 'a file now'); // directory → file
    chmodSync(join(root, 'top'), 0o600);
    writeFileSync(join(root, 'a b/new'), 'new');
    const inc = await scan(root, scratch, 'inc', full.index);
    expect(inc.names).toEqual(['.', 'a/b/c/3', 'a b', 'a b/new', 'a-b', 'top', 'z', 'a/b/c']);
    // The list's order carries no meaning (each path is removed recursively, a missing one skipped) and depends on
    // whether the new file reused the deleted one's inode (then it is deleted at once, else it waits as a move candidate).
    expect([...inc.deletions].sort()).toEqual(['a-b/5', 'z', 'z/6']);
    expect(inc.counts).toMatchObject({ archived: 7, touchedDirectories: 1, deleted: 3 });
    const byPath = new Map(inc.index.map((e) => [e.path, e]));
    expect(byPath.get('a/1')!.sha256).toBe('new:a/1'); // carried from the full
    expect(byPath.get('a b/new')).toMatchObject({ path: 'a b/new', type: 'file', sha256: 'new:a b/new' }); // archived, so hashed by tar's index
    expect(byPath.has('a-b/5')).toBe(false);
    expect(inc.index.map((e) => e.path)).toEqual([...inc.index.map((e) => e.path)].sort(compareTreePaths));
  });

  describe('move (rename) detection', () => {
    const sha = (index: FileIndexEntry[], path: string) => index.find((e) => e.path === path)?.sha256;

    it('records a rename as a move: not archived, not deleted, its SHA-256 carried to the new path', async () => {
      const full = await scan(root, scratch, 'full');
      renameSync(join(root, 'a/b/2'), join(root, 'z/2-renamed')); // the new path comes after the old one in the walk
      renameSync(join(root, 'z/6'), join(root, 'a/6-renamed')); // ... and before it
      const inc = await scan(root, scratch, 'inc', full.index);
      expect(inc.moves).toEqual(
        expect.arrayContaining([
          ['a/b/2', 'z/2-renamed'],
          ['z/6', 'a/6-renamed'],
        ]),
      );
      expect(inc.moves).toHaveLength(2);
      expect(inc.deletions).toEqual([]);
      expect(inc.names).not.toEqual(expect.arrayContaining(['z/2-renamed']));
      expect(inc.names).not.toEqual(expect.arrayContaining(['a/6-renamed']));
      expect(inc.names).toEqual(['a', 'a/b', 'z', '.']); // their directories (changed mtimes), the root touched
      expect(inc.counts).toMatchObject({ moved: 2, archived: 3, deleted: 0, touchedDirectories: 1 });
      expect(sha(inc.index, 'z/2-renamed')).toBe('new:a/b/2');
      expect(sha(inc.index, 'a/6-renamed')).toBe('new:z/6');
      expect(inc.index.find((e) => e.path === 'z/2-renamed')!.stat!.ctimeNs).toBe(statSync(join(root, 'z/2-renamed'), { bigint: true }).ctimeNs.toString());
      expect(inc.index.map((e) => e.path)).toEqual([...inc.index.map((e) => e.path)].sort(compareTreePaths));
      // the next incremental sees the moved files as unchanged
      const next = await scan(root, scratch, 'next', inc.index);
      expect(next.names).toEqual([]);
      expect(next.moves).toEqual([]);
    });

    it('moves into a new directory, out of a deleted one, and over an existing file', async () => {
      const full = await scan(root, scratch, 'full');
      mkdirSync(join(root, 'fresh/deep'), { recursive: true });
      renameSync(join(root, 'a/b/c/3'), join(root, 'fresh/deep/3'));
      rmSync(join(root, 'a/b/c'), { recursive: true }); // now empty: deleted
      renameSync(join(root, 'a-b/5'), join(root, 'top')); // over an existing file (another inode)
      const inc = await scan(root, scratch, 'inc', full.index);
      expect(inc.moves.sort()).toEqual([
        ['a-b/5', 'top'],
        ['a/b/c/3', 'fresh/deep/3'],
      ]);
      expect(inc.deletions).toEqual(['a/b/c']);
      expect(inc.names).toEqual(['.', 'a/b', 'a-b', 'fresh', 'fresh/deep', 'a']);
      expect(sha(inc.index, 'top')).toBe('new:a-b/5');
      expect(sha(inc.index, 'fresh/deep/3')).toBe('new:a/b/c/3');
    });

    it('archives what is not surely the same file: renamed and modified, hard links, a path whose type changed', async () => {
      const full = await scan(root, scratch, 'full');
      renameSync(join(root, 'a/1'), join(root, 'a/1-modified'));
      appendFileSync(join(root, 'a/1-modified'), 'more');
      const keep = statSync(join(root, 'a b/4'));
      renameSync(join(root, 'a b/4'), join(root, 'a b/4-linked'));
      linkSync(join(root, 'a b/4-linked'), join(root, 'a b/4-second-name')); // nlink 2
      utimesSync(join(root, 'a b/4-linked'), keep.atime, keep.mtime);
      rmSync(join(root, 'z'), { recursive: true });
      mkdirSync(join(root, 'top-dir'));
      renameSync(join(root, 'top'), join(root, 'z')); // z was a directory: the move would land before its deletion
      const inc = await scan(root, scratch, 'inc', full.index);
      expect(inc.moves).toEqual([]);
      expect(inc.counts.moved).toBe(0);
      expect(inc.names).toEqual(expect.arrayContaining(['a/1-modified', 'a b/4-linked', 'a b/4-second-name', 'z']));
      expect(inc.deletions.sort()).toEqual(['a b/4', 'a/1', 'top', 'z', 'z/6']);
      expect(sha(inc.index, 'a/1-modified')).toBe('new:a/1-modified');
    });

    it('does not move a file into a directory that replaced a file of the parent', async () => {
      const full = await scan(root, scratch, 'full');
      unlinkSync(join(root, 'top'));
      mkdirSync(join(root, 'top'));
      renameSync(join(root, 'z/6'), join(root, 'top/6'));
      const inc = await scan(root, scratch, 'inc', full.index);
      expect(inc.moves).toEqual([]);
      expect(inc.names).toEqual(expect.arrayContaining(['top', 'top/6']));
      expect(inc.deletions.sort()).toEqual(['top', 'z/6']);
    });
  });

  it("a full backup's index made as the members pass (indexAsArchived) is the index merged after the walk; names are bytes", async () => {
    /** A member as tar-stream shows it: the name and link target decoded as UTF-8 (an undecodable byte as U+FFFD). */
    const member = (name: string, linkTarget?: Buffer): FileIndexEntry => {
      const path = name === '.' ? '' : name;
      const shown = encodeFileName(path).toString('utf8');
      return {
        path: shown,
        type: 'file',
        sizeBytes: 0,
        mode: '0644',
        mtime: new Date(0).toISOString(),
        sha256: `new:${path}`,
        ...(linkTarget ? { linkTarget: linkTarget.toString('utf8') } : {}),
      };
    };
    const liveIndex = async (runId: string, links: Record<string, Buffer> = {}) => {
      const live = await TreeScan.create(scratch, runId, root, undefined);
      expect(live.indexAsArchived()).toBe(true);
      const archived = new MemoryFileIndex();
      // as the engine runs it: tar has each name before its member passes
      for await (const name of live.names()) archived.add(live.archivedMember(member(name, links[name])));
      live.allArchived();
      const index: FileIndexEntry[] = [];
      for await (const entry of live.index(archived).entries()) index.push(entry);
      await live.dispose();
      return index;
    };
    const merged = await scan(root, scratch, 'merged');
    expect(await liveIndex('live')).toEqual(merged.index);

    // names and a link target that are not UTF-8: the exact bytes from the walk (pathB64), the link read again
    execFileSync('bash', ['-c', String.raw`cd "$1" && mkdir $'caf\xe9' && printf x > $'caf\xe9/n\xe4me' && ln -s $'t\xe4rget' badlink`, '_', root]);
    const bytes = (latin1: string) => Buffer.from(latin1, 'latin1');
    const index = await liveIndex('bytes', { badlink: bytes('t\xe4rget') });
    expect(index.find((e) => e.pathB64 === bytes('caf\xe9/n\xe4me').toString('base64'))).toMatchObject({
      path: 'caf\\xe9/n\\xe4me',
      sha256: `new:${decodeFileName(bytes('caf\xe9/n\xe4me'))}`,
    });
    expect(index.find((e) => e.path === 'badlink')).toMatchObject({ linkTarget: 't\\xe4rget', linkTargetB64: bytes('t\xe4rget').toString('base64') });

    // tar archived another path than listed, or fewer members: the backup fails, naming the path
    const wrong = await TreeScan.create(scratch, 'wrong', root, undefined);
    wrong.indexAsArchived();
    const names = wrong.names();
    await names.next(); // '.'
    expect(() => wrong.archivedMember(member('not-listed'))).toThrow('tar archived "not-listed" where "" was expected');
    for await (const _ of names); // the rest of the walk
    expect(() => wrong.allArchived()).toThrow(/^tar archived fewer members than listed where "a" was expected$/);
    await wrong.dispose();
  });

  it('refuses a parent index that is not in tree order or has no lstat', async () => {
    const full = await scan(root, scratch, 'full');
    await expect(scan(root, scratch, 'bad', [...full.index].reverse())).rejects.toThrow(/not in tree order/);
    await expect(
      scan(
        root,
        scratch,
        'old',
        full.index.map(({ stat: _stat, ...e }) => e),
      ),
    ).rejects.toThrow(/records no lstat/);
  });
});
