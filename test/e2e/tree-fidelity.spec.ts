import { execFileSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ADMIN_KEY, API, backupAndWait, recoverAndWait, startService, TestService } from '../support/app';
import { LATIN1_DIR, LONG_COMPONENT, makeAwkwardTree, readDeep, treeFacts, xattrBlock } from '../support/awkward-tree';

/** The by-hand extraction of docs/artifact-format.md, as written there (after the decompression). */
const DOCUMENTED_EXTRACT = "tar -x --preserve-permissions --xattrs --xattrs-include='*' --acls -f -";
const DOCS = readFileSync(join(__dirname, '..', '..', 'docs', 'artifact-format.md'), 'utf8');

/** Removes a tree of any depth (Node's rmSync fails beyond PATH_MAX; GNU rm does not). */
function removeTree(path: string): void {
  execFileSync('rm', ['-rf', '--', path]);
}

/** The backup's details object, line by line (unencrypted backups). */
function details(service: TestService, backupId: string): any[] {
  const out = execFileSync('zstd', ['-dc', join(service.dataDir, 'backups', backupId, 'details.jsonl.zst')], { maxBuffer: 64 << 20 });
  return out
    .toString()
    .trimEnd()
    .split('\n')
    .map((l) => JSON.parse(l));
}

/** Setting a file capability needs root (CI runs as root); elsewhere the capability checks are left out. */
const ROOT = process.getuid?.() === 0;

/** Runs `script` with bash, `$1`.. bound to `args`. */
function sh(script: string, ...args: string[]): string {
  return execFileSync('bash', ['-c', `set -euo pipefail; ${script}`, '_', ...args], { maxBuffer: 64 << 20 }).toString();
}

/**
 * Real tar, zstd, local storage, real file systems: names are bytes, and a restore gives back every byte of them,
 * the nanoseconds of mtimes, extended attributes (user.* and a file capability) and POSIX ACLs.
 */
