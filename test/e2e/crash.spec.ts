import { existsSync, mkdtempSync, readdirSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Client } from 'pg';
import { ADMIN_KEY, API } from '../support/app';
import { createDatabase, databaseUrl, dropDatabase, sql } from '../support/database';
import { call, startServerProcess } from '../support/server-process';

/**
 * A backup caught mid-run by kill -9 must never show as COMPLETED, and the next start must mark it FAILED and
 * remove its partial objects. The backup is held mid-run deterministically: pg_dump waits for a table lock that
 * this test holds.
 */
describe('crash during a backup (kill -9)', () => {
  let meta: string;
  let source: string;
  let locker: Client;
  const dataDir = mkdtempSync(join(tmpdir(), 'dr-crash-'));

  beforeAll(async () => {
    meta = await createDatabase('drt_meta');
    source = await createDatabase('drt_locked');
    await sql(source, 'CREATE TABLE t AS SELECT g AS id, md5(g::text) AS v FROM generate_series(1, 10000) g');
  });

  afterAll(async () => {
    await locker?.end().catch(() => undefined);
    await dropDatabase(meta);
    await dropDatabase(source);
  });

  const env = () => ({
    DATABASE_URL: databaseUrl(meta),
    DR_DATA_DIR: dataDir,
    DR_ADMIN_API_KEY: ADMIN_KEY,
    DR_JOB_LEASE_SECONDS: '3',
    DR_RESTORE_ROOTS: dataDir,
  });

  it('leaves no COMPLETED backup, and the restart marks it FAILED and removes partial objects', async () => {
    await locker?.end().catch(() => undefined);
    locker = new Client({ connectionString: databaseUrl(source) });
    locker.on('error', () => undefined);
    await locker.connect();
    await locker.query('BEGIN');
    await locker.query('LOCK TABLE t IN ACCESS EXCLUSIVE MODE');

    const first = await startServerProcess(env());
    const created = await call(first, ADMIN_KEY, 'POST', `${API}/backups`, { engine: 'postgres', source: { url: databaseUrl(source) } });
    expect(created.status).toBe(202);
    const id = created.body.id as string;
    for (let i = 0; i < 50; i++) {
      if ((await call(first, ADMIN_KEY, 'GET', `${API}/backups/${id}`)).body.status === 'RUNNING') break;
      await new Promise((r) => setTimeout(r, 100));
    }
    const staged = () => (existsSync(join(dataDir, 'backups', id)) ? readdirSync(join(dataDir, 'backups', id)) : []);
    for (let i = 0; i < 50 && staged().length === 0; i++) await new Promise((r) => setTimeout(r, 100));
    expect(staged()).toEqual([expect.stringMatching(/^\.artifact\.pgdump\.zst\.partial-/)]);

    await first.kill9();
    await locker.query('ROLLBACK');
    const [row] = await sql<{ status: string }>(meta, 'SELECT status FROM backups WHERE id = $1', [id]);
    expect(row.status).toBe('RUNNING');

    await new Promise((r) => setTimeout(r, 3500)); // let the dead process's lease expire
    const second = await startServerProcess(env());
    try {
      const after = await call(second, ADMIN_KEY, 'GET', `${API}/backups/${id}`);
      expect(after.body.status).toBe('FAILED');
      expect(after.body.error).toMatch(/interrupted: the process running this backup stopped/);
      expect(staged()).toEqual([]);
      const completed = await call(second, ADMIN_KEY, 'GET', `${API}/backups?status=COMPLETED`);
      expect(completed.body.total).toBe(0);

      // The service still works after the crash.
      const next = await call(second, ADMIN_KEY, 'POST', `${API}/backups`, { engine: 'postgres', source: { url: databaseUrl(source) } });
      let status = '';
      for (let i = 0; i < 100 && !['COMPLETED', 'FAILED'].includes(status); i++) {
        await new Promise((r) => setTimeout(r, 100));
        status = (await call(second, ADMIN_KEY, 'GET', `${API}/backups/${next.body.id}`)).body.status;
      }
      expect(status).toBe('COMPLETED');
    } finally {
      await second.stop();
    }
  });

  it('a graceful shutdown (SIGTERM) during a backup records it FAILED at once and exits', async () => {
    await locker?.end().catch(() => undefined);
    locker = new Client({ connectionString: databaseUrl(source) });
    locker.on('error', () => undefined);
    await locker.connect();
    await locker.query('BEGIN');
    await locker.query('LOCK TABLE t IN ACCESS EXCLUSIVE MODE');
    const server = await startServerProcess(env());
    const created = await call(server, ADMIN_KEY, 'POST', `${API}/backups`, { engine: 'postgres', source: { url: databaseUrl(source) } });
    await new Promise((r) => setTimeout(r, 500));
    const started = Date.now();
    const code = await server.stop();
    expect(Date.now() - started).toBeLessThan(10_000);
    expect([0, 'SIGTERM']).toContain(code);
    expect(server.output()).not.toMatch(/AbortError|ERROR/);
    await locker.query('ROLLBACK');
    const [row] = await sql<{ status: string; error: string }>(meta, 'SELECT status, error FROM backups WHERE id = $1', [created.body.id]);
    expect(row).toEqual({ status: 'FAILED', error: 'interrupted: the service was shut down during the backup' });
    expect(existsSync(join(dataDir, 'backups', created.body.id)) ? readdirSync(join(dataDir, 'backups', created.body.id)) : []).toEqual([]);
  });
});
