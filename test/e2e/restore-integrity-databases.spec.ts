import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { backupAndWait, recoverAndWait, startService, TestService } from '../support/app';
import { createDatabase, databaseUrl, dropDatabase, sql, tableChecksums } from '../support/database';
import { zstdOfSize } from '../support/tamper';
import { dropMysqlObjects, mysqlAvailable, mysqlQuery, mysqlTableChecksums, mysqlUrl, withMysql } from '../support/mariadb';

/**
 * A replaced database artifact (valid zstd, the same size as the original, another SHA-256) never reaches the
 * target: MySQL executes nothing of it (its client runs statements as it reads them, so the object is proven
 * first), PostgreSQL restores nothing and creates no database. Real pg_dump/pg_restore, mariadb-dump/mariadb.
 */

describe('restore integrity: databases', () => {
  let service: TestService;
  const stored = (key: string) => join(service.dataDir, 'backups', key);

  beforeAll(async () => {
    service = await startService();
  });

  afterAll(async () => {
    await service?.close();
  });

  describe('postgres', () => {
    const databases: string[] = [];
    afterAll(async () => {
      for (const db of databases) await dropDatabase(db);
    });

    // a parallel dump (source.jobs) makes the same kind of artifact, restored through the same proof
    it.each([
      ['a plain dump', {}],
      ['a parallel dump (source.jobs: 2)', { jobs: 2 }],
    ])('a replaced dump restores nothing: no database created, an existing target unchanged (overwrite): %s', async (_kind, options) => {
      const source = await createDatabase('drt_int_src');
      const attacker = await createDatabase('drt_int_evil');
      const existing = await createDatabase('drt_int_target');
      databases.push(source, attacker, existing);
      // random text: the dump compresses little, leaving room for a replacement of the same size
      await sql(source, `CREATE TABLE t AS SELECT g AS id, md5(random()::text) || md5(random()::text) AS v FROM generate_series(1, 3000) g`);
      await sql(attacker, `CREATE TABLE planted (x text); INSERT INTO planted VALUES ('pwned')`);
      await sql(existing, `CREATE TABLE t (id int, v text); INSERT INTO t VALUES (1, 'the target''s own row')`);
      const backup = await backupAndWait(service, { engine: 'postgres', source: { url: databaseUrl(source), ...options } });
      expect(backup.status).toBe('COMPLETED');
      const evil = execFileSync('pg_dump', ['--format=custom', '--compress=0', `--dbname=${databaseUrl(attacker)}`], { maxBuffer: 64 << 20 });
      writeFileSync(stored(backup.artifactKey), zstdOfSize(evil, backup.storedBytes));

      const before = await tableChecksums(existing);
      const overwrite = await recoverAndWait(service, { backupId: backup.id, type: 'FULL', target: { url: databaseUrl(existing) }, overwrite: true });
      expect(overwrite.status).toBe('FAILED');
      expect(await tableChecksums(existing)).toEqual(before);
      expect(overwrite.error).toMatch(new RegExp(`^checksum mismatch for ${backup.artifactKey}: expected sha256 ${backup.sha256}`));
      expect(overwrite.bytesRestored).toBe(0);

      const fresh = `drt_int_new_${randomBytes(4).toString('hex')}`;
      databases.push(fresh);
      const created = await recoverAndWait(service, { backupId: backup.id, type: 'FULL', target: { url: databaseUrl(fresh), create: true } });
      expect(created.status).toBe('FAILED');
      expect(created.error).toMatch(/^checksum mismatch for /);
      expect(await sql('postgres', 'SELECT datname FROM pg_database WHERE datname = $1', [fresh])).toEqual([]);
    });
  });

  const mysql = mysqlAvailable();
  (mysql ? describe : describe.skip)('mysql', () => {
    const prefix = `drt_int_${Date.now().toString(36)}${randomBytes(3).toString('hex')}`;
    const source = `${prefix}_src`;
    const target = `${prefix}_target`;

    afterAll(async () => {
      await dropMysqlObjects([source, target]);
    });

    it('a replaced dump executes nothing: the target keeps its rows and checksums, no attacker table appears', async () => {
      await withMysql(async (c) => {
        await c.query(`CREATE DATABASE \`${source}\` CHARACTER SET utf8mb4`);
        await c.query(`CREATE DATABASE \`${target}\` CHARACTER SET utf8mb4`);
        await c.query(`CREATE TABLE \`${source}\`.orders (id INT PRIMARY KEY, v VARCHAR(80)) ENGINE=InnoDB`);
        // ~2 MB of random text: a stored dump large enough that a client reading as it streams gets far
        for (let i = 0; i < 40; i++) {
          const values = Array.from({ length: 500 }, (_, j) => `(${i * 500 + j}, '${randomBytes(40).toString('hex')}')`).join(',');
          await c.query(`INSERT INTO \`${source}\`.orders VALUES ${values}`);
        }
        await c.query(`CREATE TABLE \`${target}\`.orders (id INT PRIMARY KEY, v VARCHAR(80)) ENGINE=InnoDB`);
        await c.query(`INSERT INTO \`${target}\`.orders VALUES (1, 'the target''s own row'), (2, 'another')`);
      });
      const backup = await backupAndWait(service, { engine: 'mysql', source: { url: mysqlUrl(source) } });
      expect(backup.status).toBe('COMPLETED');
      // 2 MB of statements (many 128 KiB output blocks): a client reading as the object streams runs them before the
      // end of the object, where the SHA-256 is checked
      const evil = Buffer.from(
        'CREATE TABLE attacker (x TEXT);\nDELETE FROM orders;\n' +
          Array.from({ length: 50_000 }, (_, i) => `INSERT INTO attacker VALUES ('pwned ${i}');\n`).join(''),
      );
      writeFileSync(stored(backup.artifactKey), zstdOfSize(evil, backup.storedBytes));

      const before = await mysqlTableChecksums(target);
      const recovery = await recoverAndWait(service, { backupId: backup.id, type: 'FULL', target: { url: mysqlUrl(target) }, overwrite: true });
      expect(recovery.status).toBe('FAILED');
      expect(await mysqlQuery(`SELECT TABLE_NAME FROM information_schema.TABLES WHERE TABLE_SCHEMA = ? AND TABLE_NAME = 'attacker'`, [target])).toEqual([]);
      expect(await mysqlTableChecksums(target)).toEqual(before);
      expect(recovery.error).toMatch(new RegExp(`^checksum mismatch for ${backup.artifactKey}: expected sha256 ${backup.sha256}`));
      expect(recovery.bytesRestored).toBe(0);
      expect(recovery.bytesRead).toBe(backup.storedBytes);
      // the proof's scratch copy is gone
      expect(execFileSync('find', [join(service.dataDir, 'scratch'), '-name', `${recovery.id}*`]).toString()).toBe('');
    });
  });
});
