import { ADMIN_KEY, API, startService, TestService } from '../support/app';

/** Security headers, rate limiting, body size limit, CORS and the served API docs, on the real application. */
describe('hardening', () => {
  describe('with the defaults', () => {
    let service: TestService;
    beforeAll(async () => {
      service = await startService();
    });
    afterAll(() => service?.close());

    it('sends helmet security headers and no X-Powered-By', async () => {
      const res = await service.http().get(`${API}/backups`).set('X-API-Key', ADMIN_KEY);
      expect(res.status).toBe(200);
      expect(res.headers['x-content-type-options']).toBe('nosniff');
      expect(res.headers['x-frame-options']).toBe('SAMEORIGIN');
      expect(res.headers['strict-transport-security']).toMatch(/max-age=\d+/);
      expect(res.headers['content-security-policy']).toContain("default-src 'self'");
      expect(res.headers['content-security-policy']).not.toContain('upgrade-insecure-requests');
      expect(res.headers['x-powered-by']).toBeUndefined();
    });

    it('answers CORS requests without CORS headers when no origin is configured', async () => {
      const get = await service.http().get(`${API}/backups`).set('X-API-Key', ADMIN_KEY).set('Origin', 'https://evil.example');
      expect(get.headers['access-control-allow-origin']).toBeUndefined();
      const preflight = await service.http().options(`${API}/backups`).set('Origin', 'https://evil.example').set('Access-Control-Request-Method', 'POST');
      expect(preflight.headers['access-control-allow-origin']).toBeUndefined();
      expect(preflight.headers['access-control-allow-methods']).toBeUndefined();
    });

    it('does not echo the query string of an unknown route, where a client may have put a secret', async () => {
      const res = await service
        .http()
        .get(`${API}/no-such-route?password=hunter2-planted&url=${encodeURIComponent('postgresql://u:s3cret-planted@db/x')}`)
        .set('X-API-Key', ADMIN_KEY);
      expect(res.status).toBe(404);
      expect(res.body).toMatchObject({ statusCode: 404, code: 'NOT_FOUND' });
      expect(JSON.stringify(res.body)).not.toMatch(/hunter2-planted|s3cret-planted/);
    });

    it('refuses a body over 1 MiB with 413 in the error shape', async () => {
      const res = await service
        .http()
        .post(`${API}/backup-plans`)
        .set('X-API-Key', ADMIN_KEY)
        .set('Content-Type', 'application/json')
        .send(JSON.stringify({ name: 'x'.repeat(1024 * 1024 + 10) }));
      expect(res.status).toBe(413);
      expect(res.body).toEqual({
        statusCode: 413,
        code: 'PAYLOAD_TOO_LARGE',
        message: 'The request body is too large (at most 1 MiB)',
        detail: 'request body too large',
      });
    });

    it('refuses JSON bodies with prototype keys or NUL characters with 400 (not a 500 from the ORM or class-transformer)', async () => {
      const bodies = [
        '{"name":"k","roles":["VIEWER"],"constructor":{"prototype":{}}}',
        '{"name":"k","roles":["VIEWER"],"__proto__":{"isAdmin":true}}',
        '{"name":"nul\\u0000byte","roles":["VIEWER"]}',
      ];
      for (const body of bodies) {
        const res = await service.http().post(`${API}/api-keys`).set('X-API-Key', ADMIN_KEY).set('Content-Type', 'application/json').send(body);
        expect({ body, status: res.status, code: res.body.code }).toEqual({ body, status: 400, code: 'VALIDATION_FAILED' });
      }
    });

    it('refuses a NUL character in a query string with 400 naming the parameter (it used to reach SQL as a 500)', async () => {
      for (const path of ['/audit?actor=a%00b', '/audit?action=%00', '/backups?engine=%00']) {
        const res = await service.http().get(`${API}${path}`).set('X-API-Key', ADMIN_KEY);
        expect({ path, status: res.status, code: res.body.code }).toEqual({ path, status: 400, code: 'VALIDATION_FAILED' });
      }
      const res = await service.http().get(`${API}/audit?actor=a%00b`).set('X-API-Key', ADMIN_KEY);
      expect(res.body.details).toEqual([{ field: 'actor', message: 'actor must not contain a NUL character' }]);
    });

    it('refuses an array nested 2,000 deep anywhere in a body with 400 naming where (it used to be a 500 from class-transformer)', async () => {
      // 4 KB of brackets: well under the body limit, deep enough to overflow class-transformer's recursion.
      const nested = `${'['.repeat(2000)}${']'.repeat(2000)}`;
      const cases: [string, string, string][] = [
        ['/api-keys', `{"name":"k","roles":${nested}}`, 'roles'],
        ['/backups', `{"engine":"filesystem","source":{"path":"/tmp","include":${nested}}}`, 'source.include'],
        [
          '/recovery/external',
          `{"status":"COMPLETED","targetName":"db","recoveryPoint":"2026-01-01T00:00:00Z","startedAt":"2026-01-01T00:00:00Z","finishedAt":"2026-01-01T00:00:00Z","notes":${nested}}`,
          'notes',
        ],
        ['/storage-locations', `{"name":"n","kind":"local","settings":{"path":"/tmp/x","deep":{"deeper":${nested}}}}`, 'settings.deep.deeper'],
      ];
      for (const [path, body, field] of cases) {
        const res = await service.http().post(`${API}${path}`).set('X-API-Key', ADMIN_KEY).set('Content-Type', 'application/json').send(body);
        expect({ path, status: res.status, code: res.body.code }).toEqual({ path, status: 400, code: 'VALIDATION_FAILED' });
        expect(res.body.details).toHaveLength(1);
        expect(res.body.details[0].field.startsWith(field)).toBe(true);
        expect(res.body.details[0].message).toBe('nested deeper than 32 levels');
      }
      // 1 MB of brackets, without credentials: refused from the raw bytes in well under a second (JSON.parse with the
      // body parser's reviver took 6.3 s of event loop for it, before authentication)
      const started = Date.now();
      const flood = await service
        .http()
        .post(`${API}/backups`)
        .set('Content-Type', 'application/json')
        .send(`${'['.repeat(500_000)}${']'.repeat(500_000)}`);
      expect({ status: flood.status, field: flood.body.details?.[0]?.field.slice(0, 4) }).toEqual({ status: 400, field: '0.0.' });
      expect(Date.now() - started).toBeLessThan(1500);
      // a JSON body in another charset than UTF-8 (RFC 8259 section 8.1)
      const utf16 = await service
        .http()
        .post(`${API}/api-keys`)
        .set('X-API-Key', ADMIN_KEY)
        .set('Content-Type', 'application/json; charset=utf-16le')
        .send(Buffer.from('{"name":"k","roles":["VIEWER"]}', 'utf16le'));
      expect({ status: utf16.status, code: utf16.body.code }).toEqual({ status: 415, code: 'VALIDATION_FAILED' });
    });

    it('refuses strings that are not well-formed Unicode (a lone UTF-16 surrogate) with 400 naming the field', async () => {
      const external = { status: 'COMPLETED', recoveryPoint: '2026-01-01T00:00:00Z', startedAt: '2026-01-01T00:00:00Z', finishedAt: '2026-01-01T00:01:00Z' };
      const cases: [string, object, string][] = [
        ['/recovery/external', { ...external, targetName: 'db\ud800' }, 'targetName'],
        ['/recovery/external', { ...external, targetName: 'db', notes: 'x\udc00y' }, 'notes'],
        ['/recovery', { backupId: '00000000-0000-4000-8000-000000000000', type: 'FULL', target: { path: `${service.restoreRoot}/r\ud800` } }, 'target.path'],
        ['/backups', { engine: 'filesystem', source: { path: '/tmp', exclude: ['ok', 'a\udbff'] } }, 'source.exclude.1'],
        ['/api-keys', { name: 'k', roles: ['VIEWER'], ['key\ud800']: 1 }, 'key\ufffd'],
      ];
      for (const [path, body, field] of cases) {
        // JSON.stringify writes a lone surrogate as the escape \ud800, which JSON.parse turns back into one.
        const res = await service.http().post(`${API}${path}`).set('X-API-Key', ADMIN_KEY).set('Content-Type', 'application/json').send(JSON.stringify(body));
        expect({ path, status: res.status, code: res.body.code }).toEqual({ path, status: 400, code: 'VALIDATION_FAILED' });
        expect(res.body.details).toEqual([{ field, message: 'must be well-formed Unicode (it holds a lone UTF-16 surrogate)' }]);
      }
      const listed = await service.http().get(`${API}/recovery?limit=200`).set('X-API-Key', ADMIN_KEY);
      expect(listed.body.items.filter((r: { type: string }) => r.type === 'EXTERNAL')).toEqual([]);
    });

    it('refuses numeric query values beyond their bounds with 400 naming the parameter (page=10^20 was a 500 from bigint)', async () => {
      for (const path of [
        '/audit?page=99999999999999999999',
        '/audit?page=1e300',
        '/backups?page=99999999999999999999',
        '/recovery?page=1000001',
        '/audit?page=10000001',
      ]) {
        const res = await service.http().get(`${API}${path}`).set('X-API-Key', ADMIN_KEY);
        expect({ path, status: res.status, code: res.body.code, field: res.body.details?.[0]?.field }).toEqual({
          path,
          status: 400,
          code: 'VALIDATION_FAILED',
          field: 'page',
        });
      }
      const last = await service.http().get(`${API}/audit?page=10000000`).set('X-API-Key', ADMIN_KEY);
      expect({ status: last.status, items: last.body.items, page: last.body.page }).toEqual({ status: 200, items: [], page: 10_000_000 });
    });

    it('serves Swagger UI and the committed OpenAPI document without credentials', async () => {
      const ui = await service.http().get('/api-docs/');
      expect(ui.status).toBe(200);
      expect(ui.text).toContain('swagger-ui');
      const json = await service.http().get('/api-docs/openapi.json');
      expect(json.status).toBe(200);
      expect(json.body.openapi).toMatch(/^3\./);
      expect(Object.keys(json.body.paths)).toContain('/api/v1/disaster-recovery/backups');
      expect(json.body.components.securitySchemes['api-key']).toEqual(expect.objectContaining({ in: 'header', name: 'X-API-Key' }));
      // The UI's own scripts load under the helmet content security policy (same origin).
      const init = await service.http().get('/api-docs/swagger-ui-init.js');
      expect(init.status).toBe(200);
    });
  });

  describe('with a small rate limit, a CORS origin and docs off', () => {
    let service: TestService;
    beforeAll(async () => {
      service = await startService({
        DR_RATE_LIMIT_PER_MINUTE: '5',
        DR_CORS_ORIGINS: 'https://ops.example.com',
        DR_API_DOCS_ENABLED: 'false',
      });
    });
    afterAll(() => service?.close());

    it('answers 429 RATE_LIMITED after the limit, counts requests without a key, and never limits health probes', async () => {
      const statuses: number[] = [];
      for (let i = 0; i < 4; i++) statuses.push((await service.http().get(`${API}/backups`).set('X-API-Key', ADMIN_KEY)).status);
      statuses.push((await service.http().get(`${API}/backups`)).status); // unauthenticated: 401, still counted
      const limited = await service.http().get(`${API}/backups`).set('X-API-Key', ADMIN_KEY);
      expect(statuses).toEqual([200, 200, 200, 200, 401]);
      expect(limited.status).toBe(429);
      expect(limited.body).toEqual({
        statusCode: 429,
        code: 'RATE_LIMITED',
        message: expect.stringContaining('Retry-After'),
        detail: expect.stringContaining('5 per minute'),
      });
      expect(Number(limited.headers['retry-after'])).toBeGreaterThan(0);
      for (let i = 0; i < 10; i++) {
        expect((await service.http().get('/actuator/health/liveness')).status).toBe(200);
      }
    });

    it('sends CORS headers to the configured origin only', async () => {
      const ok = await service.http().options(`${API}/backups`).set('Origin', 'https://ops.example.com').set('Access-Control-Request-Method', 'GET');
      expect(ok.headers['access-control-allow-origin']).toBe('https://ops.example.com');
      const other = await service.http().options(`${API}/backups`).set('Origin', 'https://evil.example').set('Access-Control-Request-Method', 'GET');
      expect(other.headers['access-control-allow-origin']).toBeUndefined();
    });

    it('does not serve the API docs when DR_API_DOCS_ENABLED=false', async () => {
      expect((await service.http().get('/api-docs/openapi.json')).status).toBe(404);
    });
  });
});
