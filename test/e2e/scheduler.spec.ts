import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ADMIN_KEY, API } from '../support/app';
import { createDatabase, databaseUrl, dropDatabase, sql } from '../support/database';
import { call, ServerProcess, startServerProcess } from '../support/server-process';

/** Two replicas on one PostgreSQL: every scheduled occurrence of a plan runs exactly once. */
describe('scheduled backups with two instances on one database', () => {
  let meta: string;
  const servers: ServerProcess[] = [];

  beforeAll(async () => {
    meta = await createDatabase('drt_sched');
  });

  afterAll(async () => {
    await Promise.all(servers.map((s) => s.stop()));
    await dropDatabase(meta);
  });

  it('runs each occurrence once, whichever instance claims it', async () => {
    const source = mkdtempSync(join(tmpdir(), 'dr-sched-src-'));
    writeFileSync(join(source, 'data.txt'), 'scheduled content\n');
    const dataDir = mkdtempSync(join(tmpdir(), 'dr-sched-'));
    const env = (name: string) => ({
      DATABASE_URL: databaseUrl(meta),
      DR_DATA_DIR: dataDir,
      DR_ADMIN_API_KEY: ADMIN_KEY,
      DR_PLAN_SYNC_SECONDS: '1',
      DR_INSTANCE_ID: name,
      DR_LOG_LEVEL: 'debug', // lost claims are logged at debug level
    });
    servers.push(await startServerProcess(env('instance-a')));
    servers.push(await startServerProcess(env('instance-b')));

    const plan = await call(servers[0], ADMIN_KEY, 'POST', `${API}/backup-plans`, {
      name: 'every-two-seconds',
      engine: 'filesystem',
      source: { path: source },
      schedule: '*/2 * * * * *',
    });
    expect(plan.status).toBe(201);
    await new Promise((r) => setTimeout(r, 11_000));
    const disabled = await call(servers[1], ADMIN_KEY, 'PATCH', `${API}/backup-plans/${plan.body.id}`, { enabled: false });
    expect(disabled.body.enabled).toBe(false);
    await new Promise((r) => setTimeout(r, 2500)); // both instances pick up the change; runs in flight finish

    const claims = await sql<{ scheduled_for: Date; instance_id: string; backup_id: string | null; skip_reason: string | null }>(
      meta,
      'SELECT scheduled_for, instance_id, backup_id, skip_reason FROM schedule_claims WHERE plan_id = $1 ORDER BY scheduled_for',
      [plan.body.id],
    );
    const backups = await sql<{ id: string; status: string; trigger: string; runner_id: string }>(
      meta,
      'SELECT id, status, trigger, runner_id FROM backups WHERE plan_id = $1',
      [plan.body.id],
    );
    const started = claims.filter((c) => c.backup_id !== null);
    expect(started.length).toBeGreaterThanOrEqual(3);
    // every claim either started a backup or says why it did not (the previous run still going)
    for (const c of claims) expect(c.backup_id !== null || /still running/.test(c.skip_reason ?? '')).toBe(true);
    // one backup per started claim, none without a claim, all completed
    expect(backups).toHaveLength(started.length);
    expect(new Set(started.map((c) => c.backup_id))).toEqual(new Set(backups.map((b) => b.id)));
    expect(backups.every((b) => b.status === 'COMPLETED' && b.trigger === 'SCHEDULED')).toBe(true);
    // occurrences are distinct and two seconds apart
    const times = claims.map((c) => new Date(c.scheduled_for).getTime());
    expect(new Set(times).size).toBe(times.length);
    for (let i = 1; i < times.length; i++) expect((times[i] - times[i - 1]) % 2000).toBe(0);
    // each backup ran on the instance that claimed it
    const claimedBy = new Map(claims.map((c) => [c.backup_id, c.instance_id]));
    for (const b of backups) expect(b.runner_id).toBe(claimedBy.get(b.id));
    // both instances were live and competing: for most occurrences, the instance that did not win the claim
    // logged that it tried the same occurrence and lost (the first may precede its plan sync)
    const lostBy = (s: ServerProcess) =>
      new Set([...s.output().matchAll(/occurrence (\S+) already claimed by another instance/g)].map((m) => new Date(m[1]).getTime()));
    const lost = { 'instance-a': lostBy(servers[0]), 'instance-b': lostBy(servers[1]) };
    const contested = claims.filter((c) => lost[c.instance_id === 'instance-a' ? 'instance-b' : 'instance-a'].has(new Date(c.scheduled_for).getTime()));
    expect(contested.length).toBeGreaterThanOrEqual(claims.length - 2);
  });
});
