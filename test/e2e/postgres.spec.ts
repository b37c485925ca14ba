import { execFileSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { ADMIN_KEY, API, backupAndWait, recoverAndWait, startService, TestService } from '../support/app';
import { createDatabase, databaseUrl, dropDatabase, sql, tableChecksums } from '../support/database';

describe('postgres backups (real pg_dump / pg_restore on the local server)', () => {
  let service: TestService;
  let source: string;
  const restored: string[] = [];

  beforeAll(async () => {
    service = await startService({ DRS_TEST_PG_PASSWORD: 'not-a-real-password-but-secret' });
    source = await createDatabase('drt_pgbench');
    execFileSync('pgbench', ['-i', '-s', '2', '-q', databaseUrl(source)], { stdio: 'ignore' });
    await sql(source, `CREATE TABLE notes (id serial PRIMARY KEY, body text, tags jsonb, at timestamptz DEFAULT now())`);
    await sql(source, `INSERT INTO notes (body, tags) SELECT 'note ' || g || ' ünïcödé', jsonb_build_object('n', g) FROM generate_series(1, 5000) g`);
  });

  afterAll(async () => {
    await service?.close();
    for (const db of [source, ...restored]) await dropDatabase(db);
  });

  it('restores a pgbench database into a new database with identical table checksums', async () => {
    const backup = await backupAndWait(service, {
      engine: 'postgres',
      source: { url: databaseUrl(source), passwordSecret: 'env:DRS_TEST_PG_PASSWORD' },
    });
    expect(backup).toMatchObject({ status: 'COMPLETED', engine: 'postgres', error: null });
    expect(backup.source).toEqual({ url: databaseUrl(source), passwordSecret: 'env:DRS_TEST_PG_PASSWORD' });
    expect(JSON.stringify(backup)).not.toContain('not-a-real-password-but-secret');

    const target = `drt_restored_${Date.now()}`;
    restored.push(target);
    const recovery = await recoverAndWait(service, {
      backupId: backup.id,
      type: 'FULL',
      target: { url: databaseUrl(target), create: true },
    });
    // no warnings: the dump's data offsets were added, so pg_restore ran with --jobs (DR_PG_RESTORE_JOBS=2)
    expect(recovery).toMatchObject({ status: 'COMPLETED', error: null, warnings: [] });
    const [expected, actual] = await Promise.all([tableChecksums(source), tableChecksums(target)]);
    expect(Object.keys(expected)).toEqual(expect.arrayContaining(['public.pgbench_accounts', 'public.notes']));
    expect(expected['public.pgbench_accounts'].rows).toBe(200_000);
    expect(actual).toEqual(expected);

    // The artifact restores with standard tools alone: zstd -d | pg_restore.
    const byHand = `drt_byhand_${Date.now()}`;
    restored.push(byHand);
    await sql('postgres', `CREATE DATABASE ${byHand}`);
    const artifact = `${service.dataDir}/backups/${backup.artifactKey}`;
    execFileSync('bash', ['-c', 'set -o pipefail; zstd -dc "$1" | pg_restore --exit-on-error -d "$2"', '_', artifact, databaseUrl(byHand)]);
    expect(await tableChecksums(byHand)).toEqual(expected);
  });

  it('refuses an existing target database unless overwrite is set, then replaces its content', async () => {
    const backup = await backupAndWait(service, { engine: 'postgres', source: { url: databaseUrl(source) } });
    const target = await createDatabase('drt_existing');
    restored.push(target);
    await sql(target, `CREATE TABLE pgbench_branches (bid int, bbalance int, filler char(88))`);
    await sql(target, `INSERT INTO pgbench_branches VALUES (999, 1, 'stale')`);

    const refused = await service
      .http()
      .post(`${API}/recovery`)
      .set('X-API-Key', ADMIN_KEY)
      .send({ backupId: backup.id, type: 'FULL', target: { url: databaseUrl(target) } });
    expect(refused.status).toBe(409);
    expect(refused.body).toMatchObject({ code: 'TARGET_EXISTS', details: [{ field: 'target.url' }] });
    expect(await sql(target, 'SELECT bid FROM pgbench_branches')).toEqual([{ bid: 999 }]);

    const missing = await service
      .http()
      .post(`${API}/recovery`)
      .set('X-API-Key', ADMIN_KEY)
      .send({ backupId: backup.id, type: 'FULL', target: { url: databaseUrl(`drt_absent_${Date.now()}`) } });
    expect(missing.status).toBe(400);
    expect(missing.body.details).toEqual([expect.objectContaining({ field: 'target.create' })]);

    const recovery = await recoverAndWait(service, { backupId: backup.id, type: 'FULL', target: { url: databaseUrl(target) }, overwrite: true });
    expect(recovery.status).toBe('COMPLETED');
    expect(await tableChecksums(target)).toEqual(await tableChecksums(source));
  });

  it("records a failed dump with pg_dump's reason, stores nothing, and leaves earlier backups untouched", async () => {
    const good = await backupAndWait(service, { engine: 'postgres', source: { url: databaseUrl(source) } });
    const failed = await backupAndWait(service, { engine: 'postgres', source: { url: databaseUrl('drt_no_such_database') } });
    expect(failed.status).toBe('FAILED');
    expect(failed.error).toContain('pg_dump failed');
    expect(failed.error).toContain('drt_no_such_database');
    expect(existsSync(`${service.dataDir}/backups/${failed.id}`)).toBe(false); // nothing stored, not even its folder
    const verify = await service.http().post(`${API}/backups/${good.id}/verify`).set('X-API-Key', ADMIN_KEY);
    expect(verify.body).toMatchObject({ ok: true });

    const notRestorable = await service
      .http()
      .post(`${API}/recovery`)
      .set('X-API-Key', ADMIN_KEY)
      .send({ backupId: failed.id, type: 'FULL', target: { url: databaseUrl('drt_x'), create: true } });
    expect(notRestorable.status).toBe(409);
    expect(notRestorable.body.code).toBe('BACKUP_NOT_RESTORABLE');
  });

  it('refuses a connection URL that carries a password, and a secret that cannot be resolved', async () => {
    const withPassword = await service
      .http()
      .post(`${API}/backups`)
      .set('X-API-Key', ADMIN_KEY)
      .send({ engine: 'postgres', source: { url: 'postgresql://postgres:hunter2@127.0.0.1/db' } });
    expect(withPassword.status).toBe(400);
    expect(withPassword.body.details).toEqual([expect.objectContaining({ field: 'source.url' })]);
    expect(JSON.stringify(withPassword.body)).not.toContain('hunter2');

    const unset = await backupAndWait(service, { engine: 'postgres', source: { url: databaseUrl(source), passwordSecret: 'env:DRS_TEST_UNSET_SECRET' } });
    expect(unset.status).toBe('FAILED');
    expect(unset.error).toContain('DRS_TEST_UNSET_SECRET is not set');
  });
});
