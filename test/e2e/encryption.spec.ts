import { execFileSync } from 'node:child_process';
import { copyFileSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ADMIN_KEY, API, backupAndWait, recoverAndWait, startService, TestService } from '../support/app';
import { diffTrees, makeTree, treeListing } from '../support/trees';

/**
 * Encrypted backups (age v1, client-side), checked against Debian's `age` command: what the service encrypts,
 * `age -d` decrypts, and standard tools alone restore, following docs/artifact-format.md.
 */
describe('encrypted backups (age, real age CLI, real tar and zstd)', () => {
  let service: TestService;
  const work = mkdtempSync(join(tmpdir(), 'dr-enc-'));
  const identityFile = join(work, 'identity.txt');
  let recipient: string;
  const source = join(work, 'source');

  beforeAll(async () => {
    execFileSync('age-keygen', ['-o', identityFile], { stdio: 'ignore' });
    recipient = readFileSync(identityFile, 'utf8').match(/public key: (age1[0-9a-z]+)/)![1];
    makeTree(source, 300);
    process.env.DRS_TEST_PASSPHRASE = 'correct horse battery staple 42';
    service = await startService({ DR_AGE_IDENTITY_SECRET: `file:${identityFile}` });
  }, 60_000);

  afterAll(async () => {
    await service?.close();
    rmSync(work, { recursive: true, force: true });
  });

  async function location(name: string, encryption: object): Promise<string> {
    const path = join(work, name);
    mkdirSync(path);
    const res = await service.http().post(`${API}/storage-locations`).set('X-API-Key', ADMIN_KEY).send({ name, kind: 'local', settings: { path }, encryption });
    expect(res.status).toBe(201);
    return res.body.id;
  }

  it('encrypts artifact and details for the recipient; age -d | zstd -d | tar -x restores them; so does the service', async () => {
    const locationId = await location('encrypted', { recipients: [recipient] });
    const backup = await backupAndWait(service, { engine: 'filesystem', source: { path: source }, storageLocationId: locationId });
    expect(backup).toMatchObject({ status: 'COMPLETED', encryption: { format: 'age-v1', recipients: [recipient] } });
    expect(backup.artifactKey).toMatch(/\/artifact\.tar\.zst\.age$/);
    const dir = join(work, 'encrypted', backup.id);
    const artifact = join(work, 'encrypted', backup.artifactKey);
    expect(readFileSync(artifact).subarray(0, 21).toString()).toBe('age-encryption.org/v1');
    // nothing readable without the key: neither the archive nor the file names
    expect(readFileSync(artifact).includes(Buffer.from('tiefer'))).toBe(false);
    expect(readFileSync(join(dir, 'details.jsonl.zst.age')).includes(Buffer.from('tiefer'))).toBe(false);
    const manifest = JSON.parse(readFileSync(join(dir, 'manifest.json'), 'utf8'));
    expect(manifest.encryption).toEqual({ format: 'age-v1', recipients: [recipient] });
    expect(JSON.stringify(manifest)).not.toContain(source); // the source's path is in the encrypted details only

    // by hand, with the service gone: the commands of docs/artifact-format.md, step 1 verbatim
    copyFileSync(join(service.dataDir, 'manifest-signing-key.pub.pem'), join(dir, 'manifest-signing-key.pub.pem'));
    const checked = execFileSync(
      'bash',
      [
        '-c',
        [
          'set -euo pipefail',
          'jq -r .signature manifest.sig | base64 -d > /tmp/manifest.sig.bin',
          'openssl pkeyutl -verify -pubin -inkey manifest-signing-key.pub.pem -rawin -in manifest.json -sigfile /tmp/manifest.sig.bin',
          `jq -r '.objects[] | "\\(.sha256)  \\(.key | sub("^[^/]+/"; ""))"' manifest.json | sha256sum -c`,
        ].join('\n'),
      ],
      { cwd: dir },
    ).toString();
    expect(checked).toContain('Signature Verified Successfully');
    expect(checked).toContain('artifact.tar.zst.age: OK');
    expect(checked).toContain('details.jsonl.zst.age: OK');
    const byHand = join(work, 'by-hand');
    mkdirSync(byHand);
    execFileSync('bash', [
      '-c',
      'set -o pipefail; age -d -i "$1" "$2" | zstd -dc | tar -x --preserve-permissions --xattrs --xattrs-include=\'*\' --acls -f - -C "$3"',
      '_',
      identityFile,
      artifact,
      byHand,
    ]);
    expect(diffTrees(source, byHand)).toBe('');
    const details = execFileSync('bash', ['-c', 'set -o pipefail; age -d -i "$1" "$2" | zstd -dc', '_', identityFile, join(dir, 'details.jsonl.zst.age')], {
      maxBuffer: 64 << 20,
    }).toString();
    expect(JSON.parse(details.split('\n')[0])).toMatchObject({
      kind: 'dr-backup-details',
      backupId: backup.id,
      source: { path: source },
      fileCount: backup.fileCount,
    });

    // by the service, and verified by a scratch restore
    const target = join(service.restoreRoot, 'decrypted');
    const recovery = await recoverAndWait(service, { backupId: backup.id, type: 'FULL', target: { path: target } });
    expect(recovery).toMatchObject({ status: 'COMPLETED', warnings: [] });
    expect(treeListing(target)).toEqual(treeListing(source));
    const verified = await service.http().post(`${API}/backups/${backup.id}/verify`).set('X-API-Key', ADMIN_KEY).send({ mode: 'restore' });
    expect(verified.status).toBe(200);
    expect(verified.body).toMatchObject({ status: 'COMPLETED', ok: true, problems: [] });
    expect(verified.body.details.restore.files).toBeGreaterThan(250);
  });

  it('encrypts with a passphrase named by a secret reference, which never reaches the records', async () => {
    const locationId = await location('passphrase', { passphraseSecret: 'env:DRS_TEST_PASSPHRASE' });
    const backup = await backupAndWait(service, { engine: 'configuration', source: { paths: [`${source}/d1/sub 1/*.dat`] }, storageLocationId: locationId });
    expect(backup).toMatchObject({ status: 'COMPLETED', encryption: { format: 'age-v1', passphrase: true } });
    const header = readFileSync(join(work, 'passphrase', backup.artifactKey))
      .subarray(0, 200)
      .toString('latin1');
    expect(header).toMatch(/^age-encryption\.org\/v1\n-> scrypt /);
    const all = JSON.stringify([backup, (await service.http().get(`${API}/storage-locations/${locationId}`).set('X-API-Key', ADMIN_KEY)).body]);
    expect(all).not.toContain(process.env.DRS_TEST_PASSPHRASE);
    const target = join(service.restoreRoot, 'passphrase');
    expect((await recoverAndWait(service, { backupId: backup.id, type: 'FULL', target: { path: target } })).status).toBe('COMPLETED');
    expect(readFileSync(join(target, source.slice(1), 'd1/sub 1', 'file-1.dat')).equals(readFileSync(join(source, 'd1/sub 1/file-1.dat')))).toBe(true);
  });

  it('refuses bad recipients at once, naming the field', async () => {
    const res = await service
      .http()
      .post(`${API}/storage-locations`)
      .set('X-API-Key', ADMIN_KEY)
      .send({ name: 'bad', kind: 'local', settings: { path: work }, encryption: { recipients: ['age1notakey'] } });
    expect(res.status).toBe(400);
    expect(res.body.details.map((d: { field: string }) => d.field)).toContain('encryption.recipients');
    const both = await service
      .http()
      .post(`${API}/storage-locations`)
      .set('X-API-Key', ADMIN_KEY)
      .send({ name: 'both', kind: 'local', settings: { path: work }, encryption: { recipients: [recipient], passphraseSecret: 'env:DRS_X' } });
    expect(both.status).toBe(400);
    expect(both.body.details[0]).toMatchObject({ field: 'encryption' });
  });
});

