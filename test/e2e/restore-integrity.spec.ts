import { execFileSync } from 'node:child_process';
import { createHash, generateKeyPairSync, randomBytes, sign } from 'node:crypto';
import { existsSync, lstatSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, relative } from 'node:path';
import { ADMIN_KEY, API, backupAndWait, recoverAndWait, startService, TestService } from '../support/app';
import { keyIdOf } from '../../src/pipeline/manifest-signer';
import { flipByte, zstdFrame, zstdOfSize } from '../support/tamper';

/**
 * Nothing reaches a restore target before the artifact is proven against its signed manifest (size, SHA-256,
 * signature), and an overwrite restore never follows a symlink already in the target. Real tar, zstd, local
 * storage; the stored objects are tampered with on disk as an attacker with write access to the store would.
 */

/**
 * Every entry below `root` (and `root` itself): path, type, mode, owner, size, mtime in nanoseconds, link target
 * and SHA-256 of the content. Two equal fingerprints: byte-for-byte the same tree.
 */
function fingerprint(root: string): string[] {
  const lines = execFileSync('find', ['.', '-printf', '%P|%y|%m|%U:%G|%s|%T@|%l\\n'], { cwd: root, maxBuffer: 64 << 20 })
    .toString()
    .trim()
    .split('\n')
    .map((line) => {
      const [path, type] = line.split('|');
      const content =
        type === 'f'
          ? createHash('sha256')
              .update(readFileSync(join(root, path)))
              .digest('hex')
          : '-';
      // a directory's size depends on the file system's bookkeeping, not on what it holds
      return type === 'd' ? line.replace(/\|\d+\|(?=[^|]*\|[^|]*$)/, '|-|') + `|${content}` : `${line}|${content}`;
    });
  return lines.sort();
}

/**
 * A tar archive of `files` (relative path → content), in GNU format, made by tar itself. Replacements carry a
 * 300 KiB planted file: more than the decompressor's 128 KiB output block, so that a restore streaming into the
 * target receives (and applies) members before the end of the object, where the SHA-256 is checked.
 */
function tarOf(files: Record<string, string | Buffer>): Buffer {
  const dir = mkdtempSync(join(tmpdir(), 'dr-evil-'));
  for (const [path, content] of Object.entries(files)) {
    mkdirSync(join(dir, path, '..'), { recursive: true });
    writeFileSync(join(dir, path), content);
  }
  const names = Object.keys(files);
  const archive = execFileSync('tar', ['-cf', '-', '--format=gnu', '-C', dir, ...names], { maxBuffer: 64 << 20 });
  rmSync(dir, { recursive: true, force: true });
  return archive;
}

/** Leftover staging areas (`.dr-restore-*`) anywhere below `root`. */
function stagingLeftovers(root: string): string[] {
  return execFileSync('find', [root, '-name', '.dr-restore-*'], { maxBuffer: 1 << 20 })
    .toString()
    .split('\n')
    .filter(Boolean);
}

