import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { API } from '../support/app';
import { createDatabase, databaseUrl, dropDatabase, sql } from '../support/database';
import { ServerProcess, startServerProcess } from '../support/server-process';

/** Secrets the requests below carry; none may appear in the logs. */
const PLANTED = {
  bearer: 'PlantedBearerToken.abc123',
  cookie: 'PlantedCookieValue42',
  bodyUrlPassword: 'PlantedBodyUrlPassw0rd',
  queryUrlPassword: 'PlantedQueryUrlPassw0rd',
  queryPassword: 'PlantedQueryPassw0rd',
  ageKey: 'AGE-SECRET-KEY-1PLANTEDQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQ',
  envPassword: 'PlantedEnvPgPassw0rd',
};

/**
 * The built service (`dist/main.js`, built by `npm test`) as a child process at the most verbose log level; its
 * whole stdout and stderr are checked.
 */
describe('structured logs: JSON lines with request ids, no secrets', () => {
  let server: ServerProcess;
  let metadata: string;
  let source: string;
  let dataDir: string;
  let adminKey: string;
  let output: string;
  let backupId: string;

  const call = async (path: string, init: RequestInit & { headers?: Record<string, string> } = {}) => {
    const res = await fetch(`${server.url}${path}`, {
      ...init,
      headers: { 'X-API-Key': adminKey, 'Content-Type': 'application/json', ...init.headers },
    });
    const text = await res.text();
    return { status: res.status, requestId: res.headers.get('x-request-id'), body: text ? JSON.parse(text) : undefined };
  };

  beforeAll(async () => {
    metadata = await createDatabase('drt_logs');
    source = await createDatabase('drt_logs_src');
    await sql(source, `CREATE TABLE t AS SELECT g AS id FROM generate_series(1, 100) g`);
    dataDir = mkdtempSync(join(tmpdir(), 'dr-logs-'));
    server = await startServerProcess({
      DATABASE_URL: databaseUrl(metadata),
      DR_DATA_DIR: dataDir,
      DR_RESTORE_ROOTS: join(dataDir, 'restores'),
      DR_SCHEDULER_ENABLED: 'false',
      DR_LOG_LEVEL: 'verbose',
      DRS_PLANTED_PG_PASSWORD: PLANTED.envPassword,
    });
    // no DR_ADMIN_API_KEY: the first admin key is generated and printed once, for the operator to copy
    adminKey = /\bdr_[0-9a-f]{12}_[A-Za-z0-9_-]{43}\b/.exec(server.output())![0];

    const listed = await call(`${API}/backups`, { headers: { 'X-Request-Id': 'redaction-test-1', Cookie: `session=${PLANTED.cookie}` } });
    expect(listed).toMatchObject({ status: 200, requestId: 'redaction-test-1' });
    // a bearer token beside the API key: refused (one credential per request; JWTs are not configured here), and
    // the token must not reach the logs either way
    const bearer = await call(`${API}/backups`, { headers: { Authorization: `Bearer ${PLANTED.bearer}` } });
    expect(bearer.status).toBe(401);
    // a connection URL with a password in the body: refused, the password is not echoed
    const refused = await call(`${API}/backups`, {
      method: 'POST',
      body: JSON.stringify({ engine: 'postgres', source: { url: `postgresql://postgres:${PLANTED.bodyUrlPassword}@127.0.0.1:5432/${source}` } }),
    });
    expect(refused.status).toBe(400);
    expect(JSON.stringify(refused.body)).not.toContain(PLANTED.bodyUrlPassword);
    // an error path that logs the URL: secrets in the query string of an unknown route
    const query =
      `dsn=${encodeURIComponent(`postgresql://admin:${PLANTED.queryUrlPassword}@db.example:5432/x`)}` +
      `&password=${PLANTED.queryPassword}&identity=${PLANTED.ageKey}&key=${adminKey}`;
    const unknown = await call(`${API}/no-such-route?${query}`, { headers: { 'X-Request-Id': 'not a sane id; <script>' } });
    expect(unknown.status).toBe(404);
    expect(unknown.requestId).toMatch(/^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/);
    // a real pg_dump run whose password comes from an environment variable
    const created = await call(`${API}/backups`, {
      method: 'POST',
      body: JSON.stringify({ engine: 'postgres', source: { url: databaseUrl(source), passwordSecret: 'env:DRS_PLANTED_PG_PASSWORD' } }),
    });
    expect(created.status).toBe(202);
    let backup = created.body;
    for (let i = 0; i < 300 && !['COMPLETED', 'FAILED'].includes(backup.status); i++) {
      await new Promise((r) => setTimeout(r, 100));
      backup = (await call(`${API}/backups/${created.body.id}`)).body;
    }
    expect(backup.status).toBe('COMPLETED');
    backupId = backup.id;
    // the service's own admin key file named as a source's password: refused, neither sent nor logged nor echoed
    const ownKey = await call(`${API}/backups`, {
      method: 'POST',
      body: JSON.stringify({ engine: 'postgres', source: { url: databaseUrl(source), passwordSecret: `file:${dataDir}/admin-api-key` } }),
    });
    expect({ status: ownKey.status, field: ownKey.body.details?.[0]?.field }).toEqual({ status: 400, field: 'source.passwordSecret' });
    expect(JSON.stringify(ownKey.body)).not.toContain(adminKey);
    const verified = await call(`${API}/backups/${backup.id}/verify`, { method: 'POST', body: JSON.stringify({ mode: 'restore' }) });
    expect(verified.body).toMatchObject({ status: 'COMPLETED', ok: true });

    await server.stop();
    output = server.output();
  });

  afterAll(async () => {
    if (server?.child.exitCode === null) await server.kill9();
    await dropDatabase(metadata);
    await dropDatabase(source);
    rmSync(dataDir, { recursive: true, force: true });
  });

  it('prints the generated admin key once, outside the JSON logs, and never logs it', () => {
    expect(output.split(adminKey).length - 1).toBe(1);
    const human = output.split('\n').filter((l) => l.trim() !== '' && !l.startsWith('{'));
    expect(human).toEqual([expect.stringMatching(/^Generated the first ADMIN API key/), `  ${adminKey}`]);
  });

  it('writes every other line as a JSON object with a level, time and message', () => {
    const lines = output.split('\n').filter((l) => l.startsWith('{'));
    expect(lines.length).toBeGreaterThan(20);
    for (const line of lines) {
      const entry = JSON.parse(line);
      expect(entry).toEqual(expect.objectContaining({ level: expect.any(Number), time: expect.any(Number), msg: expect.any(String) }));
    }
    expect(lines.some((l) => JSON.parse(l).msg.startsWith('disaster recovery service listening on'))).toBe(true);
  });

  it('logs each request with its id: the client one when sane, else a generated UUID', () => {
    const requests = output
      .split('\n')
      .filter((l) => l.startsWith('{'))
      .map((l) => JSON.parse(l))
      .filter((e) => e.req);
    expect(requests.length).toBeGreaterThanOrEqual(5);
    for (const entry of requests) expect(entry.reqId).toBe(entry.req.id);
    expect(requests.find((e) => e.reqId === 'redaction-test-1')).toMatchObject({ res: { statusCode: 200 } });
    const unknown = requests.find((e) => e.req.url.includes('no-such-route'));
    expect(unknown.reqId).toMatch(/^[0-9a-f-]{36}$/);
    expect(unknown.req.headers['x-request-id']).toBe('not a sane id; <script>');
    // the URL is logged, its secrets masked
    expect(unknown.req.url).toContain('dsn=postgresql%3A%2F%2Fadmin%3A***%40db.example'); // percent-encoded in the raw URL...
    expect(unknown.req.query.dsn).toBe('postgresql://admin:***@db.example:5432/x'); // ...decoded in the query
    expect(unknown.req.query.password).toBe('***');
    expect(unknown.req.headers['x-api-key']).toBe('[Redacted]');
    expect(requests.find((e) => e.req.headers.authorization)?.req.headers.authorization).toBe('[Redacted]');
    expect(requests.find((e) => e.req.headers.cookie)?.req.headers.cookie).toBe('[Redacted]');
  });

  it('contains none of the planted secrets', () => {
    // Not vacuous: the lines that carried them were written (masked), and the job that used the env password ran.
    expect(output.length).toBeGreaterThan(10_000);
    expect(output).toContain('"reqId":"redaction-test-1"');
    expect(output).toContain('postgresql://admin:***@db.example:5432/x');
    expect(output).toContain(backupId);
    for (const [name, secret] of Object.entries(PLANTED)) {
      expect({ name, found: output.includes(secret) }).toEqual({ name, found: false });
    }
  });
});
