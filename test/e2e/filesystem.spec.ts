import { execFileSync } from 'node:child_process';
import { closeSync, mkdirSync, mkdtempSync, openSync, readFileSync, readSync, rmSync, statSync, writeFileSync, writeSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ADMIN_KEY, API, backupAndWait, recoverAndWait, startService, TestService } from '../support/app';
import { diffTrees, makeTree, treeListing } from '../support/trees';

/** Flips one byte of a file in place. */
function flipByte(path: string, offset: number): void {
  const fd = openSync(path, 'r+');
  const byte = Buffer.alloc(1);
  readSync(fd, byte, 0, 1, offset);
  byte[0] ^= 0xff;
  writeSync(fd, byte, 0, 1, offset);
  closeSync(fd);
}

describe('filesystem backups (real tar, real zstd, local storage)', () => {
  let service: TestService;
  let source: string;

  beforeAll(async () => {
    service = await startService();
    source = mkdtempSync(join(tmpdir(), 'dr-tree-'));
    makeTree(source, 3000);
  });

  afterAll(async () => {
    await service.close();
    rmSync(source, { recursive: true, force: true });
  });

  it('restores a tree of thousands of files identical: contents, modes, mtimes, symlinks, empty dirs', async () => {
    const backup = await backupAndWait(service, { engine: 'filesystem', source: { path: source } });
    expect(backup).toMatchObject({ status: 'COMPLETED', engine: 'filesystem', error: null });
    expect(backup.sizeBytes).toBeGreaterThan(100 * 1024 * 1024);
    expect(backup.storedBytes).toBeLessThan(backup.sizeBytes);
    expect(backup.sha256).toMatch(/^[0-9a-f]{64}$/);

    const target = join(service.restoreRoot, 'tree');
    const recovery = await recoverAndWait(service, { backupId: backup.id, type: 'FULL', target: { path: target } });
    expect(recovery).toMatchObject({ status: 'COMPLETED', error: null });
    expect(recovery.durationMs).toBeGreaterThan(0);

    expect(diffTrees(source, target)).toBe('');
    expect(treeListing(target)).toEqual(treeListing(source));
    expect(statSync(join(target, 'big-hardlink.bin')).ino).toBe(statSync(join(target, 'big.bin')).ino);
  });

  it('writes an artifact that standard tools alone restore (zstd -d | tar -x), with a manifest written beside it', async () => {
    const backup = await backupAndWait(service, { engine: 'filesystem', source: { path: source, exclude: ['d1/**', 'big*'] } });
    expect(backup.status).toBe('COMPLETED');
    const artifact = join(service.dataDir, 'backups', backup.artifactKey);
    const manifest = JSON.parse(readFileSync(join(service.dataDir, 'backups', backup.manifestKey), 'utf8'));
    expect(manifest).toMatchObject({
      format: 'dr-backup-manifest',
      formatVersion: 1,
      backupId: backup.id,
      engine: 'filesystem',
      artifact: { sha256: backup.sha256, storedBytes: backup.storedBytes, sizeBytes: backup.sizeBytes, compression: 'zstd' },
    });
    expect(execFileSync('sha256sum', [artifact]).toString().split(' ')[0]).toBe(backup.sha256);
    execFileSync('zstd', ['-q', '-t', artifact]); // every frame's checksum verifies with the standard tool

    const byHand = mkdtempSync(join(tmpdir(), 'dr-byhand-'));
    execFileSync('bash', ['-c', 'set -o pipefail; zstd -dc "$1" | tar -xf - -C "$2"', '_', artifact, byHand]);
    const expected = treeListing(source).filter((l) => !/^d1[/|]/.test(l) && !l.startsWith('big'));
    expect(treeListing(byHand)).toEqual(expected);
    rmSync(byHand, { recursive: true, force: true });
  });

  it('keeps only included files when include globs are given', async () => {
    const backup = await backupAndWait(service, { engine: 'filesystem', source: { path: source, include: ['d2/**/*with space.dat'] } });
    expect(backup.status).toBe('COMPLETED');
    const target = join(service.restoreRoot, 'included');
    await recoverAndWait(service, { backupId: backup.id, type: 'FULL', target: { path: target } });
    const files = treeListing(target).filter((l) => l.split('|')[1] === 'f');
    expect(files.length).toBeGreaterThan(0);
    expect(files.every((l) => l.startsWith('d2/') && l.split('|')[0].endsWith('with space.dat'))).toBe(true);
  });

  it('refuses a non-empty target unless overwrite is set, and a target outside the restore roots', async () => {
    const backup = await backupAndWait(service, { engine: 'filesystem', source: { path: join(source, 'd5') } });
    const target = join(service.restoreRoot, 'occupied');
    mkdirSync(target);
    writeFileSync(join(target, 'precious.txt'), 'do not lose me');

    const refused = await service.http().post(`${API}/recovery`).set('X-API-Key', ADMIN_KEY)
      .send({ backupId: backup.id, type: 'FULL', target: { path: target } });
    expect(refused.status).toBe(409);
    expect(refused.body).toMatchObject({ code: 'TARGET_NOT_EMPTY', details: [{ field: 'target.path' }] });
    expect(readFileSync(join(target, 'precious.txt'), 'utf8')).toBe('do not lose me');

    for (const outside of ['/etc/dr-test', `${service.restoreRoot}/../escape`, '/tmp']) {
      const res = await service.http().post(`${API}/recovery`).set('X-API-Key', ADMIN_KEY)
        .send({ backupId: backup.id, type: 'FULL', target: { path: outside } });
      expect(res.status).toBe(403);
      expect(res.body.code).toBe('TARGET_NOT_ALLOWED');
    }

    const overwritten = await recoverAndWait(service, { backupId: backup.id, type: 'FULL', target: { path: target }, overwrite: true });
    expect(overwritten.status).toBe('COMPLETED');
    expect(diffTrees(join(source, 'd5'), target)).toContain('Only in');
    expect(readFileSync(join(target, 'precious.txt'), 'utf8')).toBe('do not lose me');
  });

  it('verification and restore detect a flipped byte in the stored artifact, naming the object', async () => {
    const backup = await backupAndWait(service, { engine: 'filesystem', source: { path: join(source, 'd7') } });
    const ok = await service.http().post(`${API}/backups/${backup.id}/verify`).set('X-API-Key', ADMIN_KEY);
    expect(ok.status).toBe(200);
    expect(ok.body).toMatchObject({ ok: true, problems: [], bytesRead: backup.storedBytes });

    flipByte(join(service.dataDir, 'backups', backup.artifactKey), Math.floor(backup.storedBytes / 2));
    const bad = await service.http().post(`${API}/backups/${backup.id}/verify`).set('X-API-Key', ADMIN_KEY);
    expect(bad.body.ok).toBe(false);
    expect(bad.body.problems.join('\n')).toContain(`artifact ${backup.artifactKey} has sha256`);

    const recovery = await recoverAndWait(service, { backupId: backup.id, type: 'FULL', target: { path: join(service.restoreRoot, 'corrupt') } });
    expect(recovery.status).toBe('FAILED');
    expect(recovery.error).toMatch(/checksum mismatch|Unknown frame|corrupt|checksum/i);
  });
});
