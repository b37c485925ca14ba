import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Client } from 'pg';
import { backupAndWait, recoverAndWait, startService, TestService } from '../support/app';
import { createDatabase, databaseUrl, dropDatabase, sql, tableChecksums } from '../support/database';
import { openDir, startCluster, TestCluster } from '../support/pg-cluster';

/**
 * The DR plan's "server failure": a database backed up on one server (the local PostgreSQL) restored onto a new,
 * empty one (a cluster this test makes with initdb), where none of its roles exist. Real pg_dump, psql, pg_restore.
 */
describe("postgres: restore onto a fresh server (roles from the backup's globals)", () => {
  const tag = randomBytes(3).toString('hex');
  const roles = { app: `c_app_${tag}`, ro: `c_ro_${tag}`, login: `c_login_${tag}` };
  let service: TestService;
  let source: string;
  let fresh: TestCluster;
  let root: string;
  let backup: Record<string, any>;

  const freshUrl = (db: string) => `postgresql://postgres@127.0.0.1:${fresh.port}/${db}`;
  const onFresh = async <T = Record<string, any>>(db: string, text: string, params: unknown[] = []): Promise<T[]> => {
    const client = new Client({ host: '127.0.0.1', port: fresh.port, user: 'postgres', database: db });
    await client.connect();
    try {
      return (await client.query(text, params)).rows as T[];
    } finally {
      await client.end();
    }
  };
  const freshDatabases = async () =>
    (await onFresh<{ datname: string }>('postgres', 'SELECT datname FROM pg_database WHERE NOT datistemplate ORDER BY 1')).map((r) => r.datname);
  const freshRoles = async () =>
    (await onFresh<{ rolname: string }>('postgres', 'SELECT rolname FROM pg_roles WHERE rolname = ANY($1) ORDER BY 1', [Object.values(roles)])).map(
      (r) => r.rolname,
    );

  beforeAll(async () => {
    service = await startService();
    root = mkdtempSync(join(tmpdir(), 'dr-fresh-'));
    openDir(root);
    fresh = await startCluster(root, 'fresh', []);
    // the source: a database owned by c_app, a schema and table of c_app, read access for c_ro (group role) whose
    // member c_login logs in; role-wide and per-database settings; CONNECT only for c_ro
    await sql('postgres', `CREATE ROLE ${roles.app} LOGIN CONNECTION LIMIT 7`);
    await sql('postgres', `CREATE ROLE ${roles.ro} NOLOGIN`);
    await sql('postgres', `CREATE ROLE ${roles.login} LOGIN IN ROLE ${roles.ro}`);
    await sql('postgres', `ALTER ROLE ${roles.app} SET work_mem = '8MB'`);
    source = await createDatabase('drt_fresh_src');
    await sql('postgres', `ALTER DATABASE ${source} OWNER TO ${roles.app}`);
    await sql(source, `CREATE SCHEMA app AUTHORIZATION ${roles.app}`);
    await sql(
      source,
      `SET ROLE ${roles.app}; CREATE TABLE app.orders (id int PRIMARY KEY, item text); INSERT INTO app.orders SELECT g, 'item ' || g FROM generate_series(1, 500) g;
      GRANT USAGE ON SCHEMA app TO ${roles.ro}; GRANT SELECT ON app.orders TO ${roles.ro}`,
    );
    await sql(source, `REVOKE CONNECT ON DATABASE ${source} FROM PUBLIC; GRANT CONNECT ON DATABASE ${source} TO ${roles.ro}`);
    await sql(source, `ALTER ROLE ${roles.ro} IN DATABASE ${source} SET search_path = app, public`);
    backup = await backupAndWait(service, { engine: 'postgres', source: { url: databaseUrl(source) } });
  });

  afterAll(async () => {
    await service?.close();
    fresh?.stop();
    if (root) rmSync(root, { recursive: true, force: true });
    if (source) await dropDatabase(source);
    for (const role of [roles.login, roles.ro, roles.app]) await sql('postgres', `DROP ROLE IF EXISTS ${role}`).catch(() => undefined);
  });

  it('records the roles the database needs as a signed globals object, without password hashes', async () => {
    expect(backup.status).toBe('COMPLETED');
    const globals = backup.objects.find((o: { role: string }) => o.role === 'globals');
    expect(globals).toMatchObject({ key: `${backup.id}/globals.sql.zst`, contentType: 'application/sql' });
    const manifest = JSON.parse(readFileSync(join(service.dataDir, 'backups', backup.manifestKey), 'utf8'));
    expect(manifest.objects).toContainEqual(globals);
    const script = execFileSync('zstd', ['-dc', join(service.dataDir, 'backups', globals.key)], { encoding: 'utf8' });
    for (const role of Object.values(roles)) expect(script).toContain(`CREATE ROLE "${role}" WITH`);
    expect(script).toContain(`GRANT "${roles.ro}" TO "${roles.login}";`);
    expect(script).not.toMatch(/PASSWORD|SCRAM-SHA-256|md5[0-9a-f]{32}/);
  });

  it('with roles "none" and no owner mapping fails on the missing role, and drops the database it created', async () => {
    const recovery = await recoverAndWait(service, { backupId: backup.id, type: 'FULL', target: { url: freshUrl('noroles'), create: true, roles: 'none' } });
    expect(recovery.status).toBe('FAILED');
    expect(recovery.error).toMatch(new RegExp(`role "${roles.app}" does not exist`));
    expect(await freshDatabases()).toEqual(['postgres']);
    expect(await freshRoles()).toEqual([]);
  });

  it('a restore that fails after creating roles drops the database and those roles', async () => {
    // the fresh server's template1 already has a schema "app": pg_restore's CREATE SCHEMA app fails
    await onFresh('template1', 'CREATE SCHEMA app');
    try {
      const recovery = await recoverAndWait(service, { backupId: backup.id, type: 'FULL', target: { url: freshUrl('clash'), create: true } });
      expect(recovery.status).toBe('FAILED');
      expect(recovery.error).toMatch(/schema "app" already exists/);
    } finally {
      await onFresh('template1', 'DROP SCHEMA app');
    }
    expect(await freshDatabases()).toEqual(['postgres']);
    expect(await freshRoles()).toEqual([]);
  });

  it('a tampered globals object fails the restore before anything is created', async () => {
    const path = join(service.dataDir, 'backups', `${backup.id}/globals.sql.zst`);
    const original = readFileSync(path);
    const evil = execFileSync('zstd', ['-c'], { input: `CREATE ROLE evil_${tag} SUPERUSER LOGIN;\n` });
    writeFileSync(path, evil);
    try {
      const recovery = await recoverAndWait(service, { backupId: backup.id, type: 'FULL', target: { url: freshUrl('tampered'), create: true } });
      expect(recovery.status).toBe('FAILED');
      expect(recovery.error).toMatch(/sha256|SHA-256|checksum|size mismatch/i);
    } finally {
      writeFileSync(path, original);
    }
    expect(await freshDatabases()).toEqual(['postgres']);
    expect(await onFresh('postgres', 'SELECT rolname FROM pg_roles WHERE rolname = $1', [`evil_${tag}`])).toEqual([]);
  });

  it('maps every owner to target.owner without creating roles or restoring grants (roles "none", privileges "skip")', async () => {
    await onFresh('postgres', 'CREATE ROLE site_owner NOLOGIN');
    const recovery = await recoverAndWait(service, {
      backupId: backup.id,
      type: 'FULL',
      target: { url: freshUrl('mapped'), create: true, roles: 'none', owner: 'site_owner', privileges: 'skip' },
    });
    expect(recovery).toMatchObject({ status: 'COMPLETED', error: null });
    expect(
      await onFresh(
        'mapped',
        `SELECT pg_get_userbyid(d.datdba) AS db, (SELECT tableowner FROM pg_tables WHERE tablename = 'orders') AS t,
      (SELECT pg_get_userbyid(nspowner) FROM pg_namespace WHERE nspname = 'app') AS s, (SELECT relacl::text FROM pg_class WHERE relname = 'orders') AS acl
      FROM pg_database d WHERE datname = 'mapped'`,
      ),
    ).toEqual([{ db: 'site_owner', t: 'site_owner', s: 'site_owner', acl: null }]);
    expect(await freshRoles()).toEqual([]);
    const expected = await tableChecksums(source);
    const client = new Client({ host: '127.0.0.1', port: fresh.port, user: 'postgres', database: 'mapped' });
    await client.connect();
    const [{ n }] = (await client.query('SELECT count(*)::int AS n FROM app.orders')).rows;
    await client.end();
    expect(n).toBe(expected['app.orders'].rows);
    const refused = await service
      .http()
      .post('/api/v1/disaster-recovery/recovery')
      .set('X-API-Key', 'test-admin-key-0123456789abcdefghij')
      .send({ backupId: backup.id, type: 'FULL', target: { url: freshUrl('x'), create: true, owner: 'nobody_here' } });
    expect(refused.status).toBe(400);
    expect(refused.body.details).toEqual([{ field: 'target.owner', message: 'role "nobody_here" does not exist on the target server' }]);
  });

  it('with create: true creates the missing roles, then restores owners, grants, memberships and settings as on the source', async () => {
    const recovery = await recoverAndWait(service, { backupId: backup.id, type: 'FULL', target: { url: freshUrl('restored'), create: true } });
    expect(recovery).toMatchObject({ status: 'COMPLETED', error: null });
    expect(recovery.warnings).toEqual([expect.stringMatching(new RegExp(`created roles the database needs: .*${roles.app}`))]);
    expect(await freshRoles()).toEqual(Object.values(roles).sort());
    const [r] = await onFresh(
      'restored',
      `SELECT
        (SELECT rolcanlogin FROM pg_roles WHERE rolname = $1) AS app_login, (SELECT rolconnlimit FROM pg_roles WHERE rolname = $1) AS app_limit,
        (SELECT rolcanlogin FROM pg_roles WHERE rolname = $2) AS ro_login, pg_has_role($3, $2, 'MEMBER') AS login_in_ro,
        (SELECT rolpassword IS NULL FROM pg_authid WHERE rolname = $1) AS no_password,
        (SELECT pg_get_userbyid(datdba) FROM pg_database WHERE datname = 'restored') AS db_owner,
        (SELECT tableowner FROM pg_tables WHERE tablename = 'orders') AS table_owner,
        has_table_privilege($2, 'app.orders', 'SELECT') AS ro_select, has_table_privilege($2, 'app.orders', 'INSERT') AS ro_insert,
        has_table_privilege($3, 'app.orders', 'SELECT') AS login_select,
        has_database_privilege($2, 'restored', 'CONNECT') AS ro_connect, has_database_privilege('site_owner', 'restored', 'CONNECT') AS public_connect`,
      [roles.app, roles.ro, roles.login],
    );
    expect(r).toEqual({
      app_login: true,
      app_limit: 7,
      ro_login: false,
      login_in_ro: true,
      no_password: true,
      db_owner: roles.app,
      table_owner: roles.app,
      ro_select: true,
      ro_insert: false,
      login_select: true,
      ro_connect: true,
      public_connect: false,
    });
    const settings = await onFresh<{ role: string; db: string | null; config: string[] }>(
      'postgres',
      `SELECT pg_get_userbyid(setrole) AS role, (SELECT datname FROM pg_database WHERE oid = setdatabase) AS db, setconfig AS config
         FROM pg_db_role_setting WHERE setrole <> 0 ORDER BY 1`,
    );
    expect(settings).toEqual(
      expect.arrayContaining([
        { role: roles.app, db: null, config: ['work_mem=8MB'] },
        { role: roles.ro, db: 'restored', config: ['search_path=app, public'] },
      ]),
    );
    const client = new Client({ host: '127.0.0.1', port: fresh.port, user: 'postgres', database: 'restored' });
    await client.connect();
    const [{ n }] = (await client.query('SELECT count(*)::int AS n FROM app.orders')).rows;
    await client.end();
    expect(n).toBe(500);
  });

  it('restores by hand with standard tools: createdb, zstd -dc globals | psql, then pg_restore', async () => {
    const dir = join(service.dataDir, 'backups');
    // a second fresh database on the (now populated) fresh server: existing roles are left as they are
    execFileSync('bash', [
      '-c',
      `set -euo pipefail
      createdb -h 127.0.0.1 -p "$1" -U postgres byhand
      zstd -dc "$2" | psql -X -q -At -v ON_ERROR_STOP=1 --single-transaction -h 127.0.0.1 -p "$1" -U postgres -d byhand -f -
      zstd -dc "$3" | pg_restore --exit-on-error -h 127.0.0.1 -p "$1" -U postgres -d byhand`,
      '_',
      String(fresh.port),
      join(dir, `${backup.id}/globals.sql.zst`),
      join(dir, backup.artifactKey),
    ]);
    expect(
      await onFresh(
        'byhand',
        `SELECT (SELECT tableowner FROM pg_tables WHERE tablename = 'orders') AS owner, has_table_privilege($1, 'app.orders', 'SELECT') AS ro`,
        [roles.ro],
      ),
    ).toEqual([{ owner: roles.app, ro: true }]);
  });
});
