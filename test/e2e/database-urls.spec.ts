import { randomBytes } from 'node:crypto';
import { ADMIN_KEY, API, backupAndWait, recoverAndWait, startService, TestService } from '../support/app';
import { createDatabase, databaseUrl, dropDatabase, sql, tableChecksums } from '../support/database';

/**
 * Issue 10, item 6: libpq reads `dbname`, `user`, `host`, `port`, `password`... from a URL's query too, so
 * `…/newdb?dbname=victim` with `create: true` restored into the existing `victim` (the existing-database check saw
 * `newdb`), `…?password=…` was stored and shown to VIEWERs, and `…/nosuch?dbname=src` was recorded as `nosuch`.
 * Real service, real pg_dump / pg_restore on the local PostgreSQL.
 */
describe('database URLs: one strict parser for sources and targets', () => {
  let service: TestService;
  let source: string;
  let victim: string;
  let backupId: string;
  let viewer: string;
  const planted = `planted-url-password-${randomBytes(6).toString('hex')}`;
  const dropped: string[] = [];

  beforeAll(async () => {
    service = await startService();
    source = await createDatabase('drt_url_src');
    victim = await createDatabase('drt_url_victim');
    await sql(source, `CREATE TABLE items AS SELECT g AS id FROM generate_series(1, 50) g`);
    await sql(victim, `CREATE TABLE precious AS SELECT g AS id, md5(g::text) AS v FROM generate_series(1, 200) g`);
    const backup = await backupAndWait(service, { engine: 'postgres', source: { url: databaseUrl(source) } });
    expect(backup.status).toBe('COMPLETED');
    backupId = backup.id;
    viewer = (
      await service
        .http()
        .post(`${API}/api-keys`)
        .set('X-API-Key', ADMIN_KEY)
        .send({ name: 'url-viewer', roles: ['VIEWER'] })
    ).body.secret;
  });

  afterAll(async () => {
    await service?.close();
    for (const db of [source, victim, ...dropped]) await dropDatabase(db);
  });

  it('refuses …/newdb?dbname=victim with create: the existing database is untouched and newdb is not created', async () => {
    const before = await tableChecksums(victim);
    const newdb = `drt_url_new_${randomBytes(3).toString('hex')}`;
    dropped.push(newdb);
    const res = await service
      .http()
      .post(`${API}/recovery`)
      .set('X-API-Key', ADMIN_KEY)
      .send({ backupId, type: 'FULL', target: { url: `${databaseUrl(newdb)}?dbname=${victim}`, create: true } });
    expect({ status: res.status, details: res.body.details }).toEqual({
      status: 400,
      details: [{ field: 'target.url', message: "url must not hold dbname: the database is the URL's path" }],
    });
    expect(await tableChecksums(victim)).toEqual(before);
    expect(await sql('postgres', 'SELECT 1 FROM pg_database WHERE datname = $1', [newdb])).toEqual([]);
  });

  it('refuses a password in the query string (and in the user part) everywhere a URL is taken: nothing stored, nothing shown to a VIEWER', async () => {
    const urls = [`${databaseUrl(source)}?password=${planted}`, databaseUrl(source).replace('postgres@', `postgres:${planted}@`)];
    for (const url of urls) {
      const bodies: [string, object, string][] = [
        ['/backups', { engine: 'postgres', source: { url } }, 'source.url'],
        ['/backup-plans', { name: `p-${randomBytes(3).toString('hex')}`, engine: 'postgres', source: { url } }, 'source.url'],
        ['/recovery', { backupId, type: 'FULL', target: { url }, overwrite: true }, 'target.url'],
      ];
      for (const [path, body, field] of bodies) {
        const res = await service.http().post(`${API}${path}`).set('X-API-Key', ADMIN_KEY).send(body);
        expect({ path, status: res.status, field: res.body.details?.[0]?.field }).toEqual({ path, status: 400, field });
        expect(res.text).not.toContain(planted);
      }
    }
    for (const path of ['/backups', '/backup-plans', '/recovery', '/audit?limit=500']) {
      const listed = await service.http().get(`${API}${path}`).set('X-API-Key', viewer);
      expect({ path, status: listed.status }).toEqual({ path, status: 200 });
      expect(listed.text).not.toContain(planted);
    }
  });

  it('refuses …/nosuch?dbname=src and every other libpq parameter outside the allowed list', async () => {
    const refused = [
      'dbname=' + source,
      'user=postgres',
      'host=127.0.0.1',
      'port=5432',
      'service=prod',
      'passfile=/root/.pgpass',
      'options=-cwork_mem%3D1',
      'sslcert=/tmp/c.pem',
    ];
    for (const query of refused) {
      const res = await service
        .http()
        .post(`${API}/backups`)
        .set('X-API-Key', ADMIN_KEY)
        .send({ engine: 'postgres', source: { url: `${databaseUrl('nosuch')}?${query}` } });
      expect({ query, status: res.status, field: res.body.details?.[0]?.field }).toEqual({ query, status: 400, field: 'source.url' });
    }
    const listed = await service.http().get(`${API}/backups?engine=postgres`).set('X-API-Key', ADMIN_KEY);
    expect(listed.body.items.map((b: { source: { url: string } }) => b.source.url)).toEqual([databaseUrl(source)]);
  });

  it('takes the documented parameters (sslmode, application_name, connect_timeout) for backups and restores', async () => {
    const params = 'sslmode=disable&application_name=dr-url-test&connect_timeout=5';
    const backup = await backupAndWait(service, { engine: 'postgres', source: { url: `${databaseUrl(source)}?${params}` } });
    expect({ status: backup.status, error: backup.error }).toEqual({ status: 'COMPLETED', error: null });
    const copy = `drt_url_copy_${randomBytes(3).toString('hex')}`;
    dropped.push(copy);
    const restored = await recoverAndWait(service, { backupId: backup.id, type: 'FULL', target: { url: `${databaseUrl(copy)}?${params}`, create: true } });
    expect({ status: restored.status, error: restored.error }).toEqual({ status: 'COMPLETED', error: null });
    expect(await tableChecksums(copy)).toEqual(await tableChecksums(source));
  });

  it('holds MySQL URLs to the same parser (only connect_timeout is allowed)', async () => {
    for (const [url, message] of [
      ['mysql://u@127.0.0.1:3306/db?ssl=1', 'url query parameter "ssl" is not supported (allowed: connect_timeout)'],
      ['mysql://u@127.0.0.1:3306/db?password=x', 'url must not hold a password; name it with passwordSecret instead'],
      ['mysql://u@127.0.0.1:3306/db?connect_timeout=99999', 'url connect_timeout must be a whole number of seconds from 1 to 3600'],
    ]) {
      const res = await service.http().post(`${API}/backups`).set('X-API-Key', ADMIN_KEY).send({ engine: 'mysql', source: { url } });
      expect({ url, status: res.status, details: res.body.details }).toEqual({ url, status: 400, details: [{ field: 'source.url', message }] });
    }
  });
});
