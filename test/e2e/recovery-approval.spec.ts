import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ADMIN_KEY, API, backupAndWait, startService, TestService, waitFor } from '../support/app';
import { sql } from '../support/database';
import { epoch, signJwt } from '../support/jwt';

const JWT_SECRET = 'approval-jwt-secret-0123456789abcdefghijkl';
const bearer = (sub: string, roles: string[]) => `Bearer ${signJwt({ sub, roles, exp: epoch(600) }, { alg: 'HS256', secret: JWT_SECRET })}`;

/** A small directory to back up and restore. */
function makeSource(): string {
  const source = mkdtempSync(join(tmpdir(), 'dr-approval-src-'));
  mkdirSync(join(source, 'etc'));
  writeFileSync(join(source, 'etc', 'app.conf'), 'mode=production\nreplicas=3\n');
  writeFileSync(join(source, 'data.bin'), Buffer.alloc(64 * 1024, 7));
  return source;
}

/** Creates API keys named `name` with one role. @returns the secret */
async function keyFor(service: TestService, name: string, role: string): Promise<string> {
  const res = await service
    .http()
    .post(`${API}/api-keys`)
    .set('X-API-Key', ADMIN_KEY)
    .send({ name, roles: [role] });
  expect(res.status).toBe(201);
  return res.body.secret;
}

describe('two-person approval of production recoveries', () => {
  let service: TestService;
  let source: string;
  let backupId: string;
  const keys: Record<string, string> = {};
  const as = (credential: string): [string, string] => (credential.startsWith('Bearer ') ? ['Authorization', credential] : ['X-API-Key', credential]);
  const request = (credential: string, target: string, extra: object = {}) =>
    service
      .http()
      .post(`${API}/recovery`)
      .set(...as(credential))
      .send({ backupId, type: 'FULL', target: { path: target }, environment: 'production', ...extra });
  const decide = (credential: string, id: string, verb: 'approve' | 'reject') =>
    service
      .http()
      .post(`${API}/recovery/${id}/${verb}`)
      .set(...as(credential))
      .send({});
  const read = async (id: string) => (await service.http().get(`${API}/recovery/${id}`).set('X-API-Key', keys.viewer)).body;

  beforeAll(async () => {
    service = await startService({ DR_TEST_APPROVAL_JWT_SECRET: JWT_SECRET, DR_JWT_SECRET: 'env:DR_TEST_APPROVAL_JWT_SECRET' });
    keys.alice = await keyFor(service, 'alice', 'RECOVERY_ADMIN');
    keys.bob = await keyFor(service, 'bob', 'RECOVERY_ADMIN');
    keys.viewer = await keyFor(service, 'viewer', 'VIEWER');
    keys.operator = await keyFor(service, 'operator', 'OPERATOR');
    source = makeSource();
    const backup = await backupAndWait(service, { engine: 'filesystem', source: { path: source } });
    expect(backup.status).toBe('COMPLETED');
    backupId = backup.id;
  });

  afterAll(async () => {
    await service?.close();
    if (source) rmSync(source, { recursive: true, force: true });
  });

  it('holds a production recovery until a second RECOVERY_ADMIN approves it; the requester cannot; then it restores', async () => {
    const target = join(service.restoreRoot, 'approved');
    const created = await request(keys.alice, target);
    expect(created.status).toBe(202);
    expect(created.body).toMatchObject({ status: 'AWAITING_APPROVAL', environment: 'production', requestedBy: 'apikey:alice', approvedBy: null });
    const expiresIn = Date.parse(created.body.approvalExpiresAt) - Date.now();
    expect(expiresIn).toBeGreaterThan(3590_000);
    expect(expiresIn).toBeLessThanOrEqual(3600_000);

    await new Promise((r) => setTimeout(r, 1500));
    expect((await read(created.body.id)).status).toBe('AWAITING_APPROVAL');
    expect(existsSync(target)).toBe(false); // nothing ran

    const self = await decide(keys.alice, created.body.id, 'approve');
    expect(self.status).toBe(403);
    expect(self.body.code).toBe('SELF_APPROVAL');
    for (const other of [keys.viewer, keys.operator]) {
      const res = await decide(other, created.body.id, 'approve');
      expect(res.status).toBe(403);
      expect(res.body.code).toBe('FORBIDDEN');
    }
    expect((await read(created.body.id)).status).toBe('AWAITING_APPROVAL');

    const approved = await decide(keys.bob, created.body.id, 'approve');
    expect(approved.status).toBe(200);
    expect(approved.body).toMatchObject({ approvedBy: 'apikey:bob', requestedBy: 'apikey:alice' });
    expect(['PENDING', 'RUNNING', 'COMPLETED']).toContain(approved.body.status);
    expect(Date.parse(approved.body.approvedAt)).toBeGreaterThan(Date.parse(created.body.createdAt));

    const done = await waitFor(
      () => read(created.body.id),
      (r) => ['COMPLETED', 'FAILED'].includes(r.status),
    );
    expect(done).toMatchObject({ status: 'COMPLETED', error: null, approvedBy: 'apikey:bob' });
    expect(readFileSync(join(target, 'etc', 'app.conf'), 'utf8')).toBe('mode=production\nreplicas=3\n');
    expect(readFileSync(join(target, 'data.bin')).equals(Buffer.alloc(64 * 1024, 7))).toBe(true);

    const again = await decide(keys.bob, created.body.id, 'approve');
    expect(again.status).toBe(409);
    expect(again.body.code).toBe('NOT_AWAITING_APPROVAL');
  });

  it('tells people apart across API keys and JWTs: a JWT subject cannot approve its own request, anyone else can', async () => {
    const target = join(service.restoreRoot, 'jwt-approved');
    const created = await request(bearer('carol', ['recovery_admin']), target);
    expect(created.status).toBe(202);
    expect(created.body.requestedBy).toBe('jwt:carol');
    const self = await decide(bearer('carol', ['RECOVERY_ADMIN']), created.body.id, 'approve');
    expect(self.status).toBe(403);
    expect(self.body.code).toBe('SELF_APPROVAL');
    const approved = await decide(bearer('dave', ['ADMIN']), created.body.id, 'approve');
    expect(approved.status).toBe(200);
    expect(approved.body.approvedBy).toBe('jwt:dave');
    const done = await waitFor(
      () => read(created.body.id),
      (r) => ['COMPLETED', 'FAILED'].includes(r.status),
    );
    expect(done.status).toBe('COMPLETED');
  });

  it('rejects (cancels) a request: it never runs and can no longer be approved', async () => {
    const target = join(service.restoreRoot, 'rejected');
    const created = await request(keys.alice, target);
    const rejected = await decide(keys.bob, created.body.id, 'reject');
    expect(rejected.status).toBe(200);
    expect(rejected.body).toMatchObject({ status: 'REJECTED', rejectedBy: 'apikey:bob', approvedBy: null });
    const late = await decide(keys.bob, created.body.id, 'approve');
    expect(late.status).toBe(409);
    expect(late.body.code).toBe('NOT_AWAITING_APPROVAL');
    await new Promise((r) => setTimeout(r, 500));
    expect(existsSync(target)).toBe(false);

    const listed = await service.http().get(`${API}/recovery?status=REJECTED`).set('X-API-Key', keys.viewer);
    expect(listed.body.items.map((r: { id: string }) => r.id)).toContain(created.body.id);
  });

  it('runs non-production recoveries at once, validates the environment, and refuses approving what needs no approval', async () => {
    const plain = await service
      .http()
      .post(`${API}/recovery`)
      .set('X-API-Key', keys.alice)
      .send({ backupId, type: 'FULL', target: { path: join(service.restoreRoot, 'plain') } });
    expect(plain.status).toBe(202);
    expect(plain.body).toMatchObject({ environment: 'non-production', approvalExpiresAt: null });
    expect(plain.body.status).not.toBe('AWAITING_APPROVAL');
    const approve = await decide(keys.bob, plain.body.id, 'approve');
    expect(approve.status).toBe(409);
    expect(approve.body.code).toBe('NOT_AWAITING_APPROVAL');

    const bad = await request(keys.alice, join(service.restoreRoot, 'bad'), { environment: 'prod' });
    expect(bad.status).toBe(400);
    expect(bad.body.details[0]).toMatchObject({ field: 'environment' });
    const missing = await decide(keys.bob, '00000000-0000-4000-8000-000000000000', 'approve');
    expect(missing.status).toBe(404);
  });
});

