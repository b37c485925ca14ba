import { execFileSync, spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { ADMIN_KEY, API, backupAndWait, recoverAndWait, startService, TestService } from '../support/app';
import { createDatabase, databaseUrl, dropDatabase, sql } from '../support/database';
import { dropMysqlObjects, mysqlAvailable, mysqlQuery, mysqlTableChecksums, mysqlUrl, withMysql } from '../support/mariadb';

const available = mysqlAvailable();

if (!available && process.env.CI) {
  // CI has MariaDB (.ci/run installs and starts it): there, an unreachable server must not quietly skip these tests.
  it('MariaDB is reachable in CI', () => {
    throw new Error('no MariaDB/MySQL server on 127.0.0.1:3306 (root, no password) in CI: .ci/run must install and start it');
  });
}

/** The ordered MD5 over the text and blob columns that hold quotes, backslashes, newlines, NUL and NULLs. */
async function trickyColumnsMd5(database: string): Promise<string[]> {
  return mysqlQuery<{ md5: string }>(
    `SELECT MD5(GROUP_CONCAT(MD5(IFNULL(note, 'null')) ORDER BY id SEPARATOR '')) AS md5 FROM \`${database}\`.customers
     UNION ALL SELECT MD5(GROUP_CONCAT(MD5(data) ORDER BY id SEPARATOR '')) FROM \`${database}\`.files`,
  ).then((rows) => rows.map((r) => r.md5));
}

(available ? describe : describe.skip)('mysql backups (real mariadb-dump / mariadb on the local MariaDB)', () => {
  let service: TestService;
  // Unique names: other people's test runs share this server.
  const run = `${Date.now().toString(36)}${randomBytes(3).toString('hex')}`;
  const prefix = `drt_my_${run}`;
  const user = `drt_u_${run}`;
  const password = `pw-${randomBytes(12).toString('hex')}-'"\\`;
  const source = `${prefix}_src`;
  const databases = [source];
  const target = (name: string) => {
    const db = `${prefix}_${name}`;
    databases.push(db);
    return db;
  };
  const asUser = (database: string) => ({ url: mysqlUrl(database, user), passwordSecret: 'env:DRS_TEST_MYSQL_PASSWORD' });
  let backup: Record<string, any>;

  beforeAll(async () => {
    service = await startService({ DRS_TEST_MYSQL_PASSWORD: password });
    await withMysql(async (c) => {
      await c.query(`CREATE USER ?@'%' IDENTIFIED BY ?`, [user, password]);
      // its own databases, and the scratch databases of deep verification (dr_verify_*)
      await c.query(`GRANT ALL PRIVILEGES ON \`${prefix.replace(/_/g, '\\_')}\\_%\`.* TO ?@'%'`, [user]);
      await c.query(`GRANT ALL PRIVILEGES ON \`dr\\_verify\\_%\`.* TO ?@'%'`, [user]);
      await c.query(`CREATE DATABASE \`${source}\` CHARACTER SET utf8mb4`);
    });
    // created by the user that backs up and restores: it is the definer of the view, trigger and procedure (a
    // restore of objects defined by another user needs SUPER / SET USER, as with any mysqldump)
    await withMysql(
      async (c) => {
        await c.query(`
        CREATE TABLE customers (
          id INT PRIMARY KEY AUTO_INCREMENT, name VARCHAR(100) NOT NULL, note TEXT NULL,
          created DATETIME(6) NOT NULL, balance DECIMAL(12,2), score DOUBLE, flags SET('a','b','c')
        ) ENGINE=InnoDB;
        INSERT INTO customers (name, note, created, balance, score, flags)
          SELECT CONCAT('customer ', seq, ' ünïcödé 🙂'),
                 IF(seq % 7 = 0, NULL, CONCAT('it''s "quoted" \\\\ back\\\\slash; ), (', CHAR(10), 'line ', seq, CHAR(13), CHAR(9), CHAR(0), ' end')),
                 '2024-01-01 00:00:00' + INTERVAL seq MINUTE + INTERVAL seq MICROSECOND, seq * 1.25 - 1000, seq / 7, IF(seq % 3 = 0, 'a,c', '')
            FROM seq_1_to_3000;
        CREATE TABLE files (id INT PRIMARY KEY, name VARCHAR(50), data MEDIUMBLOB, sha CHAR(64)) ENGINE=InnoDB;
        INSERT INTO files SELECT seq, CONCAT('f', seq), REPEAT(UNHEX(SHA2(seq, 512)), 1 + seq % 64), NULL FROM seq_1_to_300;
        UPDATE files SET sha = SHA2(data, 256);
        INSERT INTO files VALUES (301, 'empty', '', NULL), (302, 'null', NULL, NULL), (303, 'all bytes', (SELECT GROUP_CONCAT(CHAR(seq) SEPARATOR '') FROM seq_0_to_255), NULL);
        CREATE TABLE orders (
          id INT PRIMARY KEY, customer_id INT NOT NULL, amount DECIMAL(10,2), status ENUM('new','paid','shipped'), payload JSON,
          FOREIGN KEY (customer_id) REFERENCES customers(id)
        ) ENGINE=InnoDB;
        CREATE TABLE order_log (id INT PRIMARY KEY AUTO_INCREMENT, order_id INT, at TIMESTAMP DEFAULT '2024-01-01 00:00:00') ENGINE=InnoDB;
        CREATE TRIGGER orders_log AFTER INSERT ON orders FOR EACH ROW INSERT INTO order_log (order_id) VALUES (NEW.id);
        INSERT INTO orders SELECT seq, 1 + seq % 3000, seq % 500 + 0.99, ELT(1 + seq % 3, 'new', 'paid', 'shipped'),
          JSON_OBJECT('n', seq, 'text', CONCAT('a "json" \\\\ value ', seq)) FROM seq_1_to_4000;
        CREATE TABLE empty_one (x INT) ENGINE=InnoDB;
        CREATE TABLE legacy (id INT PRIMARY KEY, v VARCHAR(20)) ENGINE=MyISAM;
        INSERT INTO legacy SELECT seq, CONCAT('v', seq) FROM seq_1_to_50;
        CREATE VIEW customer_totals AS SELECT c.id, COUNT(o.id) AS orders FROM customers c LEFT JOIN orders o ON o.customer_id = c.id GROUP BY c.id;
        CREATE EVENT purge_log ON SCHEDULE EVERY 1 DAY DISABLE DO DELETE FROM order_log WHERE order_id < 0;
        CREATE PROCEDURE add_log(IN n INT)
        BEGIN
        INSERT INTO \`order_log\` VALUES (NULL, n, '2024-01-01 00:00:00');
        END;
      `);
      },
      source,
      { user, password },
    );
  }, 60_000);

  afterAll(async () => {
    await service?.close();
    await dropMysqlObjects(databases, user);
  });

  it('backs up with a named password, restores into a new database with identical rows and checksums, and deep-verifies', async () => {
    const started = Date.now();
    backup = await backupAndWait(service, { engine: 'mysql', source: asUser(source) });
    const backupMs = Date.now() - started;
    expect(backup).toMatchObject({ status: 'COMPLETED', engine: 'mysql', error: null });
    expect(backup.source).toEqual(asUser(source));
    expect(JSON.stringify(backup)).not.toContain(password);
    // MyISAM is outside the --single-transaction snapshot: recorded, not fatal
    // the backup user may not read the mysql schema: no accounts captured, and the backup says so
    expect(backup.warnings).toEqual([
      expect.stringContaining('legacy (MyISAM)'),
      expect.stringMatching(/^cannot capture the accounts the database needs \(globals\): SELECT command denied .*`mysql`\.`db`/),
    ]);

    const expected = await mysqlTableChecksums(source);
    expect(Object.keys(expected).sort()).toEqual(['customers', 'empty_one', 'files', 'legacy', 'order_log', 'orders']);
    expect(expected.orders.rows).toBe(4000);
    expect(expected.order_log.rows).toBe(4000);
    // the row counts recorded from the dump stream are the tables' row counts
    const recorded = Object.fromEntries(backup.tables.map((t: { name: string; rows: number }) => [t.name, t.rows]));
    expect(recorded).toEqual(Object.fromEntries(Object.entries(expected).map(([name, t]) => [name, t.rows])));
    expect(backup.tables.every((t: { sha256: string }) => /^[0-9a-f]{64}$/.test(t.sha256))).toBe(true);

    // the details object records the tools and the server version
    const details = backup.objects.find((o: { role: string }) => o.role === 'details');
    const header = JSON.parse(
      execFileSync('zstd', ['-dc', join(service.dataDir, 'backups', details.key)])
        .toString()
        .split('\n')[0],
    );
    expect(header.tools).toMatchObject({ 'mariadb-dump': expect.stringContaining('MariaDB'), 'mysql-server': expect.stringMatching(/^\d+\.\d+/) });

    const copy = target('copy');
    const restoreStarted = Date.now();
    const recovery = await recoverAndWait(service, { backupId: backup.id, type: 'FULL', target: { ...asUser(copy), create: true } });
    const restoreMs = Date.now() - restoreStarted;
    expect(recovery).toMatchObject({ status: 'COMPLETED', error: null });
    expect(await mysqlTableChecksums(copy)).toEqual(expected);
    expect(await trickyColumnsMd5(copy)).toEqual(await trickyColumnsMd5(source));
    // the view, the trigger, the procedure and the event came along
    expect(await mysqlQuery(`SELECT COUNT(*) AS n FROM \`${copy}\`.customer_totals`)).toEqual([{ n: 3000 }]);
    const routines = await mysqlQuery(`SELECT ROUTINE_NAME AS name FROM information_schema.ROUTINES WHERE ROUTINE_SCHEMA = ?`, [copy]);
    const triggers = await mysqlQuery(`SELECT TRIGGER_NAME AS name FROM information_schema.TRIGGERS WHERE TRIGGER_SCHEMA = ?`, [copy]);
    const events = await mysqlQuery(`SELECT EVENT_NAME AS name FROM information_schema.EVENTS WHERE EVENT_SCHEMA = ?`, [copy]);
    expect([routines, triggers, events]).toEqual([[{ name: 'add_log' }], [{ name: 'orders_log' }], [{ name: 'purge_log' }]]);

    const verify = async () =>
      (await service.http().post(`${API}/backups/${backup.id}/verify`).set('X-API-Key', ADMIN_KEY).send({ mode: 'restore', waitSeconds: 120 })).body;
    const ok = await verify();
    expect(ok).toMatchObject({ status: 'COMPLETED', ok: true, problems: [] });
    expect(ok.details.restore).toMatchObject({ tables: 6, rows: 3000 + 303 + 4000 + 4000 + 50 });
    const scratch = String(ok.details.restore.scratchTarget).split('/').pop();
    expect(scratch).toMatch(/^dr_verify_/);
    expect(await mysqlQuery('SELECT SCHEMA_NAME FROM information_schema.SCHEMATA WHERE SCHEMA_NAME = ?', [scratch])).toEqual([]);

    // the record says other content than the dump holds: deep verification names the tables that differ
    const tampered = backup.tables.map((t: { name: string; rows: number; sha256: string }) =>
      t.name === 'legacy' ? { ...t, rows: 51 } : t.name === 'files' ? { ...t, sha256: '0'.repeat(64) } : t,
    );
    await sql(service.database, 'UPDATE backups SET tables = $1 WHERE id = $2', [JSON.stringify(tampered), backup.id]);
    const bad = await verify();
    expect(bad.ok).toBe(false);
    expect(bad.problems).toEqual([
      expect.stringMatching(/^files: content sha256 [0-9a-f]{64} after restore, recorded 0{64}$/),
      'legacy: 50 rows after restore, recorded 51',
    ]);
    await sql(service.database, 'UPDATE backups SET tables = $1 WHERE id = $2', [JSON.stringify(backup.tables), backup.id]);

    // figures for the report
    const ran = (r: Record<string, any>) => Date.parse(r.finishedAt) - Date.parse(r.startedAt);
    process.stdout.write(
      `mysql e2e: ${backup.sizeBytes} bytes dumped -> ${backup.storedBytes} stored; backup ran ${ran(backup)} ms (${backupMs} ms through the API), restore ran ${recovery.durationMs} ms (${restoreMs} ms)\n`,
    );
  });

  it('the artifact restores with the standard tools alone: zstd -d | mariadb', async () => {
    const byHand = target('byhand');
    await mysqlQuery(`CREATE DATABASE \`${byHand}\``);
    const artifact = join(service.dataDir, 'backups', backup.artifactKey);
    execFileSync('bash', ['-c', 'set -o pipefail; zstd -dc "$1" | mariadb --no-defaults -h127.0.0.1 -P3306 --protocol=TCP -uroot "$2"', '_', artifact, byHand]);
    // the dump names no database: it restored into one of another name
    const sqlText = execFileSync('zstd', ['-dc', artifact], { maxBuffer: 64 << 20 }).toString();
    expect(sqlText).not.toMatch(/^(USE|CREATE DATABASE)\b/im);
    expect(sqlText.split('\n').filter((line) => !line.startsWith('--') && line.includes(source))).toEqual([]); // only in comments
    expect(await mysqlTableChecksums(byHand)).toEqual(await mysqlTableChecksums(source));
  });

  it('refuses a target database that holds tables unless overwrite, a missing one without create; overwrite replaces the tables', async () => {
    const existing = target('existing');
    await mysqlQuery(
      `CREATE DATABASE \`${existing}\`; CREATE TABLE \`${existing}\`.legacy (id INT PRIMARY KEY, v VARCHAR(20)); INSERT INTO \`${existing}\`.legacy VALUES (999, 'stale')`,
    );

    const refused = await service
      .http()
      .post(`${API}/recovery`)
      .set('X-API-Key', ADMIN_KEY)
      .send({ backupId: backup.id, type: 'FULL', target: asUser(existing) });
    expect(refused.status).toBe(409);
    expect(refused.body).toMatchObject({ code: 'TARGET_EXISTS', details: [{ field: 'target.url' }] });
    expect(await mysqlQuery(`SELECT id FROM \`${existing}\`.legacy`)).toEqual([{ id: 999 }]);

    const missing = await service
      .http()
      .post(`${API}/recovery`)
      .set('X-API-Key', ADMIN_KEY)
      .send({ backupId: backup.id, type: 'FULL', target: asUser(`${prefix}_absent`) });
    expect(missing.status).toBe(400);
    expect(missing.body.details).toEqual([expect.objectContaining({ field: 'target.create' })]);

    const recovery = await recoverAndWait(service, { backupId: backup.id, type: 'FULL', target: asUser(existing), overwrite: true });
    expect(recovery).toMatchObject({ status: 'COMPLETED', error: null });
    expect(await mysqlTableChecksums(existing)).toEqual(await mysqlTableChecksums(source));
  });

  it("records a failed restore with the client's reason (and a database it may not create), without the password", async () => {
    // an existing, empty database where the user may only read: mariadb stops at the dump's first DROP TABLE
    const readOnly = `drt_ro_${run}`;
    databases.push(readOnly);
    await mysqlQuery(`CREATE DATABASE \`${readOnly}\``);
    await mysqlQuery(`GRANT SELECT ON \`${readOnly}\`.* TO ?@'%'`, [user]);
    const recovery = await recoverAndWait(service, { backupId: backup.id, type: 'FULL', target: asUser(readOnly) });
    expect(recovery.status).toBe('FAILED');
    expect(recovery.error).toMatch(/^mariadb failed \(exit code 1\): ERROR 1142 \(42000\) at line \d+: DROP command denied to user/);
    expect(recovery.error).not.toContain(password);

    const notGranted = `drt_ng_${run}`;
    databases.push(notGranted);
    const denied = await recoverAndWait(service, { backupId: backup.id, type: 'FULL', target: { ...asUser(notGranted), create: true } });
    expect(denied.status).toBe('FAILED');
    expect(denied.error).toMatch(/^cannot create database drt_ng_\w+: Access denied for user/);
    expect(denied.error).not.toContain(password);
  });

  it('stops the client when the artifact turns out corrupt, and records the corruption as the reason', async () => {
    const small = await backupAndWait(service, { engine: 'mysql', source: { ...asUser(source), tables: ['files'] } });
    const artifact = join(service.dataDir, 'backups', small.artifactKey);
    const bytes = readFileSync(artifact);
    bytes[Math.floor(bytes.length / 2)] ^= 0x01;
    writeFileSync(artifact, bytes);
    const recovery = await recoverAndWait(service, { backupId: small.id, type: 'FULL', target: { ...asUser(target('corrupt')), create: true } });
    expect(recovery.status).toBe('FAILED');
    expect(recovery.error).not.toMatch(/^mariadb/);
    expect(recovery.error).toMatch(/corrupt|checksum|sha-?256/i);
  });

  it('dumps one consistent snapshot while transactions write to two tables (--single-transaction)', async () => {
    const busy = target('busy');
    await mysqlQuery(`CREATE DATABASE \`${busy}\``);
    await withMysql(async (c) => {
      await c.query(`
        CREATE TABLE pairs_a (id INT PRIMARY KEY AUTO_INCREMENT, pad VARCHAR(200)) ENGINE=InnoDB;
        CREATE TABLE pairs_b (id INT PRIMARY KEY AUTO_INCREMENT, pad VARCHAR(200)) ENGINE=InnoDB;
        INSERT INTO pairs_a (pad) SELECT REPEAT(MD5(seq), 6) FROM seq_1_to_100000;
        INSERT INTO pairs_b (pad) SELECT pad FROM pairs_a;
      `);
    }, busy);
    // a writer adds one row to each table per transaction, as long as the backup runs
    let writing = true;
    const writer = withMysql(async (c) => {
      while (writing) await c.query("START TRANSACTION; INSERT INTO pairs_a (pad) VALUES ('w'); INSERT INTO pairs_b (pad) VALUES ('w'); COMMIT");
    }, busy);
    let taken: Record<string, any>;
    try {
      await new Promise((r) => setTimeout(r, 50));
      taken = await backupAndWait(service, { engine: 'mysql', source: asUser(busy) });
    } finally {
      writing = false;
      await writer;
    }
    expect(taken.status).toBe('COMPLETED');
    const [a, b] = taken.tables.map((t: { rows: number }) => t.rows);
    const [{ n: final }] = await mysqlQuery<{ n: number }>(`SELECT COUNT(*) AS n FROM \`${busy}\`.pairs_a`);
    // the writer ran before and after the snapshot, and the dump holds both tables as of one moment
    expect(a).toBeGreaterThan(100_000);
    expect(final).toBeGreaterThan(a);
    expect(b).toBe(a);
    process.stdout.write(
      `mysql e2e (busy): ${taken.sizeBytes} bytes dumped -> ${taken.storedBytes} stored in ${Date.parse(taken.finishedAt) - Date.parse(taken.startedAt)} ms\n`,
    );
  });

  it('backs up with read privileges only (no EVENT: events left out with a warning; no LOCK TABLES needed)', async () => {
    const reader = `drt_r_${run}`;
    const readerPassword = randomBytes(12).toString('hex');
    process.env.DRS_TEST_MYSQL_READER = readerPassword;
    try {
      await withMysql(async (c) => {
        await c.query(`CREATE USER ?@'%' IDENTIFIED BY ?`, [reader, readerPassword]);
        await c.query(`GRANT SELECT, SHOW VIEW, TRIGGER ON \`${source}\`.* TO ?@'%'`, [reader]);
        await c.query(`GRANT SELECT ON mysql.proc TO ?@'%'`, [reader]); // to read the bodies of routines it does not define
      });
      const read = await backupAndWait(service, { engine: 'mysql', source: { url: mysqlUrl(source, reader), passwordSecret: 'env:DRS_TEST_MYSQL_READER' } });
      expect(read.status).toBe('COMPLETED');
      expect(read.warnings).toEqual([
        expect.stringMatching(/^events not dumped: Access denied/),
        expect.stringContaining('legacy (MyISAM)'),
        expect.stringMatching(/^cannot capture the accounts the database needs \(globals\): SELECT command denied .*`mysql`\.`db`/),
      ]);
      expect(read.tables).toEqual(backup.tables);
    } finally {
      delete process.env.DRS_TEST_MYSQL_READER;
      await dropMysqlObjects([], reader);
    }
  });

  it('backs up only the tables asked for', async () => {
    const partial = await backupAndWait(service, { engine: 'mysql', source: { ...asUser(source), tables: ['files', 'empty_one'] } });
    expect(partial.status).toBe('COMPLETED');
    expect(partial.tables.map((t: { name: string; rows: number }) => [t.name, t.rows])).toEqual([
      ['files', 303],
      ['empty_one', 0],
    ]); // as asked
    expect(partial.warnings).toEqual([
      expect.stringMatching(/^cannot capture the accounts the database needs \(globals\): SELECT command denied .*`mysql`\.`db`/),
    ]); // legacy (MyISAM) is not among them
    expect(partial.tables.find((t: { name: string }) => t.name === 'files')).toEqual(backup.tables.find((t: { name: string }) => t.name === 'files'));
  });

  it('records a wrong password, an unreachable server or a missing table as FAILED with a reason that holds no password', async () => {
    const wrong = `wrong-${randomBytes(8).toString('hex')}`;
    process.env.DRS_TEST_MYSQL_WRONG = wrong;
    try {
      const denied = await backupAndWait(service, { engine: 'mysql', source: { url: mysqlUrl(source, user), passwordSecret: 'env:DRS_TEST_MYSQL_WRONG' } });
      expect(denied.status).toBe('FAILED');
      expect(denied.error).toMatch(/Access denied for user/);
      expect(JSON.stringify(denied)).not.toContain(wrong);
    } finally {
      delete process.env.DRS_TEST_MYSQL_WRONG;
    }
    const unreachable = await backupAndWait(service, {
      engine: 'mysql',
      source: { url: mysqlUrl(source, user, 1), passwordSecret: 'env:DRS_TEST_MYSQL_PASSWORD' },
    });
    expect(unreachable.status).toBe('FAILED');
    expect(unreachable.error).toMatch(/cannot connect to 127\.0\.0\.1:1\/.*ECONNREFUSED/);
    expect(unreachable.error).not.toContain(password);

    const noTable = await backupAndWait(service, { engine: 'mysql', source: { ...asUser(source), tables: ['no_such_table'] } });
    expect(noTable.status).toBe('FAILED');
    expect(noTable.error).toMatch(/failed \(exit code \d+\).*no_such_table/);
    // nothing left of it, not even its folder
    expect(existsSync(join(service.dataDir, 'backups', noTable.id))).toBe(false);
    const stillGood = await service.http().post(`${API}/backups/${backup.id}/verify`).set('X-API-Key', ADMIN_KEY);
    expect(stillGood.body).toMatchObject({ ok: true });
  });

  it('answers 400 naming the source field for bad source fields', async () => {
    const cases: [object, string][] = [
      [{ url: `mysql://root:hunter2@127.0.0.1/${source}` }, 'source.url'],
      [{ url: 'postgresql://root@127.0.0.1/db' }, 'source.url'],
      [{ url: 'mysql://root@127.0.0.1/' }, 'source.url'],
      [{ url: 'mysql://127.0.0.1/db' }, 'source.url'],
      [{ url: 'mysql://root@127.0.0.1/db?ssl=true' }, 'source.url'],
      [{ url: mysqlUrl(source), passwordSecret: 'hunter2' }, 'source.passwordSecret'],
      [{ url: mysqlUrl(source), tables: 'files' }, 'source.tables'],
      [{ url: mysqlUrl(source), tables: ['--where=1'] }, 'source.tables'],
      [{ url: mysqlUrl(source), tables: [] }, 'source.tables'],
      [{ url: mysqlUrl(source), socket: '/tmp/x' }, 'source.socket'],
    ];
    for (const [bad, field] of cases) {
      const response = await service.http().post(`${API}/backups`).set('X-API-Key', ADMIN_KEY).send({ engine: 'mysql', source: bad });
      expect([JSON.stringify(bad), response.status]).toEqual([JSON.stringify(bad), 400]);
      expect(response.body.details).toEqual(expect.arrayContaining([expect.objectContaining({ field })]));
      expect(JSON.stringify(response.body)).not.toContain('hunter2');
    }
  });

  it('works from the CLI: dr backup --engine mysql ... --tables, dr restore --url mysql://... --create (needs npm run build)', async () => {
    const meta = await createDatabase('drt_mycli');
    try {
      const dr = (...args: string[]) => {
        const result = spawnSync(join(__dirname, '..', '..', 'bin', 'dr'), args, {
          env: {
            PATH: process.env.PATH,
            HOME: process.env.HOME,
            DATABASE_URL: databaseUrl(meta),
            DR_DATA_DIR: service.dataDir,
            DRS_TEST_MYSQL_PASSWORD: password,
          },
          encoding: 'utf8',
          timeout: 60_000,
        });
        return { code: result.status, stdout: result.stdout, stderr: result.stderr };
      };
      const taken = dr(
        'backup',
        '--engine',
        'mysql',
        '--url',
        mysqlUrl(source, user),
        '--password-secret',
        'env:DRS_TEST_MYSQL_PASSWORD',
        '--tables',
        'files',
        'empty_one',
      );
      expect([taken.code, taken.stdout]).toEqual([0, expect.stringContaining('COMPLETED')]);
      const id = /([0-9a-f-]{36})/.exec(taken.stdout)![1];

      const wrong = dr('restore', id, '--url', mysqlUrl(`${prefix}_x`, user), '--no-owner');
      expect(wrong.code).toBe(2);
      expect(wrong.stderr).toContain('--no-owner');

      const copy = target('cli');
      const restored = dr('restore', id, '--url', mysqlUrl(copy, user), '--create', '--password-secret', 'env:DRS_TEST_MYSQL_PASSWORD');
      expect([restored.code, restored.stdout]).toEqual([0, expect.stringContaining('COMPLETED')]);
      const [expected, actual] = await Promise.all([mysqlTableChecksums(source), mysqlTableChecksums(copy)]);
      expect(actual).toEqual({ files: expected.files, empty_one: expected.empty_one });
    } finally {
      await dropDatabase(meta);
    }
  });
});
