import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { canonicalJson } from '../../src/audit/audit-chain';
import { AuditService } from '../../src/audit/audit.service';
import { createApp } from '../../src/bootstrap';
import { AppConfig } from '../../src/config/app-config';
import { sql } from '../support/database';
import { ADMIN_KEY, API, backupAndWait, recoverAndWait, startService, TestService, waitFor } from '../support/app';

type Entry = Record<string, any>;

describe('audit trail', () => {
  let service: TestService;
  const keys: Record<string, string> = {};
  const work = mkdtempSync(join(tmpdir(), 'dr-audit-'));

  /** Entries matching `query` (the API's filters), newest first. */
  async function entries(query: Record<string, string | number> = {}): Promise<Entry[]> {
    const res = await service
      .http()
      .get(`${API}/audit`)
      .query({ limit: 500, ...query })
      .set('X-API-Key', ADMIN_KEY);
    expect(res.status).toBe(200);
    return res.body.items;
  }

  /** Waits until an entry with these fields exists (requests are recorded once their response is sent). */
  async function entryWhere(match: Partial<Entry>): Promise<Entry> {
    const found = await waitFor(
      async () => (await entries()).find((e) => Object.entries(match).every(([k, v]) => JSON.stringify(e[k]) === JSON.stringify(v))),
      (e) => e !== undefined,
      10_000,
    );
    if (!found) throw new Error(`no audit entry with ${JSON.stringify(match)}`);
    return found;
  }

  beforeAll(async () => {
    service = await startService();
    for (const role of ['VIEWER', 'OPERATOR', 'BACKUP_ADMIN']) {
      const res = await service
        .http()
        .post(`${API}/api-keys`)
        .set('X-API-Key', ADMIN_KEY)
        .send({ name: `audit-${role}`, roles: [role] });
      keys[role] = res.body.secret;
    }
  });

  afterAll(async () => {
    await service?.close();
    rmSync(work, { recursive: true, force: true });
  });

  it('records mutating requests with actor, roles, outcome, status and request id, including those the guard refuses', async () => {
    const created = await service
      .http()
      .post(`${API}/api-keys`)
      .set('X-API-Key', ADMIN_KEY)
      .set('X-Request-Id', 'trace-abc.123')
      .send({ name: 'audited-key', roles: ['OPERATOR'] });
    expect(created.status).toBe(201);
    expect(created.headers['x-request-id']).toBe('trace-abc.123');
    const request = await entryWhere({ requestId: 'trace-abc.123' });
    expect(request).toMatchObject({
      actor: 'apikey:bootstrap-admin',
      roles: ['ADMIN'],
      action: 'POST /api-keys',
      targetType: 'api-keys',
      targetId: created.body.id,
      outcome: 'SUCCESS',
      httpStatus: 201,
      details: { roles: ['OPERATOR'] },
    });
    expect(await entryWhere({ action: 'api-key.create', targetId: created.body.id })).toMatchObject({ actor: 'apikey:bootstrap-admin', outcome: 'SUCCESS' });

    const anonymous = await service.http().post(`${API}/backups`).set('X-Request-Id', 'bad id with spaces').send({ engine: 'filesystem' });
    expect(anonymous.status).toBe(401);
    const generated = anonymous.headers['x-request-id'];
    expect(generated).toMatch(/^[0-9a-f-]{36}$/);
    expect(await entryWhere({ requestId: generated })).toMatchObject({
      actor: 'anonymous',
      roles: [],
      outcome: 'DENIED',
      httpStatus: 401,
      action: 'POST /backups',
    });

    const forbidden = await service
      .http()
      .post(`${API}/backups`)
      .set('X-API-Key', keys.VIEWER)
      .send({ engine: 'filesystem', source: { path: work } });
    expect(forbidden.status).toBe(403);
    expect(await entryWhere({ requestId: forbidden.headers['x-request-id'] })).toMatchObject({
      actor: 'apikey:audit-VIEWER',
      roles: ['VIEWER'],
      outcome: 'DENIED',
      httpStatus: 403,
      details: { engine: 'filesystem', errorCode: 'FORBIDDEN' },
    });

    const invalid = await service.http().post(`${API}/recovery`).set('X-API-Key', ADMIN_KEY).send({ backupId: 'nope', type: 'FULL' });
    expect(invalid.status).toBe(400);
    expect(await entryWhere({ requestId: invalid.headers['x-request-id'] })).toMatchObject({
      outcome: 'FAILURE',
      httpStatus: 400,
      action: 'POST /recovery',
      details: { type: 'FULL', errorCode: 'VALIDATION_FAILED' },
    });

    const revoked = await service.http().delete(`${API}/api-keys/${created.body.id}`).set('X-API-Key', ADMIN_KEY);
    expect(revoked.status).toBe(200);
    expect(await entryWhere({ action: 'DELETE /api-keys/:id', targetId: created.body.id })).toMatchObject({ outcome: 'SUCCESS', httpStatus: 200 });
    expect(await entryWhere({ action: 'api-key.revoke', targetId: created.body.id })).toMatchObject({ actor: 'apikey:bootstrap-admin' });

    // Reads are not recorded.
    expect((await entries()).some((e) => e.action.startsWith('GET '))).toBe(false);
  });

  it('records backup, verification, copy-less restore outcomes, and keeps secrets and sources out', async () => {
    const source = join(work, 'src');
    mkdirSync(source, { recursive: true });
    writeFileSync(join(source, 'a.txt'), 'audited\n');
    const backup = await backupAndWait(service, { engine: 'filesystem', source: { path: source } }, keys.BACKUP_ADMIN);
    expect(backup.status).toBe('COMPLETED');
    expect(await entryWhere({ action: 'backup.run', targetId: backup.id })).toMatchObject({
      actor: 'apikey:audit-BACKUP_ADMIN',
      outcome: 'SUCCESS',
      targetType: 'backups',
      details: { engine: 'filesystem', trigger: 'MANUAL' },
    });
    expect(await entryWhere({ action: 'POST /backups', targetId: backup.id })).toMatchObject({ httpStatus: 202, outcome: 'SUCCESS' });

    const failed = await backupAndWait(service, { engine: 'postgres', source: { url: 'postgresql://nobody@127.0.0.1:1/none' } });
    expect(failed.status).toBe('FAILED');
    const failure = await entryWhere({ action: 'backup.run', targetId: failed.id });
    expect(failure.outcome).toBe('FAILURE');
    expect(typeof failure.details.error).toBe('string');

    const verified = await service
      .http()
      .post(`${API}/backups/${backup.id}/verify`)
      .set('X-API-Key', keys.OPERATOR)
      .send({ mode: 'checksum', waitSeconds: 30 });
    expect(verified.body.ok).toBe(true);
    expect(await entryWhere({ action: 'verification.run', targetId: verified.body.id })).toMatchObject({
      actor: 'apikey:audit-OPERATOR',
      outcome: 'SUCCESS',
      details: { backupId: backup.id, mode: 'checksum', ok: true },
    });

    const restored = await recoverAndWait(service, { backupId: backup.id, type: 'FULL', target: { path: join(service.restoreRoot, 'r1') } });
    expect(restored.status).toBe('COMPLETED');
    expect(await entryWhere({ action: 'recovery.run', targetId: restored.id })).toMatchObject({
      outcome: 'SUCCESS',
      details: { backupId: backup.id, type: 'FULL' },
    });

    const withSecret = await service
      .http()
      .post(`${API}/backups`)
      .set('X-API-Key', ADMIN_KEY)
      .send({ engine: 'postgres', source: { url: 'postgresql://u@127.0.0.1:1/db', passwordSecret: 'env:DRS_AUDIT_SECRET_NAME_XYZ' } });
    expect(withSecret.status).toBe(202);
    // its job's outcome is the third backup.run entry counted by the next test: wait for it here (it raced under load)
    expect(await entryWhere({ action: 'backup.run', targetId: withSecret.body.id })).toMatchObject({ outcome: 'FAILURE' });
    // Only selected body fields are kept: never the source (URL, secret reference, paths) nor key secrets.
    expect((await entryWhere({ requestId: withSecret.headers['x-request-id'] })).details).toEqual({ engine: 'postgres' });
    const everything = JSON.stringify(await entries());
    for (const secret of [...Object.values(keys), ADMIN_KEY, source, 'postgresql://u@']) expect(everything).not.toContain(secret);
  });

  it('filters, pages, and is readable by ADMIN and VIEWER only', async () => {
    const denied = await entries({ outcome: 'DENIED' });
    expect(denied.length).toBeGreaterThanOrEqual(2);
    expect(denied.every((e) => e.outcome === 'DENIED')).toBe(true);
    expect((await entries({ actor: 'apikey:audit-OPERATOR' })).every((e) => e.actor === 'apikey:audit-OPERATOR')).toBe(true);
    expect((await entries({ action: 'backup.run' })).length).toBe(3);

    const all = await service.http().get(`${API}/audit`).query({ limit: 3, page: 1 }).set('X-API-Key', keys.VIEWER);
    expect(all.status).toBe(200);
    expect(all.body.items.map((e: Entry) => e.seq)).toEqual([all.body.total, all.body.total - 1, all.body.total - 2]);
    const page2 = await service.http().get(`${API}/audit`).query({ limit: 3, page: 2 }).set('X-API-Key', keys.VIEWER);
    expect(page2.body.items[0].seq).toBe(all.body.total - 3);

    const future = await entries({ from: new Date(Date.now() + 3_600_000).toISOString() });
    expect(future).toEqual([]);
    for (const role of ['OPERATOR', 'BACKUP_ADMIN']) {
      expect((await service.http().get(`${API}/audit`).set('X-API-Key', keys[role])).status).toBe(403);
      expect((await service.http().get(`${API}/audit/verify`).set('X-API-Key', keys[role])).status).toBe(403);
    }
    const bad = await service.http().get(`${API}/audit`).query({ outcome: 'MAYBE', limit: 0, from: 'yesterday' }).set('X-API-Key', ADMIN_KEY);
    expect(bad.status).toBe(400);
    expect(bad.body.details.map((d: { field: string }) => d.field).sort()).toEqual(['from', 'limit', 'outcome']);
  });

  it('exports JSON lines whose hashes an auditor recomputes with jq and sha256sum', async () => {
    const res = await service
      .http()
      .get(`${API}/audit/export`)
      .set('X-API-Key', ADMIN_KEY)
      .buffer(true)
      .parse((r, cb) => {
        let text = '';
        r.on('data', (c: Buffer) => (text += c.toString()));
        r.on('end', () => cb(null, text));
      });
    expect(res.status).toBe(200);
    expect(res.headers['content-type']).toMatch(/^application\/x-ndjson/);
    const lines = (res.body as string).trim().split('\n');
    const parsed = lines.map((l) => JSON.parse(l) as Entry);
    expect(parsed.map((e) => e.seq)).toEqual(parsed.map((_, i) => i + 1));
    for (let i = 0; i < lines.length; i++) {
      const canonical = execFileSync('jq', ['-cSj', 'del(.hash)'], { input: lines[i] });
      expect(execFileSync('sha256sum', { input: canonical }).toString().slice(0, 64)).toBe(parsed[i].hash);
      if (i > 0) expect(parsed[i].prevHash).toBe(parsed[i - 1].hash);
    }
  });

  it('50 concurrent appends from two replicas on one database make one valid chain', async () => {
    // A second instance of the service on the same database, configured like `service`.
    const replica = await createApp(AppConfig.fromEnv(service.configEnv));
    await replica.init();
    try {
      const before = (await service.http().get(`${API}/audit/verify`).set('X-API-Key', ADMIN_KEY)).body.entries;
      const a = service.app.get(AuditService);
      const b = replica.get(AuditService);
      const appended = await Promise.all(
        Array.from({ length: 50 }, (_, i) => (i % 2 ? a : b).append({ action: 'test.concurrent', outcome: 'SUCCESS', targetId: `n${i}` })),
      );
      expect(new Set(appended.map((e) => e.seq)).size).toBe(50);
      const verified = await service.http().get(`${API}/audit/verify`).set('X-API-Key', ADMIN_KEY);
      expect(verified.body).toMatchObject({ ok: true, firstBadSeq: null, problems: [] });
      expect(verified.body.entries).toBeGreaterThanOrEqual(before + 50);
    } finally {
      await replica.close();
    }
  });

  it('verification names the entry edited in the database, then the gap of a deleted one', async () => {
    const clean = await service.http().get(`${API}/audit/verify`).set('X-API-Key', keys.VIEWER);
    expect(clean.status).toBe(200);
    expect(clean.body).toMatchObject({ ok: true, firstBadSeq: null, problems: [] });
    expect(clean.body.entries).toBeGreaterThan(60);

    await sql(service.database, `UPDATE audit_entries SET actor = 'apikey:innocent' WHERE seq = 7`);
    const edited = await service.http().get(`${API}/audit/verify`).set('X-API-Key', ADMIN_KEY);
    expect(edited.body).toMatchObject({ ok: false, firstBadSeq: 7, problems: [{ seq: 7, problem: 'hash mismatch' }] });

    await sql(service.database, `DELETE FROM audit_entries WHERE seq = 12`);
    const deleted = await service.http().get(`${API}/audit/verify`).set('X-API-Key', ADMIN_KEY);
    expect(deleted.body).toMatchObject({
      ok: false,
      firstBadSeq: 7,
      problems: [
        { seq: 7, problem: 'hash mismatch' },
        { seq: 12, problem: 'missing entry' },
      ],
    });
    expect(deleted.body.entries).toBe(clean.body.entries - 1);

    const [{ max }] = await sql<{ max: string }>(service.database, `SELECT max(seq) FROM audit_entries`);
    await sql(service.database, `DELETE FROM audit_entries WHERE seq = $1`, [max]);
    const truncated = await service.http().get(`${API}/audit/verify`).set('X-API-Key', ADMIN_KEY);
    expect(truncated.body.problems).toContainEqual({ seq: Number(max), problem: 'missing entry' });
  });

  it("an entry edited in the database with its hash recomputed is named by the next entry's prev_hash link", async () => {
    const seq = 20;
    const lines = (await service.http().get(`${API}/audit/export`).set('X-API-Key', ADMIN_KEY)).text
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l));
    const { hash: _old, ...record } = lines.find((l) => l.seq === seq);
    // what a forger with write access does: change the row, then make its own hash match again (docs/audit-trail.md)
    const forged = { ...record, actor: 'apikey:innocent' };
    const hash = createHash('sha256').update(canonicalJson(forged), 'utf8').digest('hex');
    await sql(service.database, `UPDATE audit_entries SET actor = $1, hash = $2 WHERE seq = $3`, [forged.actor, hash, seq]);
    const verified = await service.http().get(`${API}/audit/verify`).set('X-API-Key', ADMIN_KEY);
    expect(verified.body.ok).toBe(false);
    const around = verified.body.problems.filter((p: { seq: number }) => p.seq === seq || p.seq === seq + 1);
    expect(around).toEqual([{ seq: seq + 1, problem: 'prev_hash mismatch' }]);
  });
});
