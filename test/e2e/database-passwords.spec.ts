import { existsSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { Client } from 'pg';
import { ADMIN_KEY, API, backupAndWait, recoverAndWait, startService, TestService, waitFor } from '../support/app';
import { freePort, giveToPg, openDir, PG_BIN_DIR, pgTool, runPgTool, startCluster, stopServer, TestCluster } from '../support/pg-cluster';

/**
 * Issue 10, item 5: every database path must send the password its `passwordSecret` names. A PostgreSQL 15 cluster
 * started by the test (initdb as the PostgreSQL OS user, a free port) requires scram-sha-256 on TCP for every user
 * and for replication; the service reaches it only over TCP. Backup, restore (create and overwrite), restore
 * verification (on the source's server, and on DR_VERIFY_PG_URL with the operator's DR_VERIFY_PG_PASSWORD_SECRET),
 * the base backup and the point-in-time recovery's watch of the recovered server all run against it; the MySQL
 * paths with a password are in mysql.spec.ts (a MariaDB user with a password). Nothing is mocked. Needs
 * `npm run build` (archive_command runs bin/dr).
 */
const DR = resolve(__dirname, '..', '..', 'bin', 'dr');
const PASSWORD = `scram-pw-${Date.now().toString(36)}`;

describe('databases that require a password (scram-sha-256 cluster started by the test)', () => {
  let service: TestService;
  let root: string;
  let cluster: TestCluster;
  let archiveId: string;
  const servers: string[] = [];
  const url = (database: string) => `postgresql://postgres@127.0.0.1:${cluster.port}/${database}`;
  const secret = { passwordSecret: 'env:DRS_TEST_SCRAM_PASSWORD' };

  /** Runs SQL on the cluster over TCP with the password (the only way in). */
  async function query<T = Record<string, any>>(database: string, text: string, port = cluster.port): Promise<T[]> {
    const client = new Client({ host: '127.0.0.1', port, user: 'postgres', password: PASSWORD, database });
    await client.connect();
    try {
      return (await client.query(text)).rows as T[];
    } finally {
      await client.end();
    }
  }

  /** Connects over TCP with a wrong password. @returns 'connected' or the error message */
  async function withoutPassword(): Promise<string> {
    const client = new Client({ host: '127.0.0.1', port: cluster.port, user: 'postgres', password: 'not-the-password', database: 'app' });
    try {
      await client.connect();
      return 'connected';
    } catch (error) {
      return (error as Error).message;
    } finally {
      await client.end().catch(() => undefined);
    }
  }

  beforeAll(async () => {
    if (!existsSync(join(resolve(__dirname, '..', '..'), 'dist', 'wal', 'wal-cli.js')))
      throw new Error('run `npm run build` first: archive_command runs dist/wal/wal-cli.js');
    root = mkdtempSync(join(tmpdir(), 'dr-scram-'));
    openDir(root);
    const store = join(root, 'store');
    mkdirSync(store, { mode: 0o750 });
    giveToPg(store);
    service = await startService({ DRS_TEST_SCRAM_PASSWORD: PASSWORD, ...(PG_BIN_DIR ? { DR_PG_BIN_DIR: PG_BIN_DIR } : {}) });
    openDir(service.restoreRoot);
    const location = await service
      .http()
      .post(`${API}/storage-locations`)
      .set('X-API-Key', ADMIN_KEY)
      .send({ name: 'scram-wal', kind: 'local', settings: { path: store } });
    const archive = await service
      .http()
      .post(`${API}/wal-archives`)
      .set('X-API-Key', ADMIN_KEY)
      .send({ name: `scram-${Date.now()}`, storageLocationId: location.body.id });
    archiveId = archive.body.id;
    const clientConfig = await service.http().get(`${API}/wal-archives/${archiveId}/client-config`).set('X-API-Key', ADMIN_KEY);
    const configFile = join(root, 'wal.json');
    writeFileSync(configFile, JSON.stringify(clientConfig.body), { mode: 0o644 });
    cluster = await startCluster(root, 'scram', [
      'wal_level = replica',
      'archive_mode = on',
      `archive_command = '"${DR}" wal-push "%p" --config "${configFile}"'`,
      "password_encryption = 'scram-sha-256'",
    ]);
    servers.push(cluster.dataDir);
    await cluster.query(`ALTER ROLE postgres PASSWORD '${PASSWORD}'`);
    await cluster.query('CREATE DATABASE app');
    // From now on TCP needs the password, for every database and for replication; the socket stays open to the
    // test's PostgreSQL OS user only (trust on local connections, which the service never uses).
    writeFileSync(
      join(cluster.dataDir, 'pg_hba.conf'),
      [
        'local all all trust',
        'local replication all trust',
        'host all all 127.0.0.1/32 scram-sha-256',
        'host replication all 127.0.0.1/32 scram-sha-256',
        '',
      ].join('\n'),
    );
    runPgTool(pgTool('pg_ctl'), ['reload', '-D', cluster.dataDir]);
    await waitFor(withoutPassword, (m) => m !== 'connected', 10_000); // the reload has taken effect
    await query(
      'app',
      `CREATE TABLE orders (id int PRIMARY KEY, note text NOT NULL); INSERT INTO orders SELECT g, 'order ' || g FROM generate_series(1, 500) g`,
    );
  }, 120_000);

  afterAll(async () => {
    for (const dir of servers) stopServer(dir);
    await service?.close();
    if (root) rmSync(root, { recursive: true, force: true });
    if (service) rmSync(service.restoreRoot, { recursive: true, force: true });
  });

  it('the cluster refuses a connection without the right password (the premise of every test below)', async () => {
    expect(await withoutPassword()).toBe('password authentication failed for user "postgres"');
  });

  it('backs up, restores into a new database, restores over it, and verifies by restoring: each with the password', async () => {
    const backup = await backupAndWait(service, { engine: 'postgres', source: { url: url('app'), ...secret } });
    expect({ status: backup.status, error: backup.error }).toEqual({ status: 'COMPLETED', error: null });

    const created = await recoverAndWait(service, { backupId: backup.id, type: 'FULL', target: { url: url('app_restored'), create: true, ...secret } });
    expect({ status: created.status, error: created.error }).toEqual({ status: 'COMPLETED', error: null });
    expect(await query('app_restored', `SELECT count(*)::int AS n, sum(id)::int AS s FROM orders`)).toEqual([{ n: 500, s: 125250 }]);

    await query('app_restored', `DELETE FROM orders WHERE id > 100`);
    const over = await recoverAndWait(service, { backupId: backup.id, type: 'FULL', target: { url: url('app_restored'), ...secret }, overwrite: true });
    expect({ status: over.status, error: over.error }).toEqual({ status: 'COMPLETED', error: null });
    expect(await query('app_restored', `SELECT count(*)::int AS n FROM orders`)).toEqual([{ n: 500 }]);

    const verification = (await service.http().post(`${API}/backups/${backup.id}/verify`).set('X-API-Key', ADMIN_KEY).send({ mode: 'restore' })).body;
    expect({ ok: verification.ok, problems: verification.problems, restore: verification.details.restore }).toEqual({
      ok: true,
      problems: [],
      restore: { tables: 1, rows: 500, scratchTarget: expect.stringContaining(`127.0.0.1:${cluster.port}/dr_verify_`) },
    });
    // the scratch database is gone
    expect(await query('postgres', `SELECT datname FROM pg_database WHERE datname LIKE 'dr_verify_%'`)).toEqual([]);
  }, 120_000);

  it("verifies on DR_VERIFY_PG_URL with the operator's DR_VERIFY_PG_PASSWORD_SECRET (any variable: it is configuration, not a request)", async () => {
    const second = await startService({
      DR_VERIFY_PG_URL: `postgresql://postgres@127.0.0.1:${cluster.port}`,
      DR_VERIFY_PG_PASSWORD_SECRET: 'env:OPERATOR_VERIFY_PG_PASSWORD',
      OPERATOR_VERIFY_PG_PASSWORD: PASSWORD,
      DR_DATA_DIR: service.dataDir, // same signing key and default location
    });
    try {
      // the second service reads the same store through its own metadata: take the backup there
      const own = await backupAndWait(second, { engine: 'postgres', source: { url: url('app'), ...secret } });
      expect(own.status).toBe('COMPLETED');
      const verification = (await second.http().post(`${API}/backups/${own.id}/verify`).set('X-API-Key', ADMIN_KEY).send({ mode: 'restore' })).body;
      expect({ ok: verification.ok, problems: verification.problems }).toEqual({ ok: true, problems: [] });
      // an operator reference is not something a request may name
      const refused = await second
        .http()
        .post(`${API}/backups`)
        .set('X-API-Key', ADMIN_KEY)
        .send({ engine: 'postgres', source: { url: url('app'), passwordSecret: 'env:OPERATOR_VERIFY_PG_PASSWORD' } });
      expect({ status: refused.status, field: refused.body.details?.[0]?.field }).toEqual({ status: 400, field: 'source.passwordSecret' });
    } finally {
      await second.close();
    }
  }, 120_000);

  it('takes a base backup over a scram replication connection and watches the recovered server with target.passwordSecret', async () => {
    const base = await backupAndWait(service, { engine: 'postgres-base', source: { url: url('postgres'), walArchiveId: archiveId, ...secret } });
    expect({ status: base.status, error: base.error }).toEqual({ status: 'COMPLETED', error: null });
    await query('app', `INSERT INTO orders SELECT g, 'late ' || g FROM generate_series(501, 520) g`);
    const last = (await query<{ f: string }>('postgres', 'SELECT pg_walfile_name(pg_switch_wal()) AS f'))[0].f;
    await waitFor(
      async () => (await query<{ w: string | null }>('postgres', 'SELECT last_archived_wal AS w FROM pg_stat_archiver'))[0].w ?? '',
      (w) => w >= last,
      60_000,
    );

    const port = await freePort();
    const dataDirectory = join(service.restoreRoot, 'pitr-scram');
    servers.push(dataDirectory);
    const recovery = await recoverAndWait(service, {
      type: 'POINT_IN_TIME',
      backupId: base.id,
      target: { dataDirectory, port, recoveryTarget: { latest: true }, user: 'postgres', ...secret, timeoutSeconds: 120 },
    });
    expect({ status: recovery.status, error: recovery.error }).toEqual({ status: 'COMPLETED', error: null });
    expect(recovery.pointInTime.state).toBe('promoted');
    expect(recovery.target.passwordSecret).toBe('env:DRS_TEST_SCRAM_PASSWORD');
    expect(await query('app', `SELECT count(*)::int AS n FROM orders`, port)).toEqual([{ n: 520 }]);
    stopServer(dataDirectory);
  }, 180_000);
});
