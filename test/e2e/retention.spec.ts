import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ADMIN_KEY, API, startService, TestService, waitFor } from '../support/app';
import { sql } from '../support/database';

/** Retention of a plan's backups (restic's forget rules, see test/unit/retention-policy.spec.ts), on real storage. */
describe('retention (real local storage, a copy location)', () => {
  let service: TestService;
  const work = mkdtempSync(join(tmpdir(), 'dr-retention-'));

  beforeAll(async () => {
    mkdirSync(join(work, 'src'));
    mkdirSync(join(work, 'offsite'));
    service = await startService();
  });

  afterAll(async () => {
    await service?.close();
    rmSync(work, { recursive: true, force: true });
  });

  const api = () => service.http();
  const get = async (id: string) => (await api().get(`${API}/backups/${id}`).set('X-API-Key', ADMIN_KEY)).body;

  it('keeps what the policy keeps, the newest verified backup, and deletes the rest with their copies, recording why', async () => {
    const offsite = (
      await api()
        .post(`${API}/storage-locations`)
        .set('X-API-Key', ADMIN_KEY)
        .send({ name: 'offsite', kind: 'local', settings: { path: join(work, 'offsite') } })
    ).body.id;
    const plan = (
      await api()
        .post(`${API}/backup-plans`)
        .set('X-API-Key', ADMIN_KEY)
        .send({
          name: 'keep-two',
          engine: 'filesystem',
          source: { path: join(work, 'src') },
          copyLocationIds: [offsite],
          retention: { keepLast: 2 },
        })
    ).body;
    expect(plan.retention).toEqual({ keepLast: 2 });
    const ids: string[] = [];
    for (let i = 0; i < 4; i++) {
      writeFileSync(join(work, 'src', 'state.txt'), `run ${i}\n`);
      const run = await api().post(`${API}/backup-plans/${plan.id}/run`).set('X-API-Key', ADMIN_KEY);
      ids.push(run.body.id);
      await waitFor(
        () => get(run.body.id),
        (b) => b.status === 'COMPLETED' && b.copies[0]?.status === 'COMPLETED',
      );
      if (i === 0) {
        const verified = await api().post(`${API}/backups/${run.body.id}/verify`).set('X-API-Key', ADMIN_KEY).send({});
        expect(verified.body.ok).toBe(true);
      }
    }
    // retention ran after each backup: [3, 2] by keepLast, [0] as the newest verified one; [1] went
    const states = await waitFor(
      async () => Promise.all(ids.map(get)),
      (bs) => bs[1].status === 'DELETED',
    );
    expect(states.map((b) => b.status)).toEqual(['COMPLETED', 'DELETED', 'COMPLETED', 'COMPLETED']);
    expect(states[1]).toMatchObject({ deletedAt: expect.any(String), deletionReason: expect.stringContaining('retention of plan keep-two') });
    expect(states[1].copies[0].status).toBe('DELETED');
    for (const root of [join(service.dataDir, 'backups'), join(work, 'offsite')]) {
      expect(existsSync(join(root, ids[1], 'manifest.json'))).toBe(false);
      expect(existsSync(join(root, states[1].artifactKey))).toBe(false);
      expect(existsSync(join(root, states[0].artifactKey))).toBe(true);
    }
    // a deleted backup is not restorable
    const refused = await api()
      .post(`${API}/recovery`)
      .set('X-API-Key', ADMIN_KEY)
      .send({ backupId: ids[1], type: 'FULL', target: { path: join(service.restoreRoot, 'x') } });
    expect(refused.status).toBe(409);

    // the dry run says why each is kept, and removes nothing
    const dry = await api().post(`${API}/backup-plans/${plan.id}/retention`).set('X-API-Key', ADMIN_KEY).send({});
    expect(dry.status).toBe(200);
    expect(dry.body.dryRun).toBe(true);
    const why = Object.fromEntries(dry.body.keep.map((k: { backupId: string; reasons: string[] }) => [k.backupId, k.reasons]));
    expect(why[ids[3]]).toEqual(['last snapshot', 'newest backup']);
    expect(why[ids[2]]).toEqual(['last snapshot']);
    expect(why[ids[0]]).toEqual(['newest verified backup']);
    expect(dry.body.remove).toEqual([]);

    // tightening the policy: the dry run lists what would go, then it goes
    await api()
      .patch(`${API}/backup-plans/${plan.id}`)
      .set('X-API-Key', ADMIN_KEY)
      .send({ retention: { keepLast: 1 } });
    const preview = await api().post(`${API}/backup-plans/${plan.id}/retention`).set('X-API-Key', ADMIN_KEY).send({ dryRun: true });
    expect(preview.body.remove.map((r: { backupId: string }) => r.backupId)).toEqual([ids[2]]);
    expect((await get(ids[2])).status).toBe('COMPLETED');
    const applied = await api().post(`${API}/backup-plans/${plan.id}/retention`).set('X-API-Key', ADMIN_KEY).send({ dryRun: false });
    expect(applied.body).toMatchObject({ dryRun: false, failures: [] });
    expect((await get(ids[2])).status).toBe('DELETED');
  });

  it('does not count a verification that found problems, or one that failed, as "verified"', async () => {
    const plan = (
      await api()
        .post(`${API}/backup-plans`)
        .set('X-API-Key', ADMIN_KEY)
        .send({ name: 'unverified', engine: 'filesystem', source: { path: join(work, 'src') } })
    ).body;
    const ids: string[] = [];
    for (let i = 0; i < 3; i++) {
      writeFileSync(join(work, 'src', 'state.txt'), `unverified run ${i}\n`);
      const run = await api().post(`${API}/backup-plans/${plan.id}/run`).set('X-API-Key', ADMIN_KEY);
      ids.push(run.body.id);
      await waitFor(
        () => get(run.body.id),
        (b) => b.status === 'COMPLETED',
      );
    }
    // the oldest: bit rot in its artifact, so its only verification finds a problem
    const artifact = join(service.dataDir, 'backups', (await get(ids[0])).artifactKey);
    const bytes = readFileSync(artifact);
    bytes[bytes.length >> 1] ^= 0xff;
    writeFileSync(artifact, bytes);
    const found = await api().post(`${API}/backups/${ids[0]}/verify`).set('X-API-Key', ADMIN_KEY).send({});
    expect({ status: found.body.status, ok: found.body.ok, problems: found.body.problems.length > 0 }).toEqual({
      status: 'COMPLETED',
      ok: false,
      problems: true,
    });
    // the middle one: its only verification FAILED (as the crash recovery records a verification whose process died)
    await sql(
      service.database,
      `INSERT INTO verifications (backup_id, mode, status, ok, error, finished_at) VALUES ($1, 'checksum', 'FAILED', NULL, 'interrupted: the process running it stopped', now())`,
      [ids[1]],
    );

    await api()
      .patch(`${API}/backup-plans/${plan.id}`)
      .set('X-API-Key', ADMIN_KEY)
      .send({ retention: { keepLast: 1 } });
    const dry = await api().post(`${API}/backup-plans/${plan.id}/retention`).set('X-API-Key', ADMIN_KEY).send({ dryRun: true });
    expect(dry.body.keep.map((k: { backupId: string; reasons: string[] }) => [k.backupId, k.reasons])).toEqual([[ids[2], ['last snapshot', 'newest backup']]]);
    expect(dry.body.remove.map((r: { backupId: string }) => r.backupId).sort()).toEqual([ids[0], ids[1]].sort());
  });

  it('refuses an invalid policy, and immutability on a store that cannot lock objects, naming the fields', async () => {
    const res = await api()
      .post(`${API}/backup-plans`)
      .set('X-API-Key', ADMIN_KEY)
      .send({
        name: 'bad-retention',
        engine: 'filesystem',
        source: { path: join(work, 'src') },
        retention: { keepDaily: 'lots', keepWithin: '3weeks' },
        immutableDays: 30,
      });
    expect(res.status).toBe(400);
    expect(res.body.details.map((d: { field: string }) => d.field).sort()).toEqual(['immutableDays', 'retention.keepDaily', 'retention.keepWithin']);
  });
});
