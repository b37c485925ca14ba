import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { backupAndWait, recoverAndWait, startService, TestService } from '../support/app';
import { dropMysqlObjects, mysqlAvailable, mysqlQuery, mysqlUrl, withMysql } from '../support/mariadb';

const available = mysqlAvailable();
if (!available && process.env.CI) {
  it('MariaDB is reachable in CI', () => {
    throw new Error('no MariaDB/MySQL server on 127.0.0.1:3306 (root, no password) in CI: .ci/run must install and start it');
  });
}

/**
 * The DR plan's "server failure" for MySQL/MariaDB: the accounts a database's grants name are gone from the server
 * (dropped by the test: the local MariaDB, uniquely named accounts) and the backup brings them back. Real
 * mariadb-dump and mariadb.
 */
(available ? describe : describe.skip)("mysql: restore onto a server without the database's accounts", () => {
  const run = `${Date.now().toString(36)}${randomBytes(2).toString('hex')}`;
  const prefix = `drt_myg_${run}`;
  const writer = `drt_gw_${run}`;
  const reader = `drt_gr_${run}`;
  const source = `${prefix}_src`;
  const databases = [source, `${prefix}_restored`, `${prefix}_broken`, `${prefix}_partial`];
  let service: TestService;
  let backup: Record<string, any>;
  let partial: Record<string, any>;
  const accounts = async () =>
    (await mysqlQuery<{ u: string }>("SELECT CONCAT(User, '@', Host) AS u FROM mysql.user WHERE User IN (?, ?) ORDER BY 1", [writer, reader])).map((r) => r.u);
  const dropAccounts = () =>
    withMysql(async (c) => {
      await c.query(`DROP USER IF EXISTS ?@'%'`, [writer]);
      await c.query(`DROP USER IF EXISTS ?@'localhost'`, [reader]);
    });

  beforeAll(async () => {
    service = await startService();
    await withMysql(async (c) => {
      await c.query(`CREATE DATABASE \`${source}\``);
      await c.query(`CREATE TABLE \`${source}\`.orders (id INT PRIMARY KEY, item VARCHAR(50)); INSERT INTO \`${source}\`.orders VALUES (1, 'a'), (2, 'b')`);
      await c.query(`CREATE VIEW \`${source}\`.recent AS SELECT id FROM \`${source}\`.orders`);
      await c.query(`CREATE USER ?@'%' IDENTIFIED BY 'w-secret-1'`, [writer]);
      await c.query(`CREATE USER ?@'localhost' IDENTIFIED BY 'r-secret-2'`, [reader]);
      await c.query(`GRANT SELECT, INSERT, UPDATE ON \`${source}\`.* TO ?@'%'`, [writer]);
      await c.query(`GRANT SELECT ON \`${source}\`.orders TO ?@'localhost' WITH GRANT OPTION`, [reader]);
      await c.query(`GRANT UPDATE (item) ON \`${source}\`.orders TO ?@'localhost'`, [reader]);
      await c.query(`GRANT SELECT (id) ON \`${source}\`.recent TO ?@'localhost'`, [reader]);
    });
    backup = await backupAndWait(service, { engine: 'mysql', source: { url: mysqlUrl(source) } });
    // only the table: the reader's column grant on the view "recent" then names a table a restore of it lacks
    partial = await backupAndWait(service, { engine: 'mysql', source: { url: mysqlUrl(source), tables: ['orders'] } });
  });

  afterAll(async () => {
    await service?.close();
    await dropMysqlObjects(databases);
    await dropAccounts().catch(() => undefined);
  });

  it('records the accounts and their grants on the database as a globals object, without password hashes', () => {
    expect(backup.status).toBe('COMPLETED');
    const globals = backup.objects.find((o: { role: string }) => o.role === 'globals');
    expect(globals).toMatchObject({ key: `${backup.id}/globals.sql.zst`, contentType: 'application/sql' });
    const script = execFileSync('zstd', ['-dc', join(service.dataDir, 'backups', globals.key)], { encoding: 'utf8' });
    expect(script).toContain(`CREATE USER IF NOT EXISTS '${writer}'@'%' ACCOUNT LOCK;`);
    // SHOW GRANTS' lines, naming the client's default database instead of the source's
    expect(script).toContain(`GRANT SELECT, INSERT, UPDATE ON * TO \`${writer}\`@\`%\`;`);
    expect(script).toContain(`GRANT SELECT, UPDATE (\`item\`) ON \`orders\` TO \`${reader}\`@\`localhost\` WITH GRANT OPTION;`);
    expect(script).not.toContain(source);
    const statements = script.split('\n').filter((l) => !l.startsWith('--'));
    expect(statements.join('\n')).not.toMatch(/IDENTIFIED|PASSWORD|secret|\*[0-9A-F]{40}/);
  });

  it('a restore whose dump fails drops the database it created', async () => {
    await dropAccounts();
    const path = join(service.dataDir, 'backups', backup.artifactKey);
    const original = readFileSync(path);
    const flipped = Buffer.from(original);
    flipped[Math.floor(flipped.length / 2)] ^= 0xff;
    writeFileSync(path, flipped);
    try {
      const recovery = await recoverAndWait(service, { backupId: backup.id, type: 'FULL', target: { url: mysqlUrl(`${prefix}_broken`), create: true } });
      expect(recovery.status).toBe('FAILED');
    } finally {
      writeFileSync(path, original);
    }
    expect(await mysqlQuery('SELECT 1 FROM information_schema.SCHEMATA WHERE SCHEMA_NAME = ?', [`${prefix}_broken`])).toEqual([]);
    expect(await accounts()).toEqual([]);
  });

  it('a restore whose grants fail after creating accounts drops the database and those accounts', async () => {
    expect(partial.status).toBe('COMPLETED');
    await dropAccounts();
    const recovery = await recoverAndWait(service, { backupId: partial.id, type: 'FULL', target: { url: mysqlUrl(`${prefix}_partial`), create: true } });
    expect(recovery.status).toBe('FAILED');
    expect(recovery.error).toMatch(/globals.*recent/s);
    expect(await mysqlQuery('SELECT 1 FROM information_schema.SCHEMATA WHERE SCHEMA_NAME = ?', [`${prefix}_partial`])).toEqual([]);
    expect(await accounts()).toEqual([]);
  });

  it('creates the missing accounts, locked, and grants their privileges on the restored database', async () => {
    await dropAccounts();
    const target = `${prefix}_restored`;
    const recovery = await recoverAndWait(service, { backupId: backup.id, type: 'FULL', target: { url: mysqlUrl(target), create: true } });
    expect(recovery).toMatchObject({ status: 'COMPLETED', error: null });
    expect(recovery.warnings).toEqual([`created accounts the database needs, locked and without password: '${reader}'@'localhost', '${writer}'@'%'`]);
    expect(await accounts()).toEqual([`${reader}@localhost`, `${writer}@%`]);
    const grants = async (user: string, host: string) =>
      (await mysqlQuery<Record<string, string>>(`SHOW GRANTS FOR ?@?`, [user, host])).map((r) => Object.values(r)[0]);
    expect(await grants(writer, '%')).toContain(`GRANT SELECT, INSERT, UPDATE ON \`${target}\`.* TO \`${writer}\`@\`%\``);
    expect(await grants(reader, 'localhost')).toEqual(
      expect.arrayContaining([
        `GRANT SELECT, UPDATE (\`item\`) ON \`${target}\`.\`orders\` TO \`${reader}\`@\`localhost\` WITH GRANT OPTION`,
        `GRANT SELECT (\`id\`) ON \`${target}\`.\`recent\` TO \`${reader}\`@\`localhost\``,
      ]),
    );
    const [created] = await mysqlQuery<Record<string, string>>(`SHOW CREATE USER ?@'%'`, [writer]);
    expect(Object.values(created)[0]).toMatch(/ACCOUNT LOCK/);
    expect(await mysqlQuery(`SELECT id, item FROM \`${target}\`.orders ORDER BY id`)).toEqual([
      { id: 1, item: 'a' },
      { id: 2, item: 'b' },
    ]);
  });
});