describe('expiry of unapproved production recoveries', () => {
  let service: TestService;
  let source: string;
  let backupId: string;
  let alice: string;
  let bob: string;

  beforeAll(async () => {
    service = await startService({ DR_APPROVAL_TTL_SECONDS: '1' });
    alice = await keyFor(service, 'alice', 'RECOVERY_ADMIN');
    bob = await keyFor(service, 'bob', 'RECOVERY_ADMIN');
    source = makeSource();
    backupId = (await backupAndWait(service, { engine: 'filesystem', source: { path: source } })).id;
  });

  afterAll(async () => {
    await service?.close();
    if (source) rmSync(source, { recursive: true, force: true });
  });

  const create = async (name: string) => {
    const res = await service
      .http()
      .post(`${API}/recovery`)
      .set('X-API-Key', alice)
      .send({ backupId, type: 'FULL', target: { path: join(service.restoreRoot, name) }, environment: 'production' });
    expect(res.status).toBe(202);
    expect(res.body.status).toBe('AWAITING_APPROVAL');
    return res.body.id as string;
  };

  it('marks an overdue request EXPIRED when it is read; an expired request cannot be approved (409)', async () => {
    const id = await create('lazy');
    await new Promise((r) => setTimeout(r, 1300));
    const read = await service.http().get(`${API}/recovery/${id}`).set('X-API-Key', bob);
    expect(read.body).toMatchObject({ status: 'EXPIRED', approvedBy: null });
    const approve = await service.http().post(`${API}/recovery/${id}/approve`).set('X-API-Key', bob).send({});
    expect(approve.status).toBe(409);
    expect(approve.body.code).toBe('APPROVAL_EXPIRED');
    expect(existsSync(join(service.restoreRoot, 'lazy'))).toBe(false);
  });

  it('expires overdue requests in the background sweep, without anyone reading them', async () => {
    const id = await create('swept');
    const rows = await waitFor(
      () => sql<{ status: string }>(service.database, 'SELECT status FROM recoveries WHERE id = $1', [id]),
      (r) => r[0]?.status === 'EXPIRED',
      10_000,
    );
    expect(rows[0].status).toBe('EXPIRED');
  });

  it('refuses approval at the deadline even when the request was not yet marked expired', async () => {
    const id = await create('raced');
    await sql(service.database, `UPDATE recoveries SET approval_expires_at = now() - interval '1 second' WHERE id = $1`, [id]);
    const approve = await service.http().post(`${API}/recovery/${id}/approve`).set('X-API-Key', bob).send({});
    expect(approve.status).toBe(409);
    expect(approve.body.code).toBe('APPROVAL_EXPIRED');
  });
});
