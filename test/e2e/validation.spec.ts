import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ADMIN_KEY, API, startService, TestService } from '../support/app';

describe('bad input answers 4xx naming the field, never 5xx', () => {
  let service: TestService;
  const dir = mkdtempSync(join(tmpdir(), 'dr-valid-'));

  beforeAll(async () => {
    service = await startService();
  });
  afterAll(() => service.close());

  const post = (path: string, body: unknown) =>
    service
      .http()
      .post(`${API}${path}`)
      .set('X-API-Key', ADMIN_KEY)
      .set('Content-Type', 'application/json')
      .send(body as object);

  it.each([
    [{}, ['engine', 'source']],
    [{ engine: 'oracle', source: {} }, ['engine']],
    [{ engine: 'filesystem' }, ['source']],
    [{ engine: 'filesystem', source: 'x' }, ['source']],
    [{ engine: 'filesystem', source: {} }, ['source.path']],
    [{ engine: 'filesystem', source: { path: 'relative/dir' } }, ['source.path']],
    [{ engine: 'filesystem', source: { path: 42 } }, ['source.path']],
    [{ engine: 'filesystem', source: { path: '/no/such/dir' } }, ['source.path']],
    [{ engine: 'filesystem', source: { path: '/tmp', include: 'x' } }, ['source.include']],
    [{ engine: 'filesystem', source: { path: '/tmp', sneaky: true } }, ['source.sneaky']],
    [{ engine: 'postgres', source: { url: 'mysql://h/db' } }, ['source.url']],
    [{ engine: 'postgres', source: { url: 'postgresql://h:5432/' } }, ['source.url']],
    [{ engine: 'postgres', source: { url: 'postgresql://u@h/db', passwordSecret: 'plaintext' } }, ['source.passwordSecret']],
    [{ engine: 'configuration', source: { paths: [] } }, ['source.paths']],
    [{ planId: 'nope' }, ['planId']],
    [{ planId: '00000000-0000-4000-8000-000000000000' }, ['planId']],
    [{ engine: 'filesystem', source: { path: '/tmp' }, storageLocationId: '00000000-0000-4000-8000-000000000000' }, ['storageLocationId']],
    [{ engine: 'filesystem', source: { path: '/tmp' }, extra: 1 }, ['extra']],
  ])('POST /backups %j → 400 naming %j', async (body, fields) => {
    const res = await post('/backups', body);
    expect(res.status).toBe(400);
    expect(res.body.code).toBe('VALIDATION_FAILED');
    const named = res.body.details.map((d: { field: string }) => d.field);
    for (const field of fields) expect(named).toContain(field);
  });

  it.each([
    [{ type: 'FULL', target: { path: '/x' } }, 'backupId'],
    [{ backupId: 'x', type: 'FULL', target: { path: '/x' } }, 'backupId'],
    [{ backupId: '00000000-0000-4000-8000-000000000000', type: 'SOMETIMES', target: {} }, 'type'],
    [{ backupId: '00000000-0000-4000-8000-000000000000', type: 'FULL' }, 'target'],
    [{ backupId: '00000000-0000-4000-8000-000000000000', type: 'FULL', target: { path: '/x' }, overwrite: 'yes' }, 'overwrite'],
  ])('POST /recovery %j → 400 naming %s', async (body, field) => {
    const res = await post('/recovery', body);
    expect(res.status).toBe(400);
    expect(res.body.details.map((d: { field: string }) => d.field)).toContain(field);
  });

  it('answers 404 for unknown ids and 400 for malformed ones', async () => {
    const unknown = '00000000-0000-4000-8000-000000000000';
    for (const path of [`/backups/${unknown}`, `/recovery/${unknown}`, `/backup-plans/${unknown}`, `/storage-locations/${unknown}`]) {
      const res = await service.http().get(`${API}${path}`).set('X-API-Key', ADMIN_KEY);
      expect(res.status).toBe(404);
      expect(res.body.code).toBe('NOT_FOUND');
    }
    const restoreUnknown = await post('/recovery', { backupId: unknown, type: 'FULL', target: { path: '/x' } });
    expect(restoreUnknown.status).toBe(404);
    const malformed = await service.http().get(`${API}/backups/..%2F..%2Fetc`).set('X-API-Key', ADMIN_KEY);
    expect(malformed.status).toBe(400);
    expect(malformed.body.details[0].field).toBe('id');
  });

  it('rejects bad query parameters, malformed JSON and oversized bodies with 4xx', async () => {
    for (const q of ['status=DONE', 'page=0', 'limit=1000', 'limit=abc', 'planId=1']) {
      const res = await service.http().get(`${API}/backups?${q}`).set('X-API-Key', ADMIN_KEY);
      expect({ q, status: res.status }).toEqual({ q, status: 400 });
    }
    const malformed = await service.http().post(`${API}/backups`).set('X-API-Key', ADMIN_KEY).set('Content-Type', 'application/json').send('{"engine":');
    expect(malformed.status).toBe(400);
    const huge = await post('/backups', { engine: 'filesystem', source: { path: '/' + 'a'.repeat(2 * 1024 * 1024) } });
    expect(huge.status).toBe(413);
  });

  it('validates backup plans: cron expression, time zone, source, and unique names', async () => {
    const bad = await post('/backup-plans', { name: 'p1', engine: 'filesystem', source: { path: dir }, schedule: 'every day' });
    expect(bad.status).toBe(400);
    expect(bad.body.details[0].field).toBe('schedule');
    const tz = await post('/backup-plans', { name: 'p1', engine: 'filesystem', source: { path: dir }, schedule: '0 2 * * *', timezone: 'Mars/Olympus' });
    expect(tz.body.details[0].field).toBe('timezone');
    const ok = await post('/backup-plans', { name: 'p1', engine: 'filesystem', source: { path: dir }, schedule: '0 2 * * *', timezone: 'Europe/Paris' });
    expect(ok.status).toBe(201);
    const dup = await post('/backup-plans', { name: 'p1', engine: 'filesystem', source: { path: dir } });
    expect(dup.status).toBe(409);
    const patched = await service.http().patch(`${API}/backup-plans/${ok.body.id}`).set('X-API-Key', ADMIN_KEY).send({ schedule: '61 * * * *' });
    expect(patched.status).toBe(400);
  });
});
