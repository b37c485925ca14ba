import { chmodSync, mkdirSync, mkdtempSync, readFileSync, rmSync, symlinkSync, unlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { MemoryFileIndex } from '../../src/engines/file-index';
import { compareTreePaths, TreeScan, walkTree } from '../../src/engines/tree-scan';
import { FileIndexEntry } from '../../src/pipeline/manifest';

/** Runs a scan to its end. @returns the names tar would archive and the deletion list */
async function scan(root: string, scratch: string, runId: string, parent?: FileIndexEntry[]) {
  const s = await TreeScan.create(scratch, runId, root, parent && (async function* () { yield* parent; })());
  const names: string[] = [];
  for await (const name of s.names()) names.push(name);
  const deletions = readFileSync(s.deletionsPath, 'utf8').split('\0').filter(Boolean);
  // what tar's index would hold for the archived names (in order): a recognisable sha256 per member
  const archived = new MemoryFileIndex();
  for (const name of names) {
    const path = name === '.' ? '' : name;
    archived.add({ path, type: 'file', sizeBytes: 0, mode: '0644', mtime: new Date(0).toISOString(), sha256: `new:${path}` });
  }
  const index: FileIndexEntry[] = [];
  for await (const entry of s.index(archived).entries()) index.push(entry);
  await s.dispose();
  return { names, deletions, index, counts: s.counts };
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
    expect(inc.deletions).toEqual(['a-b/5', 'z', 'z/6']);
    expect(inc.counts).toMatchObject({ archived: 7, touchedDirectories: 1, deleted: 3 });
    const byPath = new Map(inc.index.map((e) => [e.path, e]));
    expect(byPath.get('a/1')!.sha256).toBe('new:a/1'); // carried from the full
    expect(byPath.get('a b/new')).toBeDefined();
    expect(byPath.has('a-b/5')).toBe(false);
    expect(inc.index.map((e) => e.path)).toEqual([...inc.index.map((e) => e.path)].sort(compareTreePaths));
  });

  it('refuses a parent index that is not in tree order or has no lstat', async () => {
    const full = await scan(root, scratch, 'full');
    await expect(scan(root, scratch, 'bad', [...full.index].reverse())).rejects.toThrow(/not in tree order/);
    await expect(scan(root, scratch, 'old', full.index.map(({ stat: _stat, ...e }) => e))).rejects.toThrow(/records no lstat/);
  });
});
