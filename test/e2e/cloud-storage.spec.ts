import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ADMIN_KEY, API, recoverAndWait, startService, TestService, waitFor } from '../support/app';
import { AZURITE_KEY, AzuriteServer, startAzurite } from '../support/azurite-server';
import { GcsEmulator, gcsEmulatorInstalled, startGcsEmulator } from '../support/gcs-emulator';
import { S3TestServer, startS3Server } from '../support/s3-server';
import { diffTrees, makeTree } from '../support/trees';

/**
 * The service on cloud storage, end to end: a plan whose primary location is S3 (s3rver), with copies on Azure
 * Blob (Azurite) and GCS (the firebase-tools emulator, when installed), encrypted; restored from each.
 * The emulators run in child processes on this machine (see test/contract/*.contract.spec.ts for what each can
 * and cannot show).
 */
describe('backups on cloud storage (s3rver, Azurite, GCS emulator)', () => {
  let service: TestService;
  let s3: S3TestServer;
  let azure: AzuriteServer;
  let gcs: GcsEmulator | undefined;
  const work = mkdtempSync(join(tmpdir(), 'dr-cloud-'));
  const source = join(work, 'tree');
  const identityFile = join(work, 'identity.txt');

  beforeAll(async () => {
    makeTree(source, 300);
    execFileSync('age-keygen', ['-o', identityFile], { stdio: 'ignore' });
    [s3, azure] = await Promise.all([startS3Server('dr-backups'), startAzurite(['dr-copies'])]);
    if (gcsEmulatorInstalled()) gcs = await startGcsEmulator('dr-gcs-copies');
    process.env.DRS_TEST_S3_KEY = 'S3RVER';
    process.env.DRS_TEST_AZURE_KEY = AZURITE_KEY;
    service = await startService({ DR_AGE_IDENTITY_SECRET: `file:${identityFile}` });
  }, 120_000);

  afterAll(async () => {
    await service?.close();
    await Promise.all([s3?.close(), azure?.close(), gcs?.close()]);
    rmSync(work, { recursive: true, force: true });
  });

  async function location(body: object): Promise<string> {
    const res = await service.http().post(`${API}/storage-locations`).set('X-API-Key', ADMIN_KEY).send(body);
    if (res.status !== 201) throw new Error(`location refused: ${JSON.stringify(res.body)}`);
    return res.body.id;
  }

  it('backs up to S3, copies to Azure and GCS, restores identical trees from each, and deep-verifies', async () => {
    const recipient = readFileSync(identityFile, 'utf8').match(/public key: (age1[0-9a-z]+)/)![1];
    const primary = await location({
      name: 's3-primary',
      kind: 's3',
      settings: {
        bucket: 'dr-backups',
        prefix: 'prod',
        endpoint: s3.endpoint,
        forcePathStyle: true,
        accessKeyIdSecret: 'env:DRS_TEST_S3_KEY',
        secretAccessKeySecret: 'env:DRS_TEST_S3_KEY',
        partSizeBytes: 5 << 20,
      },
    });
    const copies = [
      await location({
        name: 'azure-copy',
        kind: 'azure-blob',
        settings: { container: 'dr-copies', accountUrl: azure.accountUrl, accountName: 'devstoreaccount1', accountKeySecret: 'env:DRS_TEST_AZURE_KEY' },
      }),
    ];
    if (gcs)
      copies.push(
        await location({
          name: 'gcs-copy',
          kind: 'gcs',
          settings: { bucket: 'dr-gcs-copies', apiEndpoint: gcs.apiEndpoint, anonymous: true, projectId: 'dr-test' },
        }),
      );
    const plan = await service
      .http()
      .post(`${API}/backup-plans`)
      .set('X-API-Key', ADMIN_KEY)
      .send({
        name: 'cloud',
        engine: 'filesystem',
        source: { path: source },
        storageLocationId: primary,
        copyLocationIds: copies,
        encryption: { recipients: [recipient] },
      });
    expect(plan.status).toBe(201);
    const run = await service.http().post(`${API}/backup-plans/${plan.body.id}/run`).set('X-API-Key', ADMIN_KEY);
    const backup = await waitFor(
      async () => (await service.http().get(`${API}/backups/${run.body.id}`).set('X-API-Key', ADMIN_KEY)).body,
      (b) =>
        b.status === 'FAILED' ||
        (b.status === 'COMPLETED' &&
          b.copies.length === copies.length &&
          b.copies.every((c: { status: string }) => ['COMPLETED', 'FAILED'].includes(c.status))),
      180_000,
    );
    expect(backup).toMatchObject({ status: 'COMPLETED', error: null, encryption: { recipients: [recipient] } });
    expect(backup.copies.map((c: { status: string; error: string | null }) => [c.status, c.error])).toEqual(copies.map(() => ['COMPLETED', null]));

    for (const from of [null, ...copies]) {
      const target = join(service.restoreRoot, `from-${from ?? 'primary'}`);
      const recovery = await recoverAndWait(service, {
        backupId: backup.id,
        type: 'FULL',
        target: { path: target },
        ...(from ? { storageLocationId: from } : {}),
      });
      expect({ from, status: recovery.status, error: recovery.error }).toEqual({ from, status: 'COMPLETED', error: null });
      expect(diffTrees(source, target)).toBe('');
    }
    const deep = await service.http().post(`${API}/backups/${backup.id}/verify`).set('X-API-Key', ADMIN_KEY).send({ mode: 'restore', waitSeconds: 120 });
    expect(deep.body).toMatchObject({ status: 'COMPLETED', ok: true, problems: [], details: { location: 's3-primary' } });
    const health = await service.http().get('/actuator/health');
    expect(health.status).toBe(200);
  }, 300_000);

  it('refuses settings that do not fit the kind, naming the fields, and never echoes a secret', async () => {
    const res = await service
      .http()
      .post(`${API}/storage-locations`)
      .set('X-API-Key', ADMIN_KEY)
      .send({
        name: 'bad-azure',
        kind: 'azure-blob',
        settings: { container: 'x', accountUrl: azure.accountUrl, accountKeySecret: 'plain-key-value', sasTokenSecret: 'env:X' },
      });
    expect(res.status).toBe(400);
    const fields = res.body.details.map((d: { field: string }) => d.field);
    expect(fields.every((f: string) => f.startsWith('settings.'))).toBe(true);
    expect(JSON.stringify(res.body)).not.toContain('plain-key-value');
    const s3Bad = await service
      .http()
      .post(`${API}/storage-locations`)
      .set('X-API-Key', ADMIN_KEY)
      .send({ name: 'bad-s3', kind: 's3', settings: { partSizeBytes: 1 } });
    expect(s3Bad.status).toBe(400);
    expect(s3Bad.body.details.map((d: { field: string }) => d.field)).toEqual(expect.arrayContaining(['settings.bucket', 'settings.partSizeBytes']));
  });
});