describe('encrypted backups without the identity configured', () => {
  let service: TestService;
  const work = mkdtempSync(join(tmpdir(), 'dr-enc-noid-'));

  beforeAll(async () => {
    execFileSync('age-keygen', ['-o', join(work, 'identity.txt')], { stdio: 'ignore' });
    service = await startService();
  });

  afterAll(async () => {
    await service?.close();
    rmSync(work, { recursive: true, force: true });
  });

  it('backs up (only the public key is needed), but refuses to restore, naming the missing configuration', async () => {
    const recipient = readFileSync(join(work, 'identity.txt'), 'utf8').match(/public key: (age1[0-9a-z]+)/)![1];
    mkdirSync(join(work, 'store'));
    mkdirSync(join(work, 'src'));
    writeFileSync(join(work, 'src', 'a.txt'), 'secret data');
    const loc = await service
      .http()
      .post(`${API}/storage-locations`)
      .set('X-API-Key', ADMIN_KEY)
      .send({ name: 'enc', kind: 'local', settings: { path: join(work, 'store') }, encryption: { recipients: [recipient] } });
    const backup = await backupAndWait(service, { engine: 'filesystem', source: { path: join(work, 'src') }, storageLocationId: loc.body.id });
    expect(backup.status).toBe('COMPLETED');
    const refused = await service
      .http()
      .post(`${API}/recovery`)
      .set('X-API-Key', ADMIN_KEY)
      .send({ backupId: backup.id, type: 'FULL', target: { path: join(service.restoreRoot, 'x') } });
    expect(refused.status).toBe(409);
    expect(refused.body).toMatchObject({ code: 'DECRYPTION_KEY_UNAVAILABLE' });
    expect(refused.body.message).toContain('DR_AGE_IDENTITY_SECRET');
    // a checksum verification needs no key
    const verified = await service.http().post(`${API}/backups/${backup.id}/verify`).set('X-API-Key', ADMIN_KEY).send({});
    expect(verified.body).toMatchObject({ ok: true });
  });
});