describe('tree fidelity: file names are bytes, metadata is kept (filesystem, incremental, configuration)', () => {
  let service: TestService;
  const work = mkdtempSync(join(tmpdir(), 'dr-fidelity-'));
  const source = join(work, 'src');

  beforeAll(async () => {
    mkdirSync(source);
    makeAwkwardTree(source);
    service = await startService();
  });

  afterAll(async () => {
    await service?.close();
    removeTree(work);
    if (service) removeTree(service.restoreRoot);
  });

  it('issue 10 item 3: a directory named in Latin-1 bytes is backed up, restored and verified, not silently left out', async () => {
    const tree = join(work, 'latin1-only');
    sh(String.raw`mkdir -p "$1"/$'r\xe9sum\xe9s/2024' && cd "$1" && printf cv > $'r\xe9sum\xe9s/2024/cv.txt' && printf plain > plain.txt`, tree);
    const backup = await backupAndWait(service, { engine: 'filesystem', source: { path: tree } });
    expect(backup).toMatchObject({ status: 'COMPLETED', error: null, fileCount: 5 }); // root, 2 files, 2 directories
    const target = join(service.restoreRoot, 'latin1-only');
    expect((await recoverAndWait(service, { backupId: backup.id, type: 'FULL', target: { path: target } })).status).toBe('COMPLETED');
    // names and contents (the mtimes are item 10's)
    const shape = (root: string) => treeFacts(root).entries.map(({ path, type, sha256 }) => ({ path, type, sha256 }));
    expect(shape(target)).toEqual(shape(tree));
    expect(shape(target).map((e) => e.path)).toContain(`${LATIN1_DIR}/2024/cv.txt`);
    const verified = await service.http().post(`${API}/backups/${backup.id}/verify`).set('X-API-Key', ADMIN_KEY).send({ mode: 'restore', waitSeconds: 60 });
    expect(verified.body).toMatchObject({ ok: true, problems: [], details: { restore: { files: 2, directories: 2 } } });
  });

  it("an overwrite restore merges names that are not UTF-8 into an existing target (staging merge by bytes), keeping the target's other entries", async () => {
    const tree = join(work, 'latin1-merge');
    sh(String.raw`mkdir -p "$1"/$'r\xe9sum\xe9s/2024' && cd "$1" && printf cv > $'r\xe9sum\xe9s/2024/cv.txt' && printf new > plain.txt`, tree);
    const backup = await backupAndWait(service, { engine: 'filesystem', source: { path: tree } });
    expect(backup.status).toBe('COMPLETED');
    const target = join(service.restoreRoot, 'latin1-merge');
    // the target already holds the Latin-1 directory (with an older file and one of its own) and a file of its own
    sh(
      String.raw`mkdir -p "$1"/$'r\xe9sum\xe9s/2024' && cd "$1" && printf old > $'r\xe9sum\xe9s/2024/cv.txt' && printf mine > $'r\xe9sum\xe9s/mine.txt' && printf keep > keep.txt && printf old > plain.txt`,
      target,
    );
    const recovery = await recoverAndWait(service, { backupId: backup.id, type: 'FULL', target: { path: target }, overwrite: true });
    expect(recovery).toMatchObject({ status: 'COMPLETED', error: null });
    expect(sh(String.raw`cd "$1" && cat $'r\xe9sum\xe9s/2024/cv.txt' $'r\xe9sum\xe9s/mine.txt' keep.txt plain.txt`, target)).toBe('cvminekeepnew');
    // no staging area left, and the name is the same bytes (read as Latin-1 to compare them byte for byte)
    const names = execFileSync('ls', ['-A', target]).toString('latin1').split('\n').filter(Boolean).sort();
    expect(names).toEqual(['keep.txt', 'plain.txt', 'r\xe9sum\xe9s']);
  });

  it('issue 10 item 10: sub-second mtimes, extended attributes and ACLs come back from a filesystem backup', async () => {
    const tree = join(work, 'metadata-only');
    sh(
      String.raw`mkdir -p "$1/dir" && cd "$1" && printf x > f && setfattr -n user.color -v blue f && setfacl -m u:nobody:rw f &&
      setfacl -d -m g:nogroup:rx dir && cp /bin/true cap && { [ "$(id -u)" != 0 ] || setcap cap_net_raw+ep cap; } &&
      touch -d '@1600000000.123456789' f cap && touch -d '@1600000001.987654321' dir`,
      tree,
    );
    const backup = await backupAndWait(service, { engine: 'filesystem', source: { path: tree } });
    expect(backup.status).toBe('COMPLETED');
    const target = join(service.restoreRoot, 'metadata-only');
    expect((await recoverAndWait(service, { backupId: backup.id, type: 'FULL', target: { path: target } })).status).toBe('COMPLETED');
    const restored = treeFacts(target);
    expect(restored.entries.find((e) => e.path === 'f')?.mtime).toBe('1600000000.1234567890');
    expect(restored.entries.find((e) => e.path === 'dir')?.mtime).toBe('1600000001.9876543210');
    expect(xattrBlock(restored, './f')).toContain('user.color=0x626c7565');
    if (ROOT) expect(xattrBlock(restored, './cap')).toContain('security.capability=0x');
    expect(restored.acls).toContain('user:nobody:rw-');
    expect(restored.acls).toContain('default:group:nogroup:r-x');
    expect(restored).toEqual(treeFacts(tree));
  });

  it('restores a tree byte-exactly: Latin-1 names, newlines, leading dashes, a 4 KB path, ns mtimes, xattrs, a capability, ACLs', async () => {
    const expected = treeFacts(source);
    // the tree holds what the test means it to hold
    expect(expected.entries.map((e) => e.path)).toEqual(
      expect.arrayContaining([LATIN1_DIR, `${LATIN1_DIR}/cv-\xff.txt`, `${LATIN1_DIR}/sub/lettre.txt`, 'new\nline', '-rf']),
    );
    expect(expected.entries.some((e) => e.path.length > 4000 && e.path.endsWith('/leaf.txt'))).toBe(true);
    expect(expected.entries.map((e) => e.path)).toContain(Buffer.from('über-ß-日本.txt').toString('latin1'));
    if (ROOT) expect(xattrBlock(expected, './cap-true')).toContain('security.capability=0x');
    expect(expected.acls).toContain('user:nobody:rwx');
    expect(expected.acls).toContain('default:group:nogroup:r-x');
    expect(expected.entries.filter((e) => e.mtime !== '-' && !/\.0+$/.test(e.mtime)).length).toBeGreaterThan(20);

    const backup = await backupAndWait(service, { engine: 'filesystem', source: { path: source } });
    expect(backup).toMatchObject({ status: 'COMPLETED', error: null });

    const target = join(service.restoreRoot, 'full');
    const recovery = await recoverAndWait(service, { backupId: backup.id, type: 'FULL', target: { path: target } });
    expect(recovery).toMatchObject({ status: 'COMPLETED', error: null });
    expect(treeFacts(target)).toEqual(expected);
    expect(readDeep(target, `${`${LONG_COMPONENT}/`.repeat(16)}leaf.txt`).toString()).toBe('leaf');

    // the index is lossless: the Latin-1 names carry their bytes, the rest is as before
    const index = details(service, backup.id).slice(1);
    const latin1 = index.find((e) => e.pathB64 === Buffer.from(`${LATIN1_DIR}/cv-\xff.txt`, 'latin1').toString('base64'));
    expect(latin1).toMatchObject({ path: 'r\\xe9sum\\xe9s/cv-\\xff.txt', type: 'file', sizeBytes: 10, mtimeNs: expect.stringMatching(/^1600000000\d{9}$/) });
    expect(index.find((e) => e.path === 'new\nline')).toMatchObject({ type: 'file', sha256: expect.any(String) });
    expect(index.find((e) => e.path === 'new\nline').pathB64).toBeUndefined();
    const link = index.find((e) => e.type === 'symlink' && e.linkTargetB64);
    expect(Buffer.from(link.linkTargetB64, 'base64').toString('latin1')).toBe('cible-\xe9');
    const sparse = index.find((e) => e.path === 'sparse.img');
    expect(sparse).toMatchObject({ sizeBytes: 5 * 1024 * 1024 });
    // ns mtimes in the index are those of the source
    const onDisk = expected.entries.find((e) => e.path === 'back\\slash')!;
    expect(index.find((e) => e.path === 'back\\slash').mtimeNs).toBe(onDisk.mtime.replace('.', '').replace(/0$/, ''));

    // the API lists them the same way, and the prefix filter works on the shown path
    const files = await service.http().get(`${API}/backups/${backup.id}/files`).query({ prefix: 'r\\xe9sum' }).set('X-API-Key', ADMIN_KEY);
    expect(files.status).toBe(200);
    expect(files.body.items.map((f: { pathB64: string }) => Buffer.from(f.pathB64, 'base64').toString('latin1')).sort()).toEqual([
      LATIN1_DIR,
      `${LATIN1_DIR}/cv-\xff.txt`,
      `${LATIN1_DIR}/lien-\xe9`,
      `${LATIN1_DIR}/sub`,
      `${LATIN1_DIR}/sub/lettre.txt`,
    ]);

    // deep verification restores into scratch (beyond PATH_MAX) and compares every entry, byte for byte and to the ns
    const verified = await service.http().post(`${API}/backups/${backup.id}/verify`).set('X-API-Key', ADMIN_KEY).send({ mode: 'restore', waitSeconds: 120 });
    expect(verified.body).toMatchObject({ status: 'COMPLETED', ok: true, problems: [] });
    // every regular file's content is compared but the sparse one's (indexed as `other`) and the hard link's (a link member)
    const count = (type: string) => expected.entries.filter((e) => e.type === type).length;
    expect(verified.body.details).toMatchObject({ restore: { files: count('f') - 2, symlinks: count('l'), directories: count('d') } });
  });

  it('writes an archive that the documented tar command alone restores the same (pax, xattrs, ACLs)', async () => {
    expect(DOCS).toContain(`zstd -dc | ${DOCUMENTED_EXTRACT} -C /restore/here`);
    const backup = await backupAndWait(service, { engine: 'filesystem', source: { path: source } });
    const byHand = join(work, 'by-hand');
    mkdirSync(byHand);
    sh(`zstd -dc "$1" | ${DOCUMENTED_EXTRACT} -C "$2"`, join(service.dataDir, 'backups', backup.artifactKey), byHand);
    expect(treeFacts(byHand)).toEqual(treeFacts(source));
    // a POSIX pax archive: its first member (the root, with its ns mtime) comes with an extended header
    const first = execFileSync('bash', ['-c', 'zstd -dc "$1" | head -c 512', '_', join(service.dataDir, 'backups', backup.artifactKey)]);
    expect(String.fromCharCode(first[156])).toBe('x');
    expect(first.subarray(257, 263).toString('latin1')).toBe('ustar\0');
  });

  it('fails a backup holding a path that tar cannot restore (4,096 bytes or more), naming it; excluding it, the backup completes', async () => {
    const tree = join(work, 'too-deep');
    // deep/ and 17 directories of 254 bytes: 4,339 bytes
    sh(
      `mkdir "$1" && cd "$1" && printf keep > keep.txt && d=$(printf 'e%.0s' {1..254}) && mkdir deep && cd deep && for i in $(seq 1 17); do mkdir "$d"; cd "$d"; done && printf lost > lost.txt`,
      tree,
    );
    const failed = await backupAndWait(service, { engine: 'filesystem', source: { path: tree } });
    expect(failed.status).toBe('FAILED');
    expect(failed.error).toMatch(/cannot back up "deep\/e+…e+": its path is 4339 bytes long.*leave it out \(source\.exclude\)/);

    const excluded = await backupAndWait(service, { engine: 'filesystem', source: { path: tree, exclude: ['deep/**'] } });
    expect(excluded).toMatchObject({ status: 'COMPLETED', error: null });
    const target = join(service.restoreRoot, 'without-deep');
    expect((await recoverAndWait(service, { backupId: excluded.id, type: 'FULL', target: { path: target } })).status).toBe('COMPLETED');
    expect(treeFacts(target).entries.map((e) => e.path)).toEqual(['keep.txt']);
  });

  it('leaves a socket out with a warning naming it (tar cannot archive one), and completes and verifies the rest', async () => {
    const tree = join(work, 'with-socket');
    sh(`mkdir "$1" && cd "$1" && printf a > a.txt && python3 -c 'import socket; socket.socket(socket.AF_UNIX).bind("s.sock")' && printf z > z.txt`, tree);
    const backup = await backupAndWait(service, { engine: 'filesystem', source: { path: tree } });
    expect(backup).toMatchObject({ status: 'COMPLETED', error: null, fileCount: 3 });
    expect(backup.warnings).toEqual([expect.stringMatching(/^not backed up: "s\.sock" is a socket/)]);
    const target = join(service.restoreRoot, 'without-socket');
    expect((await recoverAndWait(service, { backupId: backup.id, type: 'FULL', target: { path: target } })).status).toBe('COMPLETED');
    expect(treeFacts(target).entries.map((e) => e.path)).toEqual(['a.txt', 'z.txt']);
    const verified = await service.http().post(`${API}/backups/${backup.id}/verify`).set('X-API-Key', ADMIN_KEY).send({ mode: 'restore', waitSeconds: 60 });
    expect(verified.body).toMatchObject({ ok: true, problems: [] });
  });

  it('selects names that are not UTF-8 with include/exclude globs like any other', async () => {
    const backup = await backupAndWait(service, {
      engine: 'filesystem',
      source: { path: source, include: ['r?sum?s/**', '*.txt'], exclude: ['**/lettre.txt'] },
    });
    expect(backup.status).toBe('COMPLETED');
    const target = join(service.restoreRoot, 'globbed');
    expect((await recoverAndWait(service, { backupId: backup.id, type: 'FULL', target: { path: target } })).status).toBe('COMPLETED');
    const restored = treeFacts(target)
      .entries.filter((e) => e.type !== 'd')
      .map((e) => e.path);
    expect(restored.sort()).toEqual(
      [`${LATIN1_DIR}/cv-\xff.txt`, `${LATIN1_DIR}/lien-\xe9`, 'xattrs.txt', Buffer.from('über-ß-日本.txt').toString('latin1')].sort(),
    );
  });

  it('incremental chains move, delete and archive names that are bytes, and keep metadata changes; the documented commands restore them', async () => {
    const tree = join(work, 'inc');
    mkdirSync(tree);
    makeAwkwardTree(tree);
    const plan = await service
      .http()
      .post(`${API}/backup-plans`)
      .set('X-API-Key', ADMIN_KEY)
      .send({ name: 'fidelity-inc', engine: 'filesystem', source: { path: tree }, incrementalsPerFull: 3 });
    expect(plan.status).toBe(201);
    const full = await backupAndWait(service, { planId: plan.body.id });
    expect(full).toMatchObject({ status: 'COMPLETED', type: 'FULL' });

    // a move between Latin-1 names, a Latin-1 directory deleted, a new name with a newline and 0xff, metadata changes
    sh(
      String.raw`cd "$1"
      mv $'r\xe9sum\xe9s/cv-\xff.txt' $'cv-d\xe9plac\xe9.txt'
      rm -r $'r\xe9sum\xe9s/sub'
      printf 'new' > $'nouveau\n\xff'
      setfattr -n user.color -v green xattrs.txt
      setfacl -m u:nobody:rw acl-dir/f
      touch -d '@1700000000.000000001' back\\slash`,
      tree,
    );
    const inc = await backupAndWait(service, { planId: plan.body.id });
    expect(inc).toMatchObject({ status: 'COMPLETED', type: 'INCREMENTAL', parentId: full.id });
    const stored = (id: string, name: string) => join(service.dataDir, 'backups', id, name);
    const moves = execFileSync('zstd', ['-dc', stored(inc.id, 'moves.nul.zst')])
      .toString('latin1')
      .split('\0')
      .filter(Boolean);
    expect(moves).toEqual([`${LATIN1_DIR}/cv-\xff.txt`, 'cv-d\xe9plac\xe9.txt']);
    const deletions = execFileSync('zstd', ['-dc', stored(inc.id, 'deletions.nul.zst')])
      .toString('latin1')
      .split('\0')
      .filter(Boolean);
    expect(deletions).toEqual([`${LATIN1_DIR}/sub`, `${LATIN1_DIR}/sub/lettre.txt`]);
    const expected = treeFacts(tree);
    expect(expected.xattrs).toContain('user.color=0x677265656e'); // "green"

    const target = join(service.restoreRoot, 'chain');
    const recovery = await recoverAndWait(service, { backupId: inc.id, type: 'FULL', target: { path: target } });
    expect(recovery).toMatchObject({ status: 'COMPLETED', error: null });
    expect(treeFacts(target)).toEqual(expected);

    const verified = await service.http().post(`${API}/backups/${inc.id}/verify`).set('X-API-Key', ADMIN_KEY).send({ mode: 'restore', waitSeconds: 120 });
    expect(verified.body).toMatchObject({ status: 'COMPLETED', ok: true, problems: [] });

    // by hand, as docs/artifact-format.md says (unencrypted: no age step)
    const moveCommand = `xargs -0 -r -n2 sh -c 'mkdir -p "$(dirname "$2")" && mv -- "$1" "$2"' sh`;
    for (const fragment of [moveCommand, 'xargs -0 -r rm -rf --', `zstd -dc | ${DOCUMENTED_EXTRACT}`]) expect(DOCS).toContain(fragment);
    const byHand = join(work, 'chain-by-hand');
    mkdirSync(byHand);
    sh(`cd "$2" && zstd -dc "$1" | ${DOCUMENTED_EXTRACT}`, join(service.dataDir, 'backups', full.artifactKey), byHand);
    sh(`cd "$2" && zstd -dc "$1" | ${moveCommand}`, stored(inc.id, 'moves.nul.zst'), byHand);
    sh(`cd "$2" && zstd -dc "$1" | xargs -0 -r rm -rf --`, stored(inc.id, 'deletions.nul.zst'), byHand);
    sh(`cd "$2" && zstd -dc "$1" | ${DOCUMENTED_EXTRACT}`, join(service.dataDir, 'backups', inc.artifactKey), byHand);
    expect(treeFacts(byHand)).toEqual(expected);
  });

  it('configuration snapshots refuse globs that reach names they cannot select (not UTF-8), naming them, instead of leaving them out', async () => {
    const tree = join(work, 'conf');
    sh(String.raw`mkdir -p "$1"/$'r\xe9' "$1/ok" && cd "$1" && printf a > ok/app.txt && printf b > $'r\xe9/x.txt' && printf c > $'caf\xe9.txt'`, tree);
    const refused = await service
      .http()
      .post(`${API}/backups`)
      .set('X-API-Key', ADMIN_KEY)
      .send({ engine: 'configuration', source: { paths: [`${tree}/**/*.txt`] } });
    expect(refused.status).toBe(400);
    expect(refused.body).toMatchObject({ code: 'VALIDATION_FAILED', details: [{ field: 'source.paths' }] });
    expect(refused.body.details[0].message).toContain(`"${tree}/caf\\\\xe9.txt", "${tree}/r\\\\xe9"`);
    // globs that reach none of them still work
    const backup = await backupAndWait(service, { engine: 'configuration', source: { paths: [`${tree}/ok/*.txt`] } });
    expect(backup).toMatchObject({ status: 'COMPLETED', fileCount: 1 });
  });

  it('configuration snapshots keep ns mtimes, xattrs, the capability and ACLs of the files they hold', async () => {
    const paths = [`${source}/xattrs.txt`, `${source}/acl-dir/*`, ...(ROOT ? [`${source}/cap-true`] : [])];
    const backup = await backupAndWait(service, { engine: 'configuration', source: { paths } });
    expect(backup).toMatchObject({ status: 'COMPLETED', error: null });
    const target = join(service.restoreRoot, 'config');
    expect((await recoverAndWait(service, { backupId: backup.id, type: 'FULL', target: { path: target } })).status).toBe('COMPLETED');
    const restoredRoot = join(target, source);
    const pick = (facts: ReturnType<typeof treeFacts>) => ({
      entries: facts.entries.filter((e) => e.type === 'f'),
      xattrs: facts.xattrs.split('\n\n').filter((b) => /^# file: \.\/(xattrs\.txt|cap-true|acl-dir\/f)\n/.test(b)),
      acls: facts.acls.split('\n\n').filter((b) => /^# file: \.\/acl-dir\/f\n/.test(b)),
    });
    const expected = pick(treeFacts(source));
    expected.entries = expected.entries.filter((e) => ['xattrs.txt', 'cap-true', 'acl-dir/f'].includes(e.path));
    expect(expected.xattrs).toHaveLength(ROOT ? 3 : 2);
    expect(pick(treeFacts(restoredRoot))).toEqual(expected);
    rmSync(target, { recursive: true, force: true });
  });
});
