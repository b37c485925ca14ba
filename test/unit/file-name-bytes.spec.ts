import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { lstatSync, mkdtempSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import fg from 'fast-glob';
import { applyDeletions, applyMoves } from '../../src/engines/chain-restore';
import { indexPathOf, linkTargetOf, withIndexPath } from '../../src/engines/file-index';
import { decodeFileName, displayFileName, encodeFileName, hasEscapedBytes } from '../../src/engines/file-name-bytes';
import { verifyRestoredTree } from '../../src/engines/restored-tree-check';
import { paxTimeNs } from '../../src/engines/tar-indexer';
import { PATH_MAX, tooLongForTar, TreePaths } from '../../src/engines/tree-paths';
import { globSelector } from '../../src/engines/tree-selection';
import { FileIndexEntry } from '../../src/engines/file-index-entry';
import { makeTree } from '../support/trees';

const latin1 = (s: string) => Buffer.from(s, 'latin1');

describe('file names as bytes (PEP 383 decoding)', () => {
  it('gives back the exact bytes of any name, and leaves valid UTF-8 as it was', () => {
    const samples = [
      latin1('r\xe9sum\xe9s'),
      latin1('\xff'),
      Buffer.from('über-ß-日本-😀'),
      Buffer.from([0xed, 0xa0, 0x80]), // an encoded surrogate
      Buffer.from([0xc0, 0xaf]),
      Buffer.from([0xf4, 0x90, 0x80, 0x80]),
      Buffer.from([0xe2, 0x82]),
      Buffer.from([0xf0, 0x90, 0x82, 0x80, 0x80]),
      Buffer.concat([Buffer.from('𐂀'), latin1('\x80')]), // a real U+10080 (low surrogate DC80) followed by an escaped 0x80
    ];
    for (let i = 0; i < 2000; i++) samples.push(Buffer.from(randomBytes(1 + (i % 40)).map((b) => (b === 0 || b === 0x2f ? 0x41 : b))));
    for (const bytes of samples) expect(encodeFileName(decodeFileName(bytes))).toEqual(bytes);
    expect(decodeFileName(Buffer.from('über-ß-日本-😀'))).toBe('über-ß-日本-😀');
    expect(hasEscapedBytes('über-ß-日本-😀')).toBe(false);
    expect(decodeFileName(latin1('r\xe9s'))).toBe('r\udce9s');
    expect(hasEscapedBytes(decodeFileName(Buffer.from('𐂀')))).toBe(false); // a pair, not an escape
    expect(displayFileName(decodeFileName(latin1('r\xe9sum\xe9s/\xff')))).toBe('r\\xe9sum\\xe9s/\\xff');
    expect(() => encodeFileName('lone \ud800 high')).toThrow(/lone surrogate/);
    expect(() => encodeFileName('lone \udc00 low')).toThrow(/lone surrogate/);
  });

  it('stores an index entry losslessly: valid UTF-8 as before, other bytes as base64 beside a shown path', () => {
    const base: FileIndexEntry = { path: '', type: 'symlink', sizeBytes: 0, mode: '0777', mtime: '2020-01-01T00:00:00.000Z' };
    const plain = withIndexPath(base, 'dir/über', 'target');
    expect(plain).toEqual({ ...base, path: 'dir/über', linkTarget: 'target' });
    const name = decodeFileName(latin1('dir/r\xe9sum\xe9s'));
    const target = decodeFileName(latin1('cible-\xe9'));
    const stored = JSON.parse(JSON.stringify(withIndexPath(base, name, target)));
    expect(stored).toMatchObject({ path: 'dir/r\\xe9sum\\xe9s', pathB64: latin1('dir/r\xe9sum\xe9s').toString('base64'), linkTarget: 'cible-\\xe9' });
    expect(indexPathOf(stored)).toBe(name);
    expect(linkTargetOf(stored)).toBe(target);
    // re-naming an entry drops the old base64
    expect(withIndexPath(stored, 'plain')).not.toHaveProperty('pathB64');
  });
});

describe('pax time records', () => {
  it('reads decimal seconds with up to nine (or more) decimals into nanoseconds', () => {
    expect(paxTimeNs('1609459200.123456789')).toBe(1609459200123456789n);
    expect(paxTimeNs('1609459200.1')).toBe(1609459200100000000n);
    expect(paxTimeNs('1609459200')).toBe(1609459200000000000n);
    expect(paxTimeNs('1609459200.1234567891')).toBe(1609459200123456789n);
    expect(paxTimeNs('-1.5')).toBe(-1500000000n);
    expect(paxTimeNs('-1.0000000001')).toBe(-1000000001n); // toward −∞
    expect(paxTimeNs('soon')).toBeUndefined();
    expect(paxTimeNs(undefined)).toBeUndefined();
  });
});

describe('TreePaths (paths beyond PATH_MAX)', () => {
  it('reaches an entry 4,400 bytes deep through open directories, and closes them', () => {
    const root = mkdtempSync(join(tmpdir(), 'dr-deep-'));
    execFileSync('bash', [
      '-c',
      'cd "$1" && d=$(printf "d%.0s" {1..250}) && for i in $(seq 1 17); do mkdir "$d"; cd "$d"; done && printf leaf > $\'f\\xe9\'',
      '_',
      root,
    ]);
    const relative = `${`${'d'.repeat(250)}/`.repeat(17)}f\udce9`;
    expect(tooLongForTar(relative)).toBe(true);
    expect(tooLongForTar('short')).toBe(false);
    const openBefore = readdirSync('/proc/self/fd').length;
    const paths = new TreePaths(root);
    const path = paths.of(relative);
    expect(path.length).toBeLessThan(PATH_MAX);
    expect(path.toString()).toMatch(/^\/proc\/self\/fd\/\d+\//);
    expect(readFileSync(path, 'utf8')).toBe('leaf');
    expect(lstatSync(paths.of(relative.slice(0, relative.lastIndexOf('/')))).isDirectory()).toBe(true);
    expect(readdirSync('/proc/self/fd').length).toBeGreaterThan(openBefore);
    paths.close();
    expect(readdirSync('/proc/self/fd').length).toBe(openBefore);
    expect(paths.of('short').toString()).toBe(`${root}/short`);
    execFileSync('rm', ['-rf', root]);
  });
});

describe('globSelector (include/exclude for names fast-glob cannot read)', () => {
  const root = mkdtempSync(join(tmpdir(), 'dr-globs-'));
  beforeAll(() => makeTree(root, 300));
  afterAll(() => execFileSync('rm', ['-rf', root]));

  it.each([
    [['**'], []],
    [['d2/**/*with space.dat'], []],
    [['**/*.dat'], ['d1/**', 'big*']],
    [['d1/**', 'empty-dir'], ['**/tiefer-ördner/**']],
    [[], ['d3/**', '**/*-1*.dat']],
  ])('selects what fast-glob selects: include %j, exclude %j', async (include, exclude) => {
    const expected = (
      await fg(include.length ? include : ['**'], { cwd: root, ignore: exclude, dot: true, onlyFiles: false, followSymbolicLinks: false })
    ).sort();
    const all = (await fg(['**'], { cwd: root, dot: true, onlyFiles: false, followSymbolicLinks: false, markDirectories: true })).sort();
    const selects = globSelector(include, exclude);
    const selected = all
      .map((p) => ({ path: p.replace(/\/$/, ''), dir: p.endsWith('/') }))
      .filter((e) => selects(e.path, e.dir))
      .map((e) => e.path)
      .sort();
    expect(selected).toEqual(expected);
    expect(selected.length).toBeGreaterThan(0);
  });

  it('matches undecodable bytes as single characters', () => {
    const selects = globSelector(['r?sum?s/**'], ['**/*.tmp']);
    expect(selects(decodeFileName(latin1('r\xe9sum\xe9s/cv.txt')), false)).toBe(true);
    expect(selects(decodeFileName(latin1('r\xe9sum\xe9s/x.tmp')), false)).toBe(false);
    expect(selects(decodeFileName(latin1('other\xff/cv.txt')), false)).toBe(false);
  });
});

describe('incremental lists of names that are bytes', () => {
  /** A NUL-separated list of latin1-spelled names, in 3-byte chunks (a name may span chunks). */
  const list = (names: string[]) => {
    const bytes = Buffer.concat(names.map((n) => Buffer.concat([latin1(n), Buffer.of(0)])));
    const chunks: Buffer[] = [];
    for (let i = 0; i < bytes.length; i += 3) chunks.push(bytes.subarray(i, i + 3));
    return Readable.from(chunks);
  };

  it('moves and deletes exactly the named entries', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'dr-lists-'));
    execFileSync('bash', ['-c', "cd \"$1\" && mkdir $'r\\xe9s' && printf a > $'r\\xe9s/\\xff' && printf b > $'r\\xc3\\xa9s' && printf c > keep", '_', dir]);
    expect(await applyMoves(dir, list(['r\xe9s/\xff', 'moved-\xe9']))).toBe(1);
    const names = () =>
      readdirSync(Buffer.from(dir), { encoding: 'buffer' })
        .map((b) => b.toString('latin1'))
        .sort();
    expect(names()).toEqual(['keep', 'moved-\xe9', 'r\xc3\xa9s', 'r\xe9s']);
    expect(readFileSync(Buffer.concat([Buffer.from(`${dir}/`), latin1('moved-\xe9')]), 'utf8')).toBe('a');
    // the Latin-1 directory goes; the UTF-8 file whose name shows alike stays
    expect(await applyDeletions(dir, list(['r\xe9s']))).toBe(1);
    expect(names()).toEqual(['keep', 'moved-\xe9', 'r\xc3\xa9s']);
    execFileSync('rm', ['-rf', dir]);
  });
});

