import { RequestMethod } from '@nestjs/common';
import { METHOD_METADATA, PATH_METADATA } from '@nestjs/common/constants';
import { MetadataScanner, ModulesContainer } from '@nestjs/core';
import { PUBLIC_KEY, ROLES_KEY } from '../../src/auth/roles.decorator';
import { ADMIN_KEY, API, startService, TestService } from '../support/app';
import { epoch, signJwt } from '../support/jwt';

const JWT_SECRET = 'role-matrix-jwt-secret-0123456789abcdefghij';
const ID = '00000000-0000-4000-8000-000000000000';
const READERS = ['VIEWER', 'OPERATOR', 'BACKUP_ADMIN', 'RECOVERY_ADMIN'];
const ROLES = ['ADMIN', ...READERS];
const PUBLIC = 'PUBLIC';

/**
 * Every route of the application and who may pass the guard on it besides ADMIN (the seed: backups need
 * BACKUP_ADMIN, recoveries RECOVERY_ADMIN, key and location management ADMIN only, reading any role).
 * A route added to the application but not to this table fails the test: decide its roles here.
 */
const EXPECTED: Record<string, string[] | typeof PUBLIC> = {
  [`POST ${API}/api-keys`]: [],
  [`GET ${API}/api-keys`]: [],
  [`DELETE ${API}/api-keys/:id`]: [],
  [`POST ${API}/storage-locations`]: [],
  [`GET ${API}/storage-locations`]: READERS,
  [`GET ${API}/storage-locations/:id`]: READERS,
  [`POST ${API}/backups`]: ['BACKUP_ADMIN'],
  [`GET ${API}/backups`]: READERS,
  [`GET ${API}/backups/:id`]: READERS,
  [`GET ${API}/backups/:id/manifest`]: READERS,
  [`POST ${API}/backups/:id/verify`]: ['BACKUP_ADMIN', 'OPERATOR'],
  [`GET ${API}/backups/:id/files`]: READERS,
  [`POST ${API}/backups/:id/copies`]: ['BACKUP_ADMIN', 'OPERATOR'],
  [`GET ${API}/backups/:id/verifications`]: READERS,
  [`GET ${API}/backups/:id/diff/:otherId`]: READERS,
  [`GET ${API}/verifications/:id`]: READERS,
  [`POST ${API}/backup-plans`]: ['BACKUP_ADMIN'],
  [`GET ${API}/backup-plans`]: READERS,
  [`GET ${API}/backup-plans/:id`]: READERS,
  [`PATCH ${API}/backup-plans/:id`]: ['BACKUP_ADMIN'],
  [`DELETE ${API}/backup-plans/:id`]: ['BACKUP_ADMIN'],
  [`POST ${API}/backup-plans/:id/retention`]: ['BACKUP_ADMIN'],
  [`POST ${API}/backup-plans/:id/run`]: ['BACKUP_ADMIN', 'OPERATOR'],
  [`POST ${API}/recovery`]: ['RECOVERY_ADMIN'],
  [`POST ${API}/recovery/:id/approve`]: ['RECOVERY_ADMIN'],
  [`POST ${API}/recovery/:id/reject`]: ['RECOVERY_ADMIN'],
  [`POST ${API}/recovery/external`]: ['RECOVERY_ADMIN', 'OPERATOR'],
  [`GET ${API}/recovery`]: READERS,
  [`GET ${API}/recovery/:id`]: READERS,
  [`POST ${API}/wal-archives`]: ['BACKUP_ADMIN'],
  [`GET ${API}/wal-archives`]: READERS,
  [`GET ${API}/wal-archives/:id`]: READERS,
  [`GET ${API}/wal-archives/:id/client-config`]: ['BACKUP_ADMIN', 'RECOVERY_ADMIN'],
  ['GET /actuator/health']: PUBLIC,
  ['GET /actuator/health/liveness']: PUBLIC,
  ['GET /actuator/health/readiness']: PUBLIC,
  ['GET /actuator/prometheus']: PUBLIC,
  [`GET ${API}/audit`]: ['VIEWER'],
  [`GET ${API}/audit/verify`]: ['VIEWER'],
  [`GET ${API}/audit/export`]: ['VIEWER'],
};

interface Route {
  method: string;
  path: string;
}

/** The routes Express actually serves (method and path pattern), read from its router. */
function servedRoutes(service: TestService): Route[] {
  const express = service.app.getHttpAdapter().getInstance();
  const stack: { route?: { path: string; methods: Record<string, boolean> } }[] = (express.router ?? express._router).stack;
  return (
    stack
      // `/{*path}` layers on every method are the catch-all Nest registers for middleware bound to all routes
      // (the request logger), not handlers
      // and `/api-docs` is Swagger UI with the public OpenAPI document, mounted on Express outside Nest's controllers
      // (hardening.spec.ts checks it is served)
      .filter((layer) => layer.route && layer.route.path !== '/{*path}' && !layer.route.path.startsWith('/api-docs'))
      .flatMap((layer) => Object.keys(layer.route!.methods).map((m) => ({ method: m.toUpperCase(), path: layer.route!.path })))
  );
}