describe('restore integrity: nothing reaches a target before it is proven', () => {
  let service: TestService;
  const work = mkdtempSync(join(tmpdir(), 'dr-integrity-'));
  const source = join(work, 'src');
  const outside = join(work, 'outside'); // not below DR_RESTORE_ROOTS
  const stored = (key: string) => join(service.dataDir, 'backups', key);

  beforeAll(async () => {
    service = await startService();
    mkdirSync(join(source, 'docs'), { recursive: true });
    mkdirSync(join(source, 'link'), { recursive: true });
    mkdirSync(outside);
    writeFileSync(join(source, 'docs', 'a.txt'), 'the backed-up a\n');
    writeFileSync(join(source, 'docs', 'b.txt'), 'the backed-up b\n');
    writeFileSync(join(source, 'link', 'evil'), 'lands wherever link points\n');
    writeFileSync(join(source, 'noise.bin'), randomBytes(1024 * 1024)); // incompressible: room for a replacement
  });

  afterAll(async () => {
    await service?.close();
    rmSync(work, { recursive: true, force: true });
  });

  /** A target below the restore roots holding known content that differs from the backup's. */
  function knownTarget(name: string): string {
    const target = join(service.restoreRoot, name);
    mkdirSync(join(target, 'docs'), { recursive: true });
    writeFileSync(join(target, 'docs', 'a.txt'), 'the target a: must survive a failed restore\n');
    writeFileSync(join(target, 'keep.txt'), 'unrelated\n');
    return target;
  }

  async function expectFailedAndUntouched(backupId: string, target: string, error: RegExp): Promise<Record<string, any>> {
    const before = fingerprint(target);
    const recovery = await recoverAndWait(service, { backupId, type: 'FULL', target: { path: target }, overwrite: true });
    expect(recovery.status).toBe('FAILED');
    expect(fingerprint(target)).toEqual(before);
    expect(recovery.error).toMatch(error);
    expect(stagingLeftovers(target)).toEqual([]);
    expect(recovery.bytesRestored).toBe(0);
    expect(recovery.bytesRead).toBeGreaterThan(0);
    return recovery;
  }

  it('a flipped byte: FAILED, the target byte-for-byte as it was (overwrite)', async () => {
    const backup = await backupAndWait(service, { engine: 'filesystem', source: { path: source } });
    expect(backup.status).toBe('COMPLETED');
    flipByte(stored(backup.artifactKey), backup.storedBytes - 100);
    await expectFailedAndUntouched(backup.id, knownTarget('flipped'), /checksum|corrupt|mismatch/i);
  });

  it('a replaced artifact with valid zstd frames and the same size fails on its SHA-256, and nothing of it lands', async () => {
    const backup = await backupAndWait(service, { engine: 'filesystem', source: { path: source } });
    const evil = tarOf({ 'docs/a.txt': 'attacker content\n', 'planted.sh': 'echo pwned\n', 'planted.bin': randomBytes(300 * 1024) });
    writeFileSync(stored(backup.artifactKey), zstdOfSize(evil, backup.storedBytes));
    execFileSync('zstd', ['-t', '-q', stored(backup.artifactKey)]); // zstd itself finds nothing wrong
    const target = knownTarget('replaced');
    await expectFailedAndUntouched(
      backup.id,
      target,
      new RegExp(`^checksum mismatch for ${backup.artifactKey}: expected sha256 ${backup.sha256}, read [0-9a-f]{64}$`),
    );
    expect(existsSync(join(target, 'planted.sh'))).toBe(false);
  });

  it('a replaced artifact of another size fails on its size, and nothing of it lands', async () => {
    const backup = await backupAndWait(service, { engine: 'filesystem', source: { path: source } });
    writeFileSync(stored(backup.artifactKey), zstdFrame(tarOf({ 'planted.sh': 'echo pwned\n' })));
    const target = knownTarget('resized');
    await expectFailedAndUntouched(
      backup.id,
      target,
      new RegExp(`^size mismatch for ${backup.artifactKey}: the manifest lists ${backup.storedBytes} bytes, read \\d+$`),
    );
    expect(existsSync(join(target, 'planted.sh'))).toBe(false);
  });

  it('configuration snapshot: a replaced artifact leaves the target as it was', async () => {
    const backup = await backupAndWait(service, { engine: 'configuration', source: { paths: [`${source}/docs/*.txt`, `${source}/noise.bin`] } });
    expect(backup.status).toBe('COMPLETED');
    const rel = relative('/', source);
    const evil = tarOf({
      [`${rel}/docs/a.txt`]: 'attacker content\n',
      [`${rel}/docs/planted.txt`]: 'planted\n',
      [`${rel}/docs/planted.bin`]: randomBytes(300 * 1024),
    });
    writeFileSync(stored(backup.artifactKey), zstdOfSize(evil, backup.storedBytes));
    const target = join(service.restoreRoot, 'config-replaced');
    mkdirSync(join(target, rel, 'docs'), { recursive: true });
    writeFileSync(join(target, rel, 'docs', 'a.txt'), 'the target a\n');
    await expectFailedAndUntouched(backup.id, target, /^checksum mismatch for /);
  });

  it('an overwrite restore of include globs replaces a symlink in the target instead of following it out of the restore roots', async () => {
    const backup = await backupAndWait(service, { engine: 'filesystem', source: { path: source, include: ['link/evil'] } });
    expect(backup.status).toBe('COMPLETED');
    const target = join(service.restoreRoot, 'symlinked');
    mkdirSync(target);
    symlinkSync(outside, join(target, 'link'));
    const recovery = await recoverAndWait(service, { backupId: backup.id, type: 'FULL', target: { path: target }, overwrite: true });
    expect(recovery.status).toBe('COMPLETED');
    expect(readdirSync(outside)).toEqual([]);
    expect(lstatSync(join(target, 'link')).isDirectory()).toBe(true);
    expect(readFileSync(join(target, 'link', 'evil'), 'utf8')).toBe('lands wherever link points\n');
  });

  it('an overwrite restore of a configuration snapshot replaces a symlinked parent directory instead of following it', async () => {
    const backup = await backupAndWait(service, { engine: 'configuration', source: { paths: [`${source}/link/evil`] } });
    expect(backup.status).toBe('COMPLETED');
    const rel = relative('/', source);
    const target = join(service.restoreRoot, 'config-symlinked');
    mkdirSync(join(target, rel), { recursive: true });
    symlinkSync(outside, join(target, rel, 'link'));
    const recovery = await recoverAndWait(service, { backupId: backup.id, type: 'FULL', target: { path: target }, overwrite: true });
    expect(recovery.status).toBe('COMPLETED');
    expect(readdirSync(outside)).toEqual([]);
    expect(lstatSync(join(target, rel, 'link')).isDirectory()).toBe(true);
    expect(readFileSync(join(target, rel, 'link', 'evil'), 'utf8')).toBe('lands wherever link points\n');
  });

  it('an overwrite restore replaces what the backup holds, keeps the rest, and puts back the modes of directories it has members for', async () => {
    const backup = await backupAndWait(service, { engine: 'filesystem', source: { path: source } });
    const target = knownTarget('merged');
    const recovery = await recoverAndWait(service, { backupId: backup.id, type: 'FULL', target: { path: target }, overwrite: true });
    expect(recovery).toMatchObject({ status: 'COMPLETED', bytesRestored: expect.any(Number) });
    expect(recovery.bytesRestored).toBeGreaterThan(1024 * 1024);
    expect(readFileSync(join(target, 'docs', 'a.txt'), 'utf8')).toBe('the backed-up a\n');
    expect(readFileSync(join(target, 'keep.txt'), 'utf8')).toBe('unrelated\n');
    expect(stagingLeftovers(target)).toEqual([]);
    // owners aside (the source is the test's, the restore the service's); mtimes to the second (the archive's
    // GNU tar format keeps whole seconds)
    const listing = (root: string) =>
      fingerprint(root)
        .filter((l) => !l.startsWith('keep.txt|'))
        .map((l) => l.replace(/\|\d+:\d+\|/, '|').replace(/\|(\d+)\.\d+\|/, '|$1|'));
    expect(listing(target)).toEqual(listing(source));
  });

  describe('the signature gate', () => {
    /** Edits a value in `manifest.json` without touching its signature. */
    function editManifest(backupId: string): Buffer {
      const path = stored(`${backupId}/manifest.json`);
      const edited = Buffer.from(readFileSync(path, 'utf8').replace(/"finishedAt": "[^"]+"/, '"finishedAt": "2000-01-01T00:00:00.000Z"'));
      writeFileSync(path, edited);
      return edited;
    }

    it('refuses a backup whose manifest.json was edited, and one re-signed with a key that is not trusted', async () => {
      const backup = await backupAndWait(service, { engine: 'filesystem', source: { path: source } });
      const edited = editManifest(backup.id);
      const target = knownTarget('edited-manifest');
      const before = fingerprint(target);
      const refused = await recoverAndWait(service, { backupId: backup.id, type: 'FULL', target: { path: target }, overwrite: true });
      expect(refused.status).toBe('FAILED');
      expect(refused.error).toMatch(
        /signature of backup .* does not verify \(the signature by key [0-9a-f]{16} does not match the manifest's bytes\); restore refused/,
      );

      const { privateKey, publicKey } = generateKeyPairSync('ed25519');
      const signature = { algorithm: 'ed25519', keyId: keyIdOf(publicKey), signature: sign(null, edited, privateKey).toString('base64') };
      writeFileSync(stored(`${backup.id}/manifest.sig`), JSON.stringify(signature));
      const untrusted = await recoverAndWait(service, { backupId: backup.id, type: 'FULL', target: { path: target }, overwrite: true });
      expect(untrusted.status).toBe('FAILED');
      expect(untrusted.error).toContain(`signed with key ${keyIdOf(publicKey)}, which is not trusted here`);
      expect(fingerprint(target)).toEqual(before);
    });

    it('refuses an incremental whose chain holds a member with an edited manifest, before reading any member', async () => {
      const plan = await service
        .http()
        .post(`${API}/backup-plans`)
        .set('X-API-Key', ADMIN_KEY)
        .send({ name: `chain-${randomBytes(3).toString('hex')}`, engine: 'filesystem', source: { path: source }, incrementalsPerFull: 3 });
      expect(plan.status).toBe(201);
      const full = await backupAndWait(service, { planId: plan.body.id });
      writeFileSync(join(source, 'docs', 'c.txt'), 'new in the incremental\n');
      const incremental = await backupAndWait(service, { planId: plan.body.id });
      expect(incremental).toMatchObject({ status: 'COMPLETED', type: 'INCREMENTAL', parentId: full.id });
      rmSync(join(source, 'docs', 'c.txt'));

      editManifest(full.id);
      const target = knownTarget('chain-edited');
      const before = fingerprint(target);
      const refused = await recoverAndWait(service, { backupId: incremental.id, type: 'FULL', target: { path: target }, overwrite: true });
      expect(refused.status).toBe('FAILED');
      expect(refused.error).toMatch(new RegExp(`signature of backup ${full.id} does not verify`));
      expect(refused.bytesRead).toBe(0); // refused before the first object was read
      expect(fingerprint(target)).toEqual(before);
    });
  });

  it('an incremental chain: a corrupt member fails the restore and the target stays as it was', async () => {
    const plan = await service
      .http()
      .post(`${API}/backup-plans`)
      .set('X-API-Key', ADMIN_KEY)
      .send({ name: `chain-${randomBytes(3).toString('hex')}`, engine: 'filesystem', source: { path: source }, incrementalsPerFull: 3 });
    const full = await backupAndWait(service, { planId: plan.body.id });
    writeFileSync(join(source, 'docs', 'b.txt'), 'changed for the first incremental\n');
    writeFileSync(join(source, 'docs', 'pad.bin'), randomBytes(512 * 1024)); // room for a replacement of the same size
    const first = await backupAndWait(service, { planId: plan.body.id });
    writeFileSync(join(source, 'docs', 'd.txt'), 'added by the second incremental\n');
    const second = await backupAndWait(service, { planId: plan.body.id });
    expect([first.type, second.type, second.parentId]).toEqual(['INCREMENTAL', 'INCREMENTAL', first.id]);
    rmSync(join(source, 'docs', 'd.txt'));
    rmSync(join(source, 'docs', 'pad.bin'));
    writeFileSync(join(source, 'docs', 'b.txt'), 'the backed-up b\n');

    // the middle member's archive replaced by one planting a file, padded to the same size
    const evil = tarOf({ 'docs/a.txt': 'attacker content\n', 'planted.sh': 'echo pwned\n', 'planted.bin': randomBytes(300 * 1024) });
    writeFileSync(stored(first.artifactKey), zstdOfSize(evil, first.storedBytes));
    const target = knownTarget('chain-corrupt');
    const recovery = await expectFailedAndUntouched(
      second.id,
      target,
      new RegExp(`chain member 2 of 3 .*${first.id}.*checksum mismatch for ${first.artifactKey}`),
    );
    expect(recovery.error).not.toContain(full.id);
    expect(existsSync(join(target, 'planted.sh'))).toBe(false);
    expect(full.status).toBe('COMPLETED');
  });
});