describe('restore verification compares names as bytes and mtimes to the nanosecond', () => {
  const context = () => ({ signal: new AbortController().signal, runId: `t${Date.now()}`, scratchDir: mkdtempSync(join(tmpdir(), 'dr-scratch-')) });
  const entry = (path: string, extra: Partial<FileIndexEntry> = {}): FileIndexEntry =>
    withIndexPath(
      { path: '', type: 'file', sizeBytes: 2, mode: '0644', mtime: '2020-09-13T12:26:40.123Z', mtimeNs: '1600000000123456789', ...extra },
      decodeFileName(latin1(path)),
    );
  /** Writes `names` (latin1 spelling) with content "cv" and mtime 1600000000.123456789. */
  const restoreWith =
    (names: string[], mtime = '1600000000.123456789') =>
    async (dir: string) => {
      for (const name of names) {
        const full = Buffer.concat([Buffer.from(`${dir}/`), latin1(name)]);
        writeFileSync(full, 'cv');
        execFileSync('bash', ['-c', `touch -d "@${mtime}" -- "$1"/*`, '_', dir]);
      }
    };
  const sha = '29cdee48e28d8104186513c96be32955f6203cffa61833e36a88a37ecbff7989'; // of "cv"

  it('names a recorded Latin-1 entry missing from the restore, and an unrecorded one present', async () => {
    const recorded = [entry('r\xe9sum\xe9s.txt', { sha256: sha })];
    const missing = await verifyRestoredTree(restoreWith(['other.txt']), { files: Readable.from(recorded) }, context());
    expect(missing.problems).toEqual(['r\\xe9sum\\xe9s.txt: missing after restore', "other.txt: restored, but not in the backup's file index"]);
    // the UTF-8 spelling of the same letters is another name
    const lookalike = await verifyRestoredTree(restoreWith(['r\xc3\xa9sum\xc3\xa9s.txt']), { files: Readable.from(recorded) }, context());
    expect(lookalike.problems).toEqual(['r\\xe9sum\\xe9s.txt: missing after restore', "résumés.txt: restored, but not in the backup's file index"]);
  });

  it('reports an mtime that differs by a nanosecond', async () => {
    const recorded = [entry('f.txt', { sha256: sha })];
    const check = await verifyRestoredTree(restoreWith(['f.txt'], '1600000000.123456788'), { files: Readable.from(recorded) }, context());
    expect(check.problems).toEqual(['f.txt: modified 2020-09-13T12:26:40.123456788Z, recorded 2020-09-13T12:26:40.123456789Z']);
  });
});
