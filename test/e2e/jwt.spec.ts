import { AppConfig, ConfigurationError } from '../../src/config/app-config';
import { jwtStrategyOf } from '../../src/auth/auth.module';
import { SecretResolver } from '../../src/secrets/secret-resolver';
import { ADMIN_KEY, API, startService, TestService } from '../support/app';
import { epoch, JwksServer, signJwt, startJwksServer, testKey, TestKey } from '../support/jwt';

const SECRET = 'jwt-test-secret-0123456789abcdefghijklmnop';
const ISSUER = 'https://idp.example.test/realms/ops';
const AUDIENCE = 'disaster-recovery';

/** Every refusal is 401 in the one error shape, and never echoes the token. */
async function expectRefused(service: TestService, token: string, message?: RegExp): Promise<void> {
  const res = await service.http().get(`${API}/backups`).set('Authorization', `Bearer ${token}`);
  expect(res.status).toBe(401);
  expect(res.body).toMatchObject({ statusCode: 401, code: 'UNAUTHENTICATED' });
  if (message) expect(res.body.detail).toMatch(message);
  const text = JSON.stringify(res.body);
  for (const part of token.split('.').filter((p) => p.length > 8)) expect(text).not.toContain(part);
}

describe('bearer JWTs with an HS256 shared secret', () => {
  let service: TestService;
  const claims = (extra: Record<string, unknown> = {}) => ({ sub: 'alice', iss: ISSUER, aud: AUDIENCE, exp: epoch(300), ...extra });
  const hs = (payload: Record<string, unknown>, secret = SECRET) => signJwt(payload, { alg: 'HS256', secret });

  beforeAll(async () => {
    service = await startService({
      DR_TEST_JWT_SECRET: SECRET,
      DR_JWT_SECRET: 'env:DR_TEST_JWT_SECRET',
      DR_JWT_ISSUER: ISSUER,
      DR_JWT_AUDIENCE: AUDIENCE,
      DR_JWT_ROLES_CLAIM: 'realm_access.roles',
    });
  });
  afterAll(() => service?.close());

  it('accepts a valid token: roles from the nested claim (case-insensitive, unknown ones ignored), actor from sub', async () => {
    const token = hs(claims({ realm_access: { roles: ['backup_admin', 'offline_access', 'uma_authorization'] } }));
    expect((await service.http().get(`${API}/backups`).set('Authorization', `Bearer ${token}`)).status).toBe(200);
    const create = await service.http().post(`${API}/backups`).set('Authorization', `Bearer ${token}`).send({});
    expect(create.status).toBe(400); // past the guard: BACKUP_ADMIN may create backups, the body is what is wrong
    const recovery = await service.http().post(`${API}/recovery`).set('Authorization', `Bearer ${token}`).send({});
    expect(recovery.status).toBe(403);
    expect(recovery.body.code).toBe('FORBIDDEN');

    const admin = hs(claims({ sub: undefined, preferred_username: 'bob', realm_access: { roles: ['ADMIN'] } }));
    const key = await service
      .http()
      .post(`${API}/api-keys`)
      .set('Authorization', `Bearer ${admin}`)
      .send({ name: 'by-jwt', roles: ['VIEWER'] });
    expect(key.status).toBe(201);
    expect(key.body.createdBy).toBe('jwt:bob');
  });

  it('answers 403 to a valid token without a known role, and 401 to one without a subject', async () => {
    const noRole = await service
      .http()
      .get(`${API}/backups`)
      .set('Authorization', `Bearer ${hs(claims({ realm_access: { roles: ['superuser'] } }))}`);
    expect(noRole.status).toBe(403);
    expect(noRole.body.code).toBe('FORBIDDEN');
    await expectRefused(service, hs(claims({ sub: undefined, realm_access: { roles: ['ADMIN'] } })), /no sub or preferred_username/);
  });

  it('refuses expired, not-yet-valid, wrong-audience, wrong-issuer, badly signed, unsigned and malformed tokens with 401', async () => {
    const roles = { realm_access: { roles: ['ADMIN'] } };
    await expectRefused(service, hs(claims({ ...roles, exp: epoch(-60) })), /expired/);
    await expectRefused(service, hs(claims({ ...roles, nbf: epoch(600) })), /not valid yet/);
    await expectRefused(service, hs(claims({ ...roles, aud: 'another-service' })), /audience/);
    await expectRefused(service, hs(claims({ ...roles, iss: 'https://evil.example.test' })), /issuer/);
    await expectRefused(service, hs(claims(roles), 'another-secret-that-is-also-long-enough-0123'), /signature/);
    await expectRefused(service, signJwt(claims(roles), { alg: 'none' }));
    await expectRefused(service, 'not.a.jwt');
    const { privateKey } = testKey('RS256', 'k1');
    await expectRefused(service, signJwt(claims(roles), { alg: 'RS256', privateKey }), /algorithm/);
  });

  it('refuses a request presenting both an API key and a bearer token', async () => {
    const token = hs(claims({ realm_access: { roles: ['ADMIN'] } }));
    const res = await service.http().get(`${API}/backups`).set('Authorization', `Bearer ${token}`).set('X-API-Key', ADMIN_KEY);
    expect(res.status).toBe(401);
    expect(res.body.detail).toMatch(/not both/);
  });
});

