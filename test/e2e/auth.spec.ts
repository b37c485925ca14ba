import { ADMIN_KEY, API, startService, TestService } from '../support/app';

type Method = 'get' | 'post' | 'patch' | 'delete';
const ID = '00000000-0000-4000-8000-000000000000';
const READERS = ['VIEWER', 'OPERATOR', 'BACKUP_ADMIN', 'RECOVERY_ADMIN'];

/** Every API route with the roles allowed on it besides ADMIN (the seed: backups need BACKUP_ADMIN, recoveries RECOVERY_ADMIN). */
const ROUTES: { method: Method; path: string; roles: string[] }[] = [
  { method: 'post', path: '/backups', roles: ['BACKUP_ADMIN'] },
  { method: 'get', path: '/backups', roles: READERS },
  { method: 'get', path: `/backups/${ID}`, roles: READERS },
  { method: 'get', path: `/backups/${ID}/manifest`, roles: READERS },
  { method: 'post', path: `/backups/${ID}/verify`, roles: ['BACKUP_ADMIN', 'OPERATOR'] },
  { method: 'get', path: `/backups/${ID}/diff/${ID}`, roles: READERS },
  { method: 'post', path: '/backup-plans', roles: ['BACKUP_ADMIN'] },
  { method: 'get', path: '/backup-plans', roles: READERS },
  { method: 'get', path: `/backup-plans/${ID}`, roles: READERS },
  { method: 'patch', path: `/backup-plans/${ID}`, roles: ['BACKUP_ADMIN'] },
  { method: 'delete', path: `/backup-plans/${ID}`, roles: ['BACKUP_ADMIN'] },
  { method: 'post', path: `/backup-plans/${ID}/run`, roles: ['BACKUP_ADMIN', 'OPERATOR'] },
  { method: 'post', path: '/recovery', roles: ['RECOVERY_ADMIN'] },
  { method: 'get', path: '/recovery', roles: READERS },
  { method: 'get', path: `/recovery/${ID}`, roles: READERS },
  { method: 'post', path: '/api-keys', roles: [] },
  { method: 'get', path: '/api-keys', roles: [] },
  { method: 'delete', path: `/api-keys/${ID}`, roles: [] },
  { method: 'post', path: '/storage-locations', roles: [] },
  { method: 'get', path: '/storage-locations', roles: READERS },
  { method: 'get', path: `/storage-locations/${ID}`, roles: READERS },
];

describe('authentication and role checks', () => {
  let service: TestService;
  const keys: Record<string, string> = { ADMIN: ADMIN_KEY };

  beforeAll(async () => {
    service = await startService();
    for (const role of READERS) {
      const res = await service
        .http()
        .post(`${API}/api-keys`)
        .set('X-API-Key', ADMIN_KEY)
        .send({ name: `k-${role}`, roles: [role] });
      expect(res.status).toBe(201);
      keys[role] = res.body.secret;
    }
  });

  afterAll(() => service.close());

  it('answers 401 without a key and with an unknown key, on every route', async () => {
    for (const route of ROUTES) {
      const none = await service.http()[route.method](`${API}${route.path}`).send({});
      expect({ route: route.path, status: none.status }).toEqual({ route: route.path, status: 401 });
      const wrong = await service.http()[route.method](`${API}${route.path}`).set('X-API-Key', 'dr_bogus_key_that_is_long_enough').send({});
      expect(wrong.status).toBe(401);
      expect(wrong.body.code).toBe('UNAUTHENTICATED');
    }
  });

  it('walks the role × route matrix: allowed roles pass the guard, others get 403', async () => {
    const mismatches: string[] = [];
    for (const route of ROUTES) {
      for (const role of ['ADMIN', ...READERS]) {
        const res = await service.http()[route.method](`${API}${route.path}`).set('X-API-Key', keys[role]).send({});
        const allowed = role === 'ADMIN' || route.roles.includes(role);
        const passed = res.status !== 401 && res.status !== 403;
        if (allowed !== passed) mismatches.push(`${route.method.toUpperCase()} ${route.path} as ${role}: ${res.status}`);
        expect(res.status).toBeLessThan(500);
      }
    }
    expect(mismatches).toEqual([]);
  });

  it('health probes are public', async () => {
    for (const path of ['/actuator/health', '/actuator/health/liveness', '/actuator/health/readiness']) {
      const res = await service.http().get(path);
      expect(res.status).toBe(200);
      expect(res.body.status).toBe('ok');
    }
    const readiness = await service.http().get('/actuator/health/readiness');
    expect(Object.keys(readiness.body.details)).toEqual(['database', 'storage']);
  });

  it('creates, lists and revokes keys; secrets are shown once and never listed; a revoked key stops working', async () => {
    const created = await service
      .http()
      .post(`${API}/api-keys`)
      .set('X-API-Key', ADMIN_KEY)
      .send({ name: 'ci-bot', roles: ['OPERATOR'] });
    expect(created.status).toBe(201);
    expect(created.body.secret).toMatch(/^dr_[0-9a-f]{12}_/);
    const secret = created.body.secret as string;
    expect((await service.http().get(`${API}/backups`).set('X-API-Key', secret)).status).toBe(200);

    const list = await service.http().get(`${API}/api-keys`).set('X-API-Key', ADMIN_KEY);
    const text = JSON.stringify(list.body);
    expect(text).not.toContain(secret);
    expect(text).not.toContain(ADMIN_KEY.slice(0, 8)); // not even a fragment of the bootstrap key
    expect(text).not.toMatch(/sha256|secret/i);
    expect(list.body.find((k: { id: string }) => k.id === created.body.id)).toMatchObject({ name: 'ci-bot', roles: ['OPERATOR'], revokedAt: null });

    const revoking = Date.now();
    const revoked = await service.http().delete(`${API}/api-keys/${created.body.id}`).set('X-API-Key', ADMIN_KEY);
    expect(revoked.status).toBe(200);
    // revoked now: an ISO timestamp taken while the request ran (same machine clock)
    expect(revoked.body.revokedAt).toBe(new Date(revoked.body.revokedAt).toISOString());
    expect(Date.parse(revoked.body.revokedAt)).toBeGreaterThanOrEqual(revoking - 1);
    expect(Date.parse(revoked.body.revokedAt)).toBeLessThanOrEqual(Date.now());
    const after = await service.http().get(`${API}/backups`).set('X-API-Key', secret);
    expect(after.status).toBe(401);

    const badRole = await service
      .http()
      .post(`${API}/api-keys`)
      .set('X-API-Key', ADMIN_KEY)
      .send({ name: 'x', roles: ['ROOT'] });
    expect(badRole.status).toBe(400);
    expect(badRole.body.details[0].field).toBe('roles');
  });
});
