import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ADMIN_KEY, API, backupAndWait, recoverAndWait, startService, TestService, waitFor } from '../support/app';
import { sql } from '../support/database';
import { makeTree } from '../support/trees';

/** The value of the sample `name{labels}` in a Prometheus text exposition; undefined when absent. */
function sample(text: string, name: string, labels: Record<string, string> = {}): number | undefined {
  for (const line of text.split('\n')) {
    const match = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})? (\S+)$/.exec(line);
    if (!match || match[1] !== name) continue;
    const present = Object.fromEntries([...(match[2] ?? '').matchAll(/(\w+)="((?:[^"\\]|\\.)*)"/g)].map((m) => [m[1], m[2]]));
    if (Object.entries(labels).every(([k, v]) => present[k] === v)) return Number(match[3]);
  }
  return undefined;
}

describe('Prometheus metrics at /actuator/prometheus (real backups, restores and verifications)', () => {
  let service: TestService;
  let work: string;
  const scrape = async () => {
    const res = await service.http().get('/actuator/prometheus');
    expect(res.status).toBe(200);
    return res.text;
  };

  beforeAll(async () => {
    service = await startService();
    work = mkdtempSync(join(tmpdir(), 'dr-metrics-'));
    makeTree(join(work, 'src'), 200);
  });

  afterAll(async () => {
    await service?.close();
    rmSync(work, { recursive: true, force: true });
  });

  it('is public and served in the Prometheus text format, with the process metrics', async () => {
    const res = await service.http().get('/actuator/prometheus');
    expect(res.status).toBe(200);
    expect(res.headers['content-type']).toMatch(/^text\/plain; version=0\.0\.4; charset=utf-8$/);
    expect(res.text).toContain('# TYPE dr_backups_total counter');
    expect(res.text).toContain('# TYPE dr_backup_duration_seconds histogram');
    expect(sample(res.text, 'process_resident_memory_bytes')).toBeGreaterThan(0);
    expect(sample(res.text, 'dr_jobs_running', { kind: 'backup' })).toBe(0);
  });

  it('counts backups by engine and outcome, their durations and stored bytes, restores and verifications', async () => {
    const before = await scrape();
    const ok = await backupAndWait(service, { engine: 'filesystem', source: { path: join(work, 'src') } });
    expect(ok.status).toBe('COMPLETED');
    // a storage location whose directory was replaced by a file: every write fails, whoever the user is
    mkdirSync(join(work, 'broken'));
    const location = await service
      .http()
      .post(`${API}/storage-locations`)
      .set('X-API-Key', ADMIN_KEY)
      .send({ name: 'broken', kind: 'local', settings: { path: join(work, 'broken') } });
    expect(location.status).toBe(201);
    rmSync(join(work, 'broken'), { recursive: true });
    writeFileSync(join(work, 'broken'), 'in the way');
    const failed = await backupAndWait(service, { engine: 'filesystem', source: { path: join(work, 'src') }, storageLocationId: location.body.id });
    expect(failed.status).toBe('FAILED');
    const recovery = await recoverAndWait(service, { backupId: ok.id, type: 'FULL', target: { path: join(service.restoreRoot, 'r1') } });
    expect(recovery.status).toBe('COMPLETED');
    const verification = (await service.http().post(`${API}/backups/${ok.id}/verify`).set('X-API-Key', ADMIN_KEY).send({})).body;
    expect(verification).toMatchObject({ ok: true });

    // the counters are fed when a job has ended, a moment after its record turned terminal
    const text = await waitFor(scrape, (t) => sample(t, 'dr_verifications_total', { mode: 'checksum', outcome: 'ok' }) === 1, 10_000);
    expect(sample(before, 'dr_backups_total', { engine: 'filesystem', outcome: 'completed' })).toBeUndefined();
    expect(sample(text, 'dr_backups_total', { engine: 'filesystem', outcome: 'completed' })).toBe(1);
    expect(sample(text, 'dr_backups_total', { engine: 'filesystem', outcome: 'failed' })).toBe(1);
    expect(sample(text, 'dr_backup_duration_seconds_count', { engine: 'filesystem', outcome: 'completed' })).toBe(1);
    expect(sample(text, 'dr_backup_duration_seconds_count', { engine: 'filesystem', outcome: 'failed' })).toBe(1);
    const seconds = sample(text, 'dr_backup_duration_seconds_sum', { engine: 'filesystem', outcome: 'completed' })!;
    const recorded = (new Date(ok.finishedAt).getTime() - new Date(ok.startedAt).getTime()) / 1000;
    expect(seconds).toBeCloseTo(recorded, 2);
    expect(sample(text, 'dr_backup_duration_seconds_bucket', { engine: 'filesystem', outcome: 'completed', le: '+Inf' })).toBe(1);
    // only the completed backup's stored bytes, as the record has them
    expect(sample(text, 'dr_backup_bytes_written_total', { engine: 'filesystem' })).toBe(ok.storedBytes);
    expect(sample(text, 'dr_restores_total', { engine: 'filesystem', outcome: 'completed' })).toBe(1);
    expect(sample(text, 'dr_restore_duration_seconds_count', { engine: 'filesystem', outcome: 'completed' })).toBe(1);
    expect(sample(text, 'dr_restore_duration_seconds_sum', { engine: 'filesystem', outcome: 'completed' })).toBeCloseTo(recovery.durationMs / 1000, 3);
    expect(sample(text, 'dr_jobs_running', { kind: 'backup' })).toBe(0);
  });

  it("reports each enabled plan's last success and backup age from the metadata store", async () => {
    const create = (name: string, path: string, enabled = true) =>
      service.http().post(`${API}/backup-plans`).set('X-API-Key', ADMIN_KEY).send({ name, engine: 'filesystem', source: { path }, enabled });
    const plan = (await create('metrics-nightly', join(work, 'src'))).body;
    const never = (await create('metrics-never', join(work, 'src'))).body;
    const disabled = (await create('metrics-disabled', join(work, 'src'), false)).body;
    expect([plan.id, never.id, disabled.id].every(Boolean)).toBe(true);
    const run = await service.http().post(`${API}/backup-plans/${plan.id}/run`).set('X-API-Key', ADMIN_KEY).send();
    expect(run.status).toBe(202);
    const backup = await waitFor(
      async () => (await service.http().get(`${API}/backups/${run.body.id}`).set('X-API-Key', ADMIN_KEY)).body,
      (b) => b.status === 'COMPLETED' || b.status === 'FAILED',
    );
    expect(backup.status).toBe('COMPLETED');

    // an older completed backup of the plan, as if made hours ago by another replica: the newest one counts
    await sql(service.database, `UPDATE backups SET finished_at = now() - interval '3 hours' WHERE id = $1`, [backup.id]);
    let text = await scrape();
    const finished = Date.now() / 1000 - 3 * 3600;
    expect(sample(text, 'dr_plan_last_success_timestamp_seconds', { plan: 'metrics-nightly' })).toBeCloseTo(finished, -1);
    expect(sample(text, 'dr_plan_backup_age_seconds', { plan: 'metrics-nightly' })).toBeGreaterThanOrEqual(3 * 3600 - 5);
    expect(sample(text, 'dr_plan_backup_age_seconds', { plan: 'metrics-nightly' })).toBeLessThan(3 * 3600 + 60);
    // a plan that never completed a backup: no last success, its age counts from its creation
    expect(sample(text, 'dr_plan_last_success_timestamp_seconds', { plan: 'metrics-never' })).toBeUndefined();
    expect(sample(text, 'dr_plan_backup_age_seconds', { plan: 'metrics-never' })).toBeLessThan(120);
    // disabled plans are not reported
    expect(sample(text, 'dr_plan_backup_age_seconds', { plan: 'metrics-disabled' })).toBeUndefined();

    // a new backup resets the age
    const again = await service.http().post(`${API}/backup-plans/${plan.id}/run`).set('X-API-Key', ADMIN_KEY).send();
    await waitFor(
      async () => (await service.http().get(`${API}/backups/${again.body.id}`).set('X-API-Key', ADMIN_KEY)).body,
      (b) => b.status === 'COMPLETED' || b.status === 'FAILED',
    );
    text = await scrape();
    expect(sample(text, 'dr_plan_backup_age_seconds', { plan: 'metrics-nightly' })).toBeLessThan(60);
  });
});