/** Every controller handler of every module with its `@Roles`/`@Public` declaration (handler's, else its class's). */
function declaredHandlers(service: TestService): { route: string; roles?: string[]; isPublic: boolean }[] {
  const scanner = new MetadataScanner();
  const handlers: { route: string; roles?: string[]; isPublic: boolean }[] = [];
  for (const module of service.app.get(ModulesContainer).values()) {
    for (const wrapper of module.controllers.values()) {
      const controller = wrapper.metatype as { prototype: Record<string, unknown>; name: string } | undefined;
      if (!controller) continue;
      const base = String(Reflect.getMetadata(PATH_METADATA, controller) ?? '');
      for (const name of scanner.getAllMethodNames(controller.prototype)) {
        const handler = controller.prototype[name] as object;
        const path = Reflect.getMetadata(PATH_METADATA, handler) as string | undefined;
        if (path === undefined) continue;
        const method = RequestMethod[Reflect.getMetadata(METHOD_METADATA, handler) as number];
        const full = `/${[base, path]
          .map((p) => p.replace(/^\/|\/$/g, ''))
          .filter(Boolean)
          .join('/')}`;
        handlers.push({
          route: `${method} ${full}`,
          roles: Reflect.getMetadata(ROLES_KEY, handler) ?? Reflect.getMetadata(ROLES_KEY, controller),
          isPublic: Boolean(Reflect.getMetadata(PUBLIC_KEY, handler) ?? Reflect.getMetadata(PUBLIC_KEY, controller)),
        });
      }
    }
  }
  return handlers;
}

describe('role × route matrix (every route, API keys and JWTs of every role)', () => {
  let service: TestService;
  let routes: Route[];
  const credentials: { label: string; header: [string, string] | null; role: string | null; expect?: 401 }[] = [];
  const jwt = (payload: Record<string, unknown>, secret = JWT_SECRET) => `Bearer ${signJwt({ exp: epoch(600), ...payload }, { alg: 'HS256', secret })}`;

  beforeAll(async () => {
    service = await startService({ DR_TEST_MATRIX_JWT_SECRET: JWT_SECRET, DR_JWT_SECRET: 'env:DR_TEST_MATRIX_JWT_SECRET' });
    routes = servedRoutes(service);
    credentials.push({ label: 'no credentials', header: null, role: null, expect: 401 });
    credentials.push({ label: 'unknown API key', header: ['X-API-Key', 'dr_0123456789ab_unknownkeyunknownkeyunknownkey'], role: null, expect: 401 });
    credentials.push({
      label: 'JWT with a bad signature',
      header: ['Authorization', jwt({ sub: 'x', roles: ['ADMIN'] }, 'x'.repeat(40))],
      role: null,
      expect: 401,
    });
    credentials.push({ label: 'expired JWT', header: ['Authorization', jwt({ sub: 'x', roles: ['ADMIN'], exp: epoch(-10) })], role: null, expect: 401 });
    credentials.push({ label: 'JWT without a known role', header: ['Authorization', jwt({ sub: 'nobody', roles: ['ROOT'] })], role: null });
    for (const role of ROLES) {
      let key = ADMIN_KEY;
      if (role !== 'ADMIN') {
        const res = await service
          .http()
          .post(`${API}/api-keys`)
          .set('X-API-Key', ADMIN_KEY)
          .send({ name: `matrix-${role}`, roles: [role] });
        expect(res.status).toBe(201);
        key = res.body.secret;
      }
      credentials.push({ label: `API key ${role}`, header: ['X-API-Key', key], role });
      credentials.push({ label: `JWT ${role}`, header: ['Authorization', jwt({ sub: `user-${role}`, roles: [role] })], role });
    }
  });

  afterAll(() => service?.close());

  it('finds every served route in the expected table, and every table entry served', () => {
    const served = routes.map((r) => `${r.method} ${r.path}`).sort();
    expect(served.length).toBeGreaterThan(25);
    expect(served.filter((r) => !(r in EXPECTED))).toEqual([]);
    expect(Object.keys(EXPECTED).filter((r) => !served.includes(r))).toEqual([]);
  });

  it('finds a @Roles or @Public declaration on every controller handler, matching the table', () => {
    const handlers = declaredHandlers(service);
    expect(handlers.map((h) => h.route).sort()).toEqual(routes.map((r) => `${r.method} ${r.path}`).sort());
    expect(handlers.filter((h) => !h.isPublic && h.roles === undefined).map((h) => h.route)).toEqual([]);
    for (const h of handlers) {
      const expected = EXPECTED[h.route];
      expect({ route: h.route, declared: h.isPublic ? PUBLIC : [...(h.roles ?? [])].sort() }).toEqual({
        route: h.route,
        declared: expected === PUBLIC ? PUBLIC : [...expected].sort(),
      });
    }
  });

  it('lets exactly the allowed credentials past the guard on every route over HTTP', async () => {
    const mismatches: string[] = [];
    let requests = 0;
    for (const route of routes) {
      const expected = EXPECTED[`${route.method} ${route.path}`];
      const url = route.path.replace(/:[A-Za-z]+/g, ID);
      for (const credential of credentials) {
        let req = service.http()[route.method.toLowerCase() as 'get' | 'post' | 'patch' | 'delete'](url);
        if (credential.header) req = req.set(...credential.header);
        const res = await req.send({});
        requests++;
        if (res.status >= 500) mismatches.push(`${route.method} ${route.path} as ${credential.label}: ${res.status}`);
        let want: 'allowed' | 401 | 403;
        if (expected === PUBLIC) want = 'allowed';
        else if (credential.expect) want = credential.expect;
        else if (credential.role === 'ADMIN' || (credential.role && expected.includes(credential.role))) want = 'allowed';
        else want = 403;
        const got = res.status === 401 || res.status === 403 ? res.status : 'allowed';
        if (got !== want) mismatches.push(`${route.method} ${route.path} as ${credential.label}: wanted ${want}, got ${res.status}`);
        if (got !== 'allowed') expect(res.body).toMatchObject({ statusCode: got, code: got === 401 ? 'UNAUTHENTICATED' : 'FORBIDDEN' });
      }
    }
    expect(mismatches).toEqual([]);
    expect(requests).toBe(routes.length * credentials.length);
  });
});