describe('bearer JWTs with RS256 and ES256 keys from a JWKS', () => {
  let service: TestService;
  let jwks: JwksServer;
  let rsa: TestKey;
  let ec: TestKey;
  const claims = (extra: Record<string, unknown> = {}) => ({ sub: 'carol', aud: AUDIENCE, exp: epoch(300), roles: ['RECOVERY_ADMIN'], ...extra });

  beforeAll(async () => {
    rsa = testKey('RS256', 'rsa-1');
    ec = testKey('ES256', 'ec-1');
    jwks = await startJwksServer([rsa, ec]);
    service = await startService({ DR_JWT_JWKS_URL: jwks.url, DR_JWT_AUDIENCE: AUDIENCE });
  });
  afterAll(async () => {
    await service?.close();
    await jwks?.close();
  });

  it('accepts RS256 and ES256 tokens signed by keys of the JWKS (fetched once, then cached)', async () => {
    for (const key of [rsa, ec]) {
      const token = signJwt(claims(), { alg: key.alg, privateKey: key.privateKey, kid: key.kid });
      const list = await service.http().get(`${API}/recovery`).set('Authorization', `Bearer ${token}`);
      expect({ alg: key.alg, status: list.status }).toEqual({ alg: key.alg, status: 200 });
      const backups = await service.http().post(`${API}/backups`).set('Authorization', `Bearer ${token}`).send({});
      expect(backups.status).toBe(403); // RECOVERY_ADMIN only
    }
    expect(jwks.fetches()).toBeGreaterThanOrEqual(1);
    expect(jwks.fetches()).toBeLessThanOrEqual(2);
  });

  it('refuses algorithm confusion (HS256 keyed with the public key), alg none, unknown keys and a wrong audience', async () => {
    const publicPem = rsa.publicKey.export({ type: 'spki', format: 'pem' }) as string;
    await expectRefused(service, signJwt({ ...claims(), roles: ['ADMIN'] }, { alg: 'HS256', secret: publicPem }));
    await expectRefused(service, signJwt({ ...claims(), roles: ['ADMIN'] }, { alg: 'HS256', secret: Buffer.from(publicPem) }));
    await expectRefused(service, signJwt({ ...claims(), roles: ['ADMIN'] }, { alg: 'none' }));
    const stranger = testKey('RS256', 'rsa-1'); // same kid, another key
    await expectRefused(service, signJwt(claims(), { alg: 'RS256', privateKey: stranger.privateKey, kid: 'rsa-1' }), /signature/);
    const unknownKid = testKey('ES256', 'ec-unknown');
    await expectRefused(service, signJwt(claims(), { alg: 'ES256', privateKey: unknownKid.privateKey, kid: 'ec-unknown' }));
    await expectRefused(service, signJwt(claims({ aud: 'someone-else' }), { alg: 'ES256', privateKey: ec.privateKey, kid: ec.kid }), /audience/);
    await expectRefused(service, signJwt(claims({ exp: epoch(-5) }), { alg: 'RS256', privateKey: rsa.privateKey, kid: rsa.kid }), /expired/);
  });
});

describe('JWT configuration', () => {
  it('refuses a secret and a JWKS URL together, and JWT settings without a key source', () => {
    expect(() => AppConfig.fromEnv({ DR_JWT_SECRET: 'env:X', DR_JWT_JWKS_URL: 'https://idp.example.test/jwks' })).toThrow(/set one, not both/);
    expect(() => AppConfig.fromEnv({ DR_JWT_AUDIENCE: 'x' })).toThrow(/DR_JWT_AUDIENCE: has no effect/);
    expect(() => AppConfig.fromEnv({ DR_JWT_JWKS_URL: 'ftp://idp/jwks' })).toThrow(/DR_JWT_JWKS_URL must be an http/);
    expect(() => AppConfig.fromEnv({ DR_JWT_SECRET: 'plain-secret' })).toThrow(/DR_JWT_SECRET must be env:NAME/);
    const config = AppConfig.fromEnv({ DR_JWT_JWKS_URL: 'http://127.0.0.1:1/jwks' });
    expect(config.jwt).toMatchObject({ algorithms: ['RS256', 'ES256'], rolesClaim: 'roles' });
    expect(AppConfig.fromEnv({}).jwt).toBeUndefined();
  });

  it('stops the start on a short or missing HS256 secret, naming the variable but never the value', async () => {
    process.env.DR_TEST_SHORT_SECRET = 'too-short-secret';
    try {
      const config = AppConfig.fromEnv({ DR_JWT_SECRET: 'env:DR_TEST_SHORT_SECRET' });
      const error = await jwtStrategyOf(config, new SecretResolver()).catch((e: Error) => e);
      expect(error).toBeInstanceOf(ConfigurationError);
      expect((error as Error).message).toMatch(/DR_JWT_SECRET: the secret must be at least 32 bytes/);
      expect((error as Error).message).not.toContain('too-short-secret');
      const missing = AppConfig.fromEnv({ DR_JWT_SECRET: 'env:DR_TEST_UNSET_SECRET' });
      await expect(jwtStrategyOf(missing, new SecretResolver())).rejects.toThrow(/DR_TEST_UNSET_SECRET is not set/);
    } finally {
      delete process.env.DR_TEST_SHORT_SECRET;
    }
  });

  it('refuses bearer tokens when no JWT key source is configured', async () => {
    const service = await startService();
    try {
      const token = signJwt({ sub: 'x', roles: ['ADMIN'], exp: epoch(60) }, { alg: 'HS256', secret: SECRET });
      const res = await service.http().get(`${API}/backups`).set('Authorization', `Bearer ${token}`);
      expect(res.status).toBe(401);
      expect(res.body.detail).toMatch(/bearer tokens are not accepted/);
    } finally {
      await service.close();
    }
  });
});
