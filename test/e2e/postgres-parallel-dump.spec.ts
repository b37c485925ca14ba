import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync, mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ADMIN_KEY, API, backupAndWait, recoverAndWait, startService, TestService } from '../support/app';
import { createDatabase, databaseUrl, dropDatabase, sql, tableChecksums } from '../support/database';
import { call, startServerProcess } from '../support/server-process';

/**
 * `source.jobs`: a parallel `pg_dump --format=directory --jobs=N`, stored as the custom-format archive a plain dump
 * would have been, restored with `pg_restore --jobs`. Real pg_dump/pg_restore on the local PostgreSQL. A replaced
 * artifact of a parallel dump restoring nothing: test/e2e/restore-integrity-databases.spec.ts.
 */
describe('postgres parallel dump (source.jobs)', () => {
  const tag = randomBytes(3).toString('hex');
  const roles = { owner: `pgdir_owner_${tag}`, reader: `pgdir_reader_${tag}` };
  let service: TestService;
  let source: string;
  const databases: string[] = [];
  const stored = (key: string) => join(service.dataDir, 'backups', key);
  const scratchLeft = () => (existsSync(join(service.dataDir, 'scratch')) ? readdirSync(join(service.dataDir, 'scratch')) : []);
  const newDatabase = (prefix: string) => {
    const name = `${prefix}_${randomBytes(4).toString('hex')}`;
    databases.push(name);
    return name;
  };

  beforeAll(async () => {
    service = await startService();
    source = await createDatabase('pgdir_src');
    databases.push(source);
    execFileSync('pgbench', ['-i', '-s', '2', '-q', databaseUrl(source)], { stdio: 'ignore' });
    // rows a line-by-line reader could get wrong: escaped newlines and tabs, text looking like the COPY end
    // marker, NULLs, a row over 1 MiB (spans reads), an empty table, large objects (one empty, one over 16 KiB)
    await sql(source, `CREATE TABLE awkward (id int PRIMARY KEY, body text, raw bytea)`);
    await sql(source, `INSERT INTO awkward SELECT g, E'line\\n\\\\.\\n' || g || E'\\t\\r end', decode(md5(g::text), 'hex') FROM generate_series(1, 2000) g`);
    await sql(source, `INSERT INTO awkward VALUES (0, NULL, NULL), (-1, '\\.', ''::bytea), (-2, repeat('x', 1500000), NULL)`);
    await sql(source, `CREATE TABLE empty_one (x int)`);
    await sql(source, `SELECT lo_from_bytea(0, ''::bytea), lo_from_bytea(0, convert_to(repeat('large object ', 5000), 'UTF8'))`);
  });

  afterAll(async () => {
    await service?.close();
    for (const db of databases) await dropDatabase(db);
    for (const role of [roles.reader, roles.owner]) await sql('postgres', `DROP ROLE IF EXISTS ${role}`).catch(() => undefined);
  });

  it('backs up with jobs: 2 and restores into a new database (create: true) with identical tables and large objects', async () => {
    const backup = await backupAndWait(service, { engine: 'postgres', source: { url: databaseUrl(source), jobs: 2 } });
    expect(backup).toMatchObject({ status: 'COMPLETED', error: null, warnings: [] });
    expect(backup.source).toEqual({ url: databaseUrl(source), jobs: 2 });
    expect(scratchLeft()).toEqual([]); // the directory dump is gone

    const target = newDatabase('pgdir_restored');
    const recovery = await recoverAndWait(service, { backupId: backup.id, type: 'FULL', target: { url: databaseUrl(target), create: true } });
    // no warnings: the archive's data offsets were added, so pg_restore ran with --jobs
    expect(recovery).toMatchObject({ status: 'COMPLETED', error: null, warnings: [] });
    const expected = await tableChecksums(source);
    expect(expected['public.pgbench_accounts'].rows).toBe(200_000);
    expect(expected['public.awkward'].rows).toBe(2003);
    expect(await tableChecksums(target)).toEqual(expected);
    const objects = `SELECT oid, md5(lo_get(oid)) FROM pg_largeobject_metadata ORDER BY 1`;
    expect(await sql(target, objects)).toEqual(await sql(source, objects));

    // deep verification: the recorded table digests equal those of a re-dump of the restored database
    const verify = await service.http().post(`${API}/backups/${backup.id}/verify`).set('X-API-Key', ADMIN_KEY).send({ mode: 'restore', waitSeconds: 120 });
    expect(verify.status).toBe(200);
    expect(verify.body).toMatchObject({ ok: true, problems: [] });

    // by hand with standard tools, as a plain dump: zstd -dc | pg_restore
    const byHand = newDatabase('pgdir_byhand');
    await sql('postgres', `CREATE DATABASE ${byHand}`);
    execFileSync('bash', ['-c', 'set -o pipefail; zstd -dc "$1" | pg_restore --exit-on-error -d "$2"', '_', stored(backup.artifactKey), databaseUrl(byHand)]);
    expect(await tableChecksums(byHand)).toEqual(expected);
  });

  it('stores what a plain dump stores: the same table digests, and an artifact that equals pg_dump -Fc -Z0 but for its creation date', async () => {
    const [parallel, plain] = [
      await backupAndWait(service, { engine: 'postgres', source: { url: databaseUrl(source), jobs: 3 } }),
      await backupAndWait(service, { engine: 'postgres', source: { url: databaseUrl(source) } }),
    ];
    expect([parallel.status, plain.status]).toEqual(['COMPLETED', 'COMPLETED']);
    expect(parallel.tables.length).toBeGreaterThan(4);
    expect(parallel.tables).toEqual(plain.tables);
    expect(parallel.sizeBytes).toBe(plain.sizeBytes);
    const raw = (b: Record<string, any>) => execFileSync('zstd', ['-dc', stored(b.artifactKey)], { maxBuffer: 256 << 20 });
    const [a, b] = [raw(parallel), raw(plain)];
    // header: "PGDMP", version (3), intSize, offSize, format, compression (an int before 1.15), then 7 date ints
    const dateEnd = 11 + (a[6] < 15 ? 5 : 1) + 7 * 5;
    expect(a.subarray(dateEnd).equals(b.subarray(dateEnd))).toBe(true);
    expect(a.subarray(0, 11).equals(b.subarray(0, 11))).toBe(true);
  });

  it('refuses jobs that are not an integer from 1 to 16 with 400 naming source.jobs', async () => {
    for (const [index, jobs] of [0, 17, -1, 1.5, '2', true, [2], {}].entries()) {
      for (const [route, body] of [
        ['backups', { engine: 'postgres', source: { url: databaseUrl(source), jobs } }],
        ['backup-plans', { name: `pgdir-${tag}-${index}`, engine: 'postgres', source: { url: databaseUrl(source), jobs }, schedule: '0 2 * * *' }],
      ] as const) {
        const res = await service.http().post(`${API}/${route}`).set('X-API-Key', ADMIN_KEY).send(body);
        expect({ jobs, route, status: res.status }).toEqual({ jobs, route, status: 400 });
        expect(res.body.code).toBe('VALIDATION_FAILED');
        expect(res.body.details).toContainEqual({ field: 'source.jobs', message: 'jobs must be an integer from 1 to 16' });
      }
    }
    // the bounds are accepted (a plan: nothing runs, so no 17 connections to the shared test server)
    for (const jobs of [1, 16]) {
      const ok = await service
        .http()
        .post(`${API}/backup-plans`)
        .set('X-API-Key', ADMIN_KEY)
        .send({ name: `pgdir-${tag}-ok-${jobs}`, engine: 'postgres', source: { url: databaseUrl(source), jobs }, schedule: '0 2 * * *' });
      expect({ jobs, status: ok.status }).toEqual({ jobs, status: 201 });
      expect(ok.body.source.jobs).toBe(jobs);
    }
  });

  it("a failed parallel dump is recorded with pg_dump's reason, stores nothing and leaves no scratch directory", async () => {
    const failed = await backupAndWait(service, { engine: 'postgres', source: { url: databaseUrl('pgdir_no_such_database'), jobs: 2 } });
    expect(failed.status).toBe('FAILED');
    expect(failed.error).toMatch(/pg_dump failed .*pgdir_no_such_database/s);
    expect(existsSync(stored(failed.id))).toBe(false);
    expect(scratchLeft()).toEqual([]);
  });

  it('records the same globals object as a plain dump; the restore creates the missing roles, owners and grants', async () => {
    await sql('postgres', `CREATE ROLE ${roles.owner} LOGIN`);
    await sql('postgres', `CREATE ROLE ${roles.reader} NOLOGIN`);
    const owned = await createDatabase('pgdir_roles_src');
    databases.push(owned); // dropped below; listed so that a failure before that leaves nothing behind
    await sql('postgres', `ALTER DATABASE ${owned} OWNER TO ${roles.owner}`);
    await sql(
      owned,
      `SET ROLE ${roles.owner}; CREATE TABLE orders (id int PRIMARY KEY, item text); INSERT INTO orders SELECT g, 'item ' || g FROM generate_series(1, 300) g; GRANT SELECT ON orders TO ${roles.reader}`,
    );
    const parallel = await backupAndWait(service, { engine: 'postgres', source: { url: databaseUrl(owned), jobs: 2 } });
    const plain = await backupAndWait(service, { engine: 'postgres', source: { url: databaseUrl(owned) } });
    const globals = (b: Record<string, any>) => {
      const object = b.objects.find((o: { role: string }) => o.role === 'globals');
      return execFileSync('zstd', ['-dc', stored(object.key)], { encoding: 'utf8' });
    };
    expect(globals(parallel)).toContain(`CREATE ROLE "${roles.reader}" WITH`);
    expect(globals(parallel)).toEqual(globals(plain));
    const expected = await tableChecksums(owned);
    // the roles go (with the source database): the restore creates them again from the globals object
    await dropDatabase(owned);
    await sql('postgres', `DROP ROLE ${roles.reader}`);
    await sql('postgres', `DROP ROLE ${roles.owner}`);

    const target = newDatabase('pgdir_roles_restored');
    const recovery = await recoverAndWait(service, { backupId: parallel.id, type: 'FULL', target: { url: databaseUrl(target), create: true } });
    expect(recovery.status).toBe('COMPLETED');
    expect(recovery.warnings).toEqual([
      `created roles the database needs: ${roles.owner}, ${roles.reader} (without passwords unless the backup recorded them)`,
    ]);
    expect(await tableChecksums(target)).toEqual(expected);
    expect(await sql('postgres', `SELECT pg_get_userbyid(datdba) AS owner FROM pg_database WHERE datname = $1`, [target])).toEqual([{ owner: roles.owner }]);
    expect(
      await sql(target, `SELECT tableowner, has_table_privilege($1, 'orders', 'SELECT') AS reads FROM pg_tables WHERE tablename = 'orders'`, [roles.reader]),
    ).toEqual([{ tableowner: roles.owner, reads: true }]);
  });
});

