import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import {
  appendFileSync,
  chmodSync,
  readFileSync,
  existsSync,
  linkSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
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
import { ADMIN_KEY, API, backupAndWait, recoverAndWait, startService, TestService } from '../support/app';
import { diffTrees, treeListing } from '../support/trees';

const FILES = 3000;

/**
 * A tree of FILES small files (0..6 KiB, half text, half random) in nested directories, with varied modes and old
 * mtimes, symlinks, a hard link and an empty directory.
 */
function makeSmallTree(root: string): void {
  const modes = [0o644, 0o600, 0o755, 0o640, 0o444];
  for (let i = 0; i < FILES; i++) {
    const dir = join(root, `d${i % 23}`, `sub ${i % 4}`);
    mkdirSync(dir, { recursive: true });
    const size = i % 97 === 0 ? 0 : (i * 7919) % 6144;
    const path = join(dir, `file-${i}.txt`);
    const text = Buffer.from(`line ${i} `.repeat(Math.ceil(size / 16))).subarray(0, size >> 1);
    writeFileSync(path, Buffer.concat([text, randomBytes(size - text.length)]));
    chmodSync(path, modes[i % modes.length]);
    const when = new Date(Date.UTC(2021, i % 12, 1 + (i % 28)));
    utimesSync(path, when, when);
  }
  writeFileSync(join(root, 'big.bin'), randomBytes(256 * 1024));
  linkSync(join(root, 'big.bin'), join(root, 'big-hardlink.bin'));
  symlinkSync('d1/sub 1/file-1.txt', join(root, 'link-to-file'));
  symlinkSync('../d2', join(root, 'd1', 'link-to-dir'));
  mkdirSync(join(root, 'empty-dir'));
  chmodSync(join(root, 'd3'), 0o711);
}

const file = (root: string, i: number) => join(root, `d${i % 23}`, `sub ${i % 4}`, `file-${i}.txt`);

/** The details header of a stored (unencrypted) backup. */
function detailsHeader(dataDir: string, backupId: string): Record<string, any> {
  const lines = execFileSync('zstd', ['-dc', join(dataDir, 'backups', backupId, 'details.jsonl.zst')], { maxBuffer: 64 << 20 });
  return JSON.parse(lines.subarray(0, lines.indexOf(0x0a)).toString());
}

/** The member names of a stored (unencrypted) tar artifact. */
function tarMembers(dataDir: string, artifactKey: string): string[] {
  const out = execFileSync('bash', ['-c', 'set -o pipefail; zstd -dc "$1" | tar -tf -', '_', join(dataDir, 'backups', artifactKey)], { maxBuffer: 64 << 20 });
  return out
    .toString()
    .split('\n')
    .filter(Boolean)
    .map((name) => name.replace(/\/$/, ''));
}

/** `cp -a`: the tree's state at a backup, to compare its restore with. */
function snapshot(source: string, to: string): void {
  execFileSync('cp', ['-a', `${source}/.`, to]);
}

describe('incremental filesystem backups (real tar, zstd, local storage)', () => {
  let service: TestService;
  const work = mkdtempSync(join(tmpdir(), 'dr-incremental-'));
  const source = join(work, 'src');
  const api = () => service.http();
  const get = async (id: string) => (await api().get(`${API}/backups/${id}`).set('X-API-Key', ADMIN_KEY)).body;
  const backups: Record<string, any>[] = [];
  const snapshots: string[] = [];
  let planId: string;

  beforeAll(async () => {
    // the service holds the identity of `known`; `foreign` is a recipient whose identity is not configured here
    for (const name of ['known', 'foreign']) execFileSync('age-keygen', ['-o', join(work, `${name}.key`)], { stdio: 'ignore' });
    service = await startService({ DR_AGE_IDENTITY_SECRET: `file:${join(work, 'known.key')}` });
    mkdirSync(source);
    makeSmallTree(source);
  });

  afterAll(async () => {
    await service?.close();
    rmSync(work, { recursive: true, force: true });
  });

  /** Takes the plan's next backup (`type` as given, or as the plan decides) and keeps a snapshot of the tree. */
  async function takeBackup(type?: string): Promise<Record<string, any>> {
    const snap = join(work, `snap-${snapshots.length}`);
    mkdirSync(snap);
    snapshot(source, snap);
    const backup = await backupAndWait(service, { planId, ...(type ? { type } : {}) });
    expect(backup).toMatchObject({ status: 'COMPLETED', error: null });
    backups.push(backup);
    snapshots.push(snap);
    return backup;
  }

  it('takes a full, then incrementals of ~1% changes (modify, add, delete, rename, chmod, dirs, symlinks), each restoring exactly', async () => {
    const plan = await api()
      .post(`${API}/backup-plans`)
      .set('X-API-Key', ADMIN_KEY)
      .send({ name: 'inc-plan', engine: 'filesystem', source: { path: source }, incrementalsPerFull: 2, retention: { keepLast: 1 } });
    expect(plan.status).toBe(201);
    expect(plan.body.incrementalsPerFull).toBe(2);
    planId = plan.body.id;

    const full = await takeBackup();
    expect(full).toMatchObject({ type: 'FULL', parentId: null, fullBackupId: null, fileCount: expect.any(Number) });
    expect(full.objects.map((o: { role: string }) => o.role)).toEqual(['artifact', 'details']);

    // ~1% of the files: modified (one with its size and mtime kept: only ctime tells), added, deleted, renamed, chmod
    for (let i = 5; i < 15; i++) appendFileSync(file(source, i * 101), `changed ${i}\n`);
    const sneaky = file(source, 2000);
    const before = statSync(sneaky);
    writeFileSync(sneaky, Buffer.alloc(before.size, 0x41));
    utimesSync(sneaky, before.atime, before.mtime);
    for (let i = 0; i < 6; i++) writeFileSync(join(source, `d${i}`, `new-${i}.txt`), `new file ${i}\n`);
    mkdirSync(join(source, 'new-dir', 'deeper'), { recursive: true });
    writeFileSync(join(source, 'new-dir', 'deeper', 'inside.txt'), 'inside\n');
    mkdirSync(join(source, 'new-empty-dir'));
    for (let i = 0; i < 6; i++) unlinkSync(file(source, 1500 + i * 7));
    for (let i = 0; i < 4; i++) renameSync(file(source, 2500 + i * 3), join(source, 'd7', `renamed-${i}.txt`));
    for (let i = 0; i < 3; i++) chmodSync(file(source, 700 + i), 0o750);
    symlinkSync('../big.bin', join(source, 'd4', 'new-link'));
    chmodSync(join(source, 'd5'), 0o700);
    rmSync(join(source, 'empty-dir'), { recursive: true });
    writeFileSync(join(source, 'empty-dir'), 'now a file\n'); // a directory replaced by a file (type change)

    const first = await takeBackup();
    expect(first).toMatchObject({ type: 'INCREMENTAL', parentId: full.id, fullBackupId: full.id, fileCount: expect.any(Number) });
    expect(first.objects.map((o: { role: string }) => o.role)).toEqual(['artifact', 'details', 'deletions', 'moves']);
    expect(first.storedBytes * 20).toBeLessThan(full.storedBytes);
    // the renamed files are moves: in the move list, not in the archive nor the deletion list
    const members = tarMembers(service.dataDir, first.artifactKey);
    for (let i = 0; i < 4; i++) expect(members).not.toContain(`d7/renamed-${i}.txt`);
    expect(members).toContain('d0/new-0.txt');
    const moves = execFileSync('zstd', ['-dc', join(service.dataDir, 'backups', first.id, 'moves.nul.zst')])
      .toString()
      .split('\0')
      .filter(Boolean);
    expect(moves).toHaveLength(8);
    for (let i = 0; i < 4; i++) expect(moves).toContain(`d7/renamed-${i}.txt`);
    const deletions = execFileSync('zstd', ['-dc', join(service.dataDir, 'backups', first.id, 'deletions.nul.zst')])
      .toString()
      .split('\0')
      .filter(Boolean);
    expect(deletions).toHaveLength(6 + 1); // the deleted files, the directory that became a file
    const header = detailsHeader(service.dataDir, first.id);
    expect(header.incremental).toMatchObject({ moved: 4, deleted: 7 });
    expect(header.incremental.archived).toBe(members.length - header.incremental.touchedDirectories);

    // more changes: a whole directory deleted, a symlink retargeted, the hard-linked file rewritten, a file → dir
    rmSync(join(source, 'd9'), { recursive: true });
    unlinkSync(join(source, 'link-to-file'));
    symlinkSync('d2/sub 2/file-2.txt', join(source, 'link-to-file'));
    writeFileSync(join(source, 'big.bin'), randomBytes(256 * 1024)); // in place: both names of the inode change
    rmSync(join(source, 'empty-dir'));
    mkdirSync(join(source, 'empty-dir'));
    writeFileSync(join(source, 'empty-dir', 'was-a-file.txt'), 'x\n');
    for (let i = 0; i < 10; i++) appendFileSync(file(source, 100 + i * 53), 'again\n');
    writeFileSync(join(source, 'new-dir', 'deeper', 'inside.txt'), 'changed inside\n');
    // a directory renamed (its files are moves), a file moved into a new directory and one out of a deleted one
    renameSync(join(source, 'd11'), join(source, 'd11-renamed'));
    mkdirSync(join(source, 'moved-here', 'deep'), { recursive: true });
    renameSync(file(source, 12), join(source, 'moved-here', 'deep', 'twelve.txt'));
    renameSync(file(source, 13), join(source, 'moved-from-deleted.txt'));
    rmSync(join(source, 'd13', 'sub 1'), { recursive: true });
    renameSync(file(source, 10), join(source, 'd10', 'sub 0', 'moved-then-changed.txt'));
    appendFileSync(join(source, 'd10', 'sub 0', 'moved-then-changed.txt'), 'changed\n'); // not a move: archived

    const second = await takeBackup();
    expect(second).toMatchObject({ type: 'INCREMENTAL', parentId: first.id, fullBackupId: full.id });
    expect(second.storedBytes * 5).toBeLessThan(full.storedBytes);
    const secondMembers = tarMembers(service.dataDir, second.artifactKey);
    expect(secondMembers).toContain('d11-renamed/sub 1');
    expect(secondMembers.filter((m) => m.startsWith('d11-renamed/') && m.endsWith('.txt'))).toEqual(['d11-renamed/sub 3/file-471.txt']);
    expect(secondMembers).not.toContain('moved-here/deep/twelve.txt');
    expect(secondMembers).toContain('moved-here/deep');
    expect(secondMembers).toContain('d10/sub 0/moved-then-changed.txt');
    const secondHeader = detailsHeader(service.dataDir, second.id);
    const inD11 = readdirSync(join(source, 'd11-renamed'), { recursive: true }).filter((p) => String(p).endsWith('.txt')).length;
    // d11's files (but file-471, appended to above: archived), twelve.txt and moved-from-deleted.txt
    expect(secondMembers).toContain('d11-renamed/sub 3/file-471.txt');
    expect(secondHeader.incremental.moved).toBe(inD11 - 1 + 2);

    // each backup of the chain restores to exactly the tree it was taken of
    for (const [i, backup] of backups.entries()) {
      const target = join(service.restoreRoot, `restore-${i}`);
      const recovery = await recoverAndWait(service, { backupId: backup.id, type: 'FULL', target: { path: target } });
      expect(recovery).toMatchObject({ status: 'COMPLETED', error: null });
      expect(diffTrees(snapshots[i], target)).toBe('');
      expect(treeListing(target)).toEqual(treeListing(snapshots[i]));
      expect(statSync(join(target, 'big-hardlink.bin')).ino).toBe(statSync(join(target, 'big.bin')).ino);
    }
    // the trees did differ: a restore of the full is not the state of the second incremental
    expect(treeListing(snapshots[0])).not.toEqual(treeListing(snapshots[2]));
  }, 180_000);

  it('restores a chain by hand with standard tools: tar, zstd, the move and deletion lists', () => {
    const dir = join(work, 'by-hand');
    mkdirSync(dir);
    const stored = join(service.dataDir, 'backups');
    execFileSync('bash', ['-c', 'set -eo pipefail; zstd -dc "$1" | tar -xpf - -C "$2"', '_', join(stored, backups[0].artifactKey), dir]);
    for (const backup of backups.slice(1, 3)) {
      // moves first (each pair: mkdir -p the destination's directory, mv), then deletions, then the archive
      execFileSync('bash', [
        '-c',
        'set -eo pipefail; cd "$2" && zstd -dc "$1" | xargs -0 -r -n2 sh -c \'mkdir -p "$(dirname "$2")" && mv -- "$1" "$2"\' sh',
        '_',
        join(stored, backup.id, 'moves.nul.zst'),
        dir,
      ]);
      execFileSync('bash', [
        '-c',
        'set -eo pipefail; cd "$2" && zstd -dc "$1" | xargs -0 -r rm -rf --',
        '_',
        join(stored, backup.id, 'deletions.nul.zst'),
        dir,
      ]);
      execFileSync('bash', ['-c', 'set -eo pipefail; zstd -dc "$1" | tar -xpf - -C "$2"', '_', join(stored, backup.artifactKey), dir]);
    }
    expect(diffTrees(snapshots[2], dir)).toBe('');
    expect(treeListing(dir)).toEqual(treeListing(snapshots[2]));
  });

  it('verifies an incremental deeply by restoring its chain and comparing with its index', async () => {
    const res = await api().post(`${API}/backups/${backups[2].id}/verify`).set('X-API-Key', ADMIN_KEY).send({ mode: 'restore', waitSeconds: 120 });
    expect(res.body).toMatchObject({ status: 'COMPLETED', ok: true, problems: [] });
    expect(res.body.details.restore.chain).toEqual(backups.map((b) => b.id));
    expect(res.body.details.restore.files).toBeGreaterThan(FILES - 200);
  });

  it('keeps the whole chain a kept incremental needs, saying why', async () => {
    // keepLast 1 ran after each backup: only the newest is kept by the policy, its parent and full by the chain
    for (const b of backups) expect((await get(b.id)).status).toBe('COMPLETED');
    const report = (await api().post(`${API}/backup-plans/${planId}/retention`).set('X-API-Key', ADMIN_KEY).send({ dryRun: true })).body;
    expect(report.remove).toEqual([]);
    const reasons = Object.fromEntries(report.keep.map((k: { backupId: string; reasons: string[] }) => [k.backupId, k.reasons.join('; ')]));
    expect(reasons[backups[1].id]).toContain(`in the chain of incremental ${backups[2].id}, which is kept`);
    expect(reasons[backups[0].id]).toContain(`in the chain of incremental ${backups[2].id}, which is kept`);
  });

  it('encrypted chains: restored with the key; with recipients only (no identity here) INCREMENTAL is refused, a plan falls back to FULL', async () => {
    const small = join(work, 'small');
    mkdirSync(join(small, 'a'), { recursive: true });
    writeFileSync(join(small, 'a', 'one.txt'), 'one\n');
    const recipientOf = (name: string) => /public key: (age1\w+)/.exec(readFileSync(join(work, `${name}.key`), 'utf8'))![1];
    const encryptedPlan = (
      await api()
        .post(`${API}/backup-plans`)
        .set('X-API-Key', ADMIN_KEY)
        .send({
          name: 'inc-encrypted',
          engine: 'filesystem',
          source: { path: small },
          incrementalsPerFull: 5,
          encryption: { recipients: [recipientOf('known')] },
        })
    ).body;
    const full = await backupAndWait(service, { planId: encryptedPlan.id });
    writeFileSync(join(small, 'a', 'two.txt'), 'two\n');
    unlinkSync(join(small, 'a', 'one.txt'));
    const inc = await backupAndWait(service, { planId: encryptedPlan.id });
    expect(inc).toMatchObject({
      status: 'COMPLETED',
      type: 'INCREMENTAL',
      parentId: full.id,
      objects: expect.arrayContaining([expect.objectContaining({ key: `${inc.id}/deletions.nul.zst.age` })]),
    });
    const target = join(service.restoreRoot, 'encrypted-chain');
    expect((await recoverAndWait(service, { backupId: inc.id, type: 'FULL', target: { path: target } })).status).toBe('COMPLETED');
    expect(diffTrees(small, target)).toBe('');

    const recipientsOnly = (
      await api()
        .post(`${API}/backup-plans`)
        .set('X-API-Key', ADMIN_KEY)
        .send({
          name: 'inc-recipients',
          engine: 'filesystem',
          source: { path: small },
          incrementalsPerFull: 5,
          encryption: { recipients: [recipientOf('foreign')] },
        })
    ).body;
    const first = await backupAndWait(service, { planId: recipientsOnly.id });
    expect(first).toMatchObject({ status: 'COMPLETED', type: 'FULL' });
    const refused = await api().post(`${API}/backups`).set('X-API-Key', ADMIN_KEY).send({ planId: recipientsOnly.id, type: 'INCREMENTAL' });
    expect(refused.status).toBe(409);
    expect(refused.body).toMatchObject({ code: 'INCREMENTAL_NOT_POSSIBLE', detail: expect.stringContaining('encrypted') });
    const fallback = await backupAndWait(service, { planId: recipientsOnly.id });
    expect(fallback).toMatchObject({ status: 'COMPLETED', type: 'FULL', parentId: null });
    expect(fallback.warnings).toEqual([
      expect.stringContaining(`full backup instead of an incremental: the file index of the previous backup ${first.id} is encrypted`),
    ]);
  });

  it('incrementals of a plan with include/exclude globs keep to the selected files', async () => {
    const globbed = join(work, 'globbed');
    for (const dir of ['keep/a', 'keep/b', 'skip']) mkdirSync(join(globbed, dir), { recursive: true });
    for (const f of ['keep/a/1.txt', 'keep/a/2.txt', 'keep/b/3.txt', 'skip/4.txt', 'top.txt']) writeFileSync(join(globbed, f), `${f}\n`);
    const plan = (
      await api()
        .post(`${API}/backup-plans`)
        .set('X-API-Key', ADMIN_KEY)
        .send({
          name: 'inc-globs',
          engine: 'filesystem',
          source: { path: globbed, exclude: ['skip/**'] },
          incrementalsPerFull: 3,
        })
    ).body;
    await backupAndWait(service, { planId: plan.id });
    appendFileSync(join(globbed, 'keep/a/1.txt'), 'more\n');
    unlinkSync(join(globbed, 'keep/a/2.txt'));
    writeFileSync(join(globbed, 'keep/b/new.txt'), 'new\n');
    writeFileSync(join(globbed, 'skip/5.txt'), 'excluded\n');
    const inc = await backupAndWait(service, { planId: plan.id });
    expect(inc).toMatchObject({ status: 'COMPLETED', type: 'INCREMENTAL' });
    const target = join(service.restoreRoot, 'globbed');
    expect((await recoverAndWait(service, { backupId: inc.id, type: 'FULL', target: { path: target } })).status).toBe('COMPLETED');
    const files = (root: string) => treeListing(root).filter((l) => l.split('|')[1] === 'f' && !l.startsWith('skip'));
    expect(files(target)).toEqual(files(globbed));
    expect(existsSync(join(target, 'skip', '5.txt'))).toBe(false);
    expect(existsSync(join(target, 'keep', 'a', '2.txt'))).toBe(false);
  });

  it('refuses INCREMENTAL where it cannot be taken, naming the field', async () => {
    const noPlan = await api()
      .post(`${API}/backups`)
      .set('X-API-Key', ADMIN_KEY)
      .send({ engine: 'filesystem', source: { path: source }, type: 'INCREMENTAL' });
    expect(noPlan.status).toBe(400);
    expect(noPlan.body.details).toEqual([expect.objectContaining({ field: 'type' })]);
    const bad = await api().post(`${API}/backups`).set('X-API-Key', ADMIN_KEY).send({ planId, type: 'DIFFERENTIAL' });
    expect(bad.status).toBe(400);
    expect(bad.body.details[0].field).toBe('type');
    const fresh = (
      await api()
        .post(`${API}/backup-plans`)
        .set('X-API-Key', ADMIN_KEY)
        .send({ name: 'inc-fresh', engine: 'filesystem', source: { path: source } })
    ).body;
    const noParent = await api().post(`${API}/backups`).set('X-API-Key', ADMIN_KEY).send({ planId: fresh.id, type: 'INCREMENTAL' });
    expect(noParent.status).toBe(409);
    expect(noParent.body).toMatchObject({ code: 'INCREMENTAL_NOT_POSSIBLE', details: [{ field: 'type' }] });
    const config = (
      await api()
        .post(`${API}/backup-plans`)
        .set('X-API-Key', ADMIN_KEY)
        .send({ name: 'inc-config', engine: 'configuration', source: { paths: [`${source}/*.bin`] } })
    ).body;
    const notFs = await api().post(`${API}/backups`).set('X-API-Key', ADMIN_KEY).send({ planId: config.id, type: 'INCREMENTAL' });
    expect(notFs.status).toBe(400);
    expect(notFs.body.details[0]).toMatchObject({ field: 'type', message: expect.stringContaining('configuration') });
    const perFull = await api()
      .post(`${API}/backup-plans`)
      .set('X-API-Key', ADMIN_KEY)
      .send({ name: 'inc-config2', engine: 'configuration', source: { paths: ['/etc/hostname'] }, incrementalsPerFull: 3 });
    expect(perFull.status).toBe(400);
    expect(perFull.body.details[0].field).toBe('incrementalsPerFull');
  });

  it('fails the restore of a chain whose member is missing, naming it, and leaves the backups alone', async () => {
    const artifact = join(service.dataDir, 'backups', backups[1].artifactKey);
    const kept = join(work, 'kept-artifact');
    renameSync(artifact, kept);
    const recovery = await recoverAndWait(service, { backupId: backups[2].id, type: 'FULL', target: { path: join(service.restoreRoot, 'broken') } });
    expect(recovery.status).toBe('FAILED');
    expect(recovery.error).toContain(`chain member 2 of 3 (INCREMENTAL backup ${backups[1].id})`);
    // a corrupt member fails the same way
    renameSync(kept, artifact);
    const detailsOf = join(service.dataDir, 'backups', backups[0].artifactKey);
    const bytes = readFileSync(detailsOf);
    bytes[bytes.length >> 1] ^= 0xff;
    writeFileSync(detailsOf, bytes);
    const corrupt = await recoverAndWait(service, { backupId: backups[2].id, type: 'FULL', target: { path: join(service.restoreRoot, 'corrupt') } });
    expect(corrupt.status).toBe('FAILED');
    expect(corrupt.error).toContain(`chain member 1 of 3 (FULL backup ${backups[0].id})`);
    for (const b of backups) expect((await get(b.id)).status).toBe('COMPLETED');
  });

  it('takes a full again after incrementalsPerFull incrementals; the verified incremental still keeps its chain', async () => {
    writeFileSync(join(source, 'after.txt'), 'after\n');
    const next = await backupAndWait(service, { planId });
    expect(next).toMatchObject({ status: 'COMPLETED', type: 'FULL', parentId: null });
    // keepLast 1 keeps the new full; the second incremental is the newest verified backup, so its chain stays
    const report = (await api().post(`${API}/backup-plans/${planId}/retention`).set('X-API-Key', ADMIN_KEY).send({ dryRun: true })).body;
    const reasons = Object.fromEntries(report.keep.map((k: { backupId: string; reasons: string[] }) => [k.backupId, k.reasons.join('; ')]));
    expect(reasons[next.id]).toContain('newest backup');
    expect(reasons[backups[2].id]).toBe('newest verified backup');
    expect(reasons[backups[0].id]).toContain(`in the chain of incremental ${backups[2].id}`);
    expect(report.remove).toEqual([]);
    // once a newer backup is verified, the old chain is needed by nothing and goes, incrementals with their deletion lists
    const verified = await api().post(`${API}/backups/${next.id}/verify`).set('X-API-Key', ADMIN_KEY).send({ waitSeconds: 60 });
    expect(verified.body.ok).toBe(true);
    const applied = (await api().post(`${API}/backup-plans/${planId}/retention`).set('X-API-Key', ADMIN_KEY).send({ dryRun: false })).body;
    expect(applied.remove.map((r: { backupId: string }) => r.backupId).sort()).toEqual(backups.map((b) => b.id).sort());
    for (const b of backups) expect((await get(b.id)).status).toBe('DELETED');
    expect(existsSync(join(service.dataDir, 'backups', backups[1].id, 'deletions.nul.zst'))).toBe(false);
    expect(readdirSync(join(service.dataDir, 'backups'))).toContain(next.id);
  });
});
