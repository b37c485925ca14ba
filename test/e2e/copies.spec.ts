import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ADMIN_KEY, API, recoverAndWait, startService, TestService, waitFor } from '../support/app';
import { diffTrees, makeTree } from '../support/trees';

/** 3-2-1: completed backups are copied to other locations, verified by hash, and restorable from there. */
describe('copies (two real local locations)', () => {
  let service: TestService;
  const work = mkdtempSync(join(tmpdir(), 'dr-copies-'));
  const source = join(work, 'tree');
  let offsite: string;

  beforeAll(async () => {
    makeTree(source, 200);
    service = await startService();
    offsite = await locationAt('offsite', join(work, 'offsite'));
  });

  afterAll(async () => {
    await service?.close();
    rmSync(work, { recursive: true, force: true });
  });

  async function locationAt(name: string, path: string): Promise<string> {
    mkdirSync(path, { recursive: true });
    const res = await service.http().post(`${API}/storage-locations`).set('X-API-Key', ADMIN_KEY).send({ name, kind: 'local', settings: { path } });
    expect(res.status).toBe(201);
    return res.body.id;
  }

  const get = async (id: string) => (await service.http().get(`${API}/backups/${id}`).set('X-API-Key', ADMIN_KEY)).body;

  it("copies a plan's backup to its copy location, verified; restores from the copy when the primary is lost", async () => {
    const plan = await service
      .http()
      .post(`${API}/backup-plans`)
      .set('X-API-Key', ADMIN_KEY)
      .send({ name: 'with-offsite-copy', engine: 'filesystem', source: { path: source }, copyLocationIds: [offsite] });
    expect(plan.status).toBe(201);
    expect(plan.body.copyLocationIds).toEqual([offsite]);
    const run = await service.http().post(`${API}/backup-plans/${plan.body.id}/run`).set('X-API-Key', ADMIN_KEY);
    const backup = await waitFor(
      () => get(run.body.id),
      (b) => b.status === 'COMPLETED' && b.copies[0]?.status === 'COMPLETED',
    );
    expect(backup.copies).toEqual([expect.objectContaining({ storageLocationId: offsite, status: 'COMPLETED', error: null, verifiedAt: expect.any(String) })]);
    // the copy holds the same bytes, object for object, manifest and signature included
    for (const key of [...backup.objects.map((o: { key: string }) => o.key), backup.manifestKey, `${backup.id}/manifest.sig`]) {
      expect(readFileSync(join(work, 'offsite', key)).equals(readFileSync(join(service.dataDir, 'backups', key)))).toBe(true);
    }
    const copyVerified = await service.http().post(`${API}/backups/${backup.id}/verify`).set('X-API-Key', ADMIN_KEY).send({ storageLocationId: offsite });
    expect(copyVerified.body).toMatchObject({ ok: true, details: { location: 'offsite' } });

    // the primary site is lost
    rmSync(join(service.dataDir, 'backups', backup.id), { recursive: true });
    const fromPrimary = await recoverAndWait(service, { backupId: backup.id, type: 'FULL', target: { path: join(service.restoreRoot, 'primary') } });
    expect(fromPrimary.status).toBe('FAILED');
    const fromCopy = await recoverAndWait(service, {
      backupId: backup.id,
      type: 'FULL',
      target: { path: join(service.restoreRoot, 'copy') },
      storageLocationId: offsite,
    });
    expect(fromCopy).toMatchObject({ status: 'COMPLETED', storageLocationId: offsite });
    expect(diffTrees(source, join(service.restoreRoot, 'copy'))).toBe('');
  });

  it('records a failed copy with its reason, leaves the backup alone, and can copy again once the location is fixed', async () => {
    const file = join(work, 'not-a-directory');
    writeFileSync(file, 'x');
    const broken = await locationAt('file-in-the-way', join(work, 'ok-dir'));
    // the location's directory replaced by a file: every write under it fails, whoever the user is
    rmSync(join(work, 'ok-dir'), { recursive: true });
    writeFileSync(join(work, 'ok-dir'), 'in the way');
    const created = await service
      .http()
      .post(`${API}/backups`)
      .set('X-API-Key', ADMIN_KEY)
      .send({ engine: 'filesystem', source: { path: join(source, 'd3') } });
    const backup = await waitFor(
      () => get(created.body.id),
      (b) => b.status === 'COMPLETED',
    );
    await service.http().post(`${API}/backups/${backup.id}/copies`).set('X-API-Key', ADMIN_KEY).send({ storageLocationId: broken });
    const failed = await waitFor(
      () => get(backup.id),
      (b) => ['COMPLETED', 'FAILED'].includes(b.copies[0]?.status),
    );
    expect(failed.copies[0]).toMatchObject({ status: 'FAILED', error: expect.stringMatching(/ENOTDIR|EEXIST|not a directory/i) });
    expect(failed.status).toBe('COMPLETED');
    // once the location is fixed, the copy can be made again
    rmSync(join(work, 'ok-dir'));
    mkdirSync(join(work, 'ok-dir'));
    const again = await service.http().post(`${API}/backups/${backup.id}/copies`).set('X-API-Key', ADMIN_KEY).send({ storageLocationId: broken });
    expect(again.status).toBe(202);
    const done = await waitFor(
      () => get(backup.id),
      (b) => b.copies[0]?.status === 'COMPLETED',
    );
    expect(done.copies[0].verifiedAt).toEqual(expect.any(String));
    const dup = await service.http().post(`${API}/backups/${backup.id}/copies`).set('X-API-Key', ADMIN_KEY).send({ storageLocationId: broken });
    expect(dup.status).toBe(409);
    rmSync(file);
  });

  it('refuses a copy location that is the primary or does not exist, naming the field', async () => {
    const def = (await service.http().get(`${API}/storage-locations`).set('X-API-Key', ADMIN_KEY)).body.find((l: { isDefault: boolean }) => l.isDefault);
    const res = await service
      .http()
      .post(`${API}/backup-plans`)
      .set('X-API-Key', ADMIN_KEY)
      .send({ name: 'bad-copies', engine: 'filesystem', source: { path: source }, copyLocationIds: [def.id, '00000000-0000-4000-8000-000000000000'] });
    expect(res.status).toBe(400);
    expect(res.body.details.map((d: { field: string }) => d.field)).toEqual(['copyLocationIds.0', 'copyLocationIds.1']);
  });
});