describe('postgres parallel dump: a service killed mid-dump (kill -9)', () => {
  let meta: string;
  let source: string;
  const dataDir = mkdtempSync(join(tmpdir(), 'dr-pgdir-'));
  const scratch = join(dataDir, 'scratch');

  beforeAll(async () => {
    meta = await createDatabase('pgdir_meta');
    source = await createDatabase('pgdir_kill_src');
    execFileSync('pgbench', ['-i', '-s', '10', '-q', databaseUrl(source)], { stdio: 'ignore' });
  });

  afterAll(async () => {
    for (const db of [meta, source]) if (db) await dropDatabase(db);
    rmSync(dataDir, { recursive: true, force: true });
  });

  it('the next start marks the backup FAILED and removes its scratch directory', async () => {
    const env = { DATABASE_URL: databaseUrl(meta), DR_DATA_DIR: dataDir, DR_ADMIN_API_KEY: ADMIN_KEY, DR_JOB_LEASE_SECONDS: '3' };
    const first = await startServerProcess(env);
    const started = await call(first, ADMIN_KEY, 'POST', `${API}/backups`, { engine: 'postgres', source: { url: databaseUrl(source), jobs: 2 } });
    expect(started.status).toBe(202);
    const dir = join(scratch, `${started.body.id}.pgdir`);
    let dumping = false;
    for (let i = 0; i < 1200 && !dumping; i++) {
      dumping = existsSync(dir) && readdirSync(dir).some((n) => n.endsWith('.dat'));
      if (!dumping) await new Promise((r) => setTimeout(r, 25));
    }
    expect(dumping).toBe(true);
    await first.kill9();
    expect(existsSync(dir)).toBe(true);

    await new Promise((r) => setTimeout(r, 3500)); // let the dead process's lease expire
    const second = await startServerProcess(env);
    try {
      const after = await call(second, ADMIN_KEY, 'GET', `${API}/backups/${started.body.id}`);
      expect(after.body).toMatchObject({ status: 'FAILED', error: expect.stringMatching(/interrupted: the process running this backup stopped/) });
      expect(existsSync(dir)).toBe(false);
      expect(existsSync(join(dataDir, 'backups', started.body.id))).toBe(false);
    } finally {
      await second.stop();
    }
  });
});
