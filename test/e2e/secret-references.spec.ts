import { execFile } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdirSync, mkdtempSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { createServer, IncomingHttpHeaders, Server } from 'node:http';
import { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { ADMIN_KEY, API, backupAndWait, startService, TestService, waitFor } from '../support/app';
import { sql } from '../support/database';
import { FakePostgresServer } from '../support/fake-postgres-server';

/**
 * Issue 10, item 1: a BACKUP_ADMIN could make the service send any of its secrets to a server of their choosing
 * (`"passwordSecret":"env:DR_ADMIN_API_KEY"` against a server asking for a cleartext password). A fake PostgreSQL
 * server (test/support/fake-postgres-server.ts, the one stand-in here: a real server cannot tell what password it
 * received) records what arrives. Everything else is real: the service, pg_dump, the `dr` CLI, an HTTP receiver
 * standing in for an attacker's S3 endpoint.
 */
const DR = resolve(__dirname, '..', '..', 'bin', 'dr');
const PG_PASSWORD = `drs-env-password-${randomBytes(6).toString('hex')}`;
const FILE_PASSWORD = `drs-file-password-${randomBytes(6).toString('hex')}`;
const OUTSIDE_SECRET = `outside-secret-${randomBytes(6).toString('hex')}`;
const HOST_SECRET = `host-secret-${randomBytes(6).toString('hex')}`;

describe('secret references a request may name (DR_SECRET_ENV_PREFIX, DR_SECRET_DIRS)', () => {
  let service: TestService;
  let fake: FakePostgresServer;
  let root: string;
  let secretsDir: string;
  let outsideDir: string;
  let backupAdmin: string;
  let recoveryAdmin: string;
  let refusal: string;
  const fakeUrl = () => `postgresql://postgres@127.0.0.1:${fake.port}/victimdb`;

  beforeAll(async () => {
    root = mkdtempSync(join(tmpdir(), 'dr-secret-refs-'));
    secretsDir = join(root, 'secrets');
    outsideDir = join(root, 'outside');
    mkdirSync(secretsDir);
    mkdirSync(outsideDir);
    writeFileSync(join(secretsDir, 'pg-password'), `${FILE_PASSWORD}\n`, { mode: 0o600 });
    writeFileSync(join(outsideDir, 'secret'), OUTSIDE_SECRET, { mode: 0o600 });
    symlinkSync(join(outsideDir, 'secret'), join(secretsDir, 'to-outside'));
    mkdirSync(join(root, 'secrets-evil'));
    writeFileSync(join(root, 'secrets-evil', 'secret'), OUTSIDE_SECRET);
    fake = await FakePostgresServer.start();
    service = await startService({
      DR_SECRET_DIRS: secretsDir,
      DRS_TEST_PG_PASSWORD: PG_PASSWORD,
      DR_TEST_HOST_SECRET: HOST_SECRET,
      HOST_SECRET_OUTSIDE_PREFIX: HOST_SECRET,
    });
    // the signing key exists once the service has started: a link to it from inside the allowed directory
    symlinkSync(join(service.dataDir, 'manifest-signing-key.pem'), join(secretsDir, 'to-signing-key'));
    const key = async (roles: string[]) =>
      (
        await service
          .http()
          .post(`${API}/api-keys`)
          .set('X-API-Key', ADMIN_KEY)
          .send({ name: `k-${roles[0]}-${randomBytes(3).toString('hex')}`, roles })
      ).body.secret as string;
    backupAdmin = await key(['BACKUP_ADMIN']);
    recoveryAdmin = await key(['RECOVERY_ADMIN']);
    refusal = `not an allowed secret reference: use env:DRS_NAME or file:/path under ${secretsDir} (DR_SECRET_ENV_PREFIX, DR_SECRET_DIRS); the service's own secrets are never allowed`;
  });

  afterAll(async () => {
    await service?.close();
    await fake?.close();
    rmSync(root, { recursive: true, force: true });
  });

  it('refuses the admin key, the signing key and everything outside the allow-list with one 400, before connecting anywhere', async () => {
    const refused = [
      'env:DR_ADMIN_API_KEY',
      `file:${service.dataDir}/manifest-signing-key.pem`,
      `file:${service.dataDir}/admin-api-key`,
      'env:DATABASE_URL',
      'env:DR_TEST_HOST_SECRET', // DR_* are the service's, whatever they hold
      'env:HOST_SECRET_OUTSIDE_PREFIX', // exists, but not DRS_
      'env:NO_SUCH_VARIABLE_ANYWHERE', // does not exist: the same answer (no oracle)
      'env:PATH',
      'env:DRS_', // the prefix alone names nothing
      'file:/etc/passwd',
      'file:/nonexistent/secret',
      'file:/proc/self/environ',
      `file:${secretsDir}/../outside/secret`, // ".." out of the directory
      `file:${secretsDir}//pg-password`, // not normalized
      `file:${secretsDir}/to-outside`, // a symlink leading out
      `file:${secretsDir}/to-signing-key`, // a symlink to the service's own key
      `file:${root}/secrets-evil/secret`, // a sibling sharing the directory's name as a prefix
      `file:${secretsDir}`, // the directory itself
    ];
    for (const passwordSecret of refused) {
      const res = await service
        .http()
        .post(`${API}/backups`)
        .set('X-API-Key', backupAdmin)
        .send({ engine: 'postgres', source: { url: fakeUrl(), passwordSecret } });
      expect({ passwordSecret, status: res.status, code: res.body.code, details: res.body.details }).toEqual({
        passwordSecret,
        status: 400,
        code: 'VALIDATION_FAILED',
        details: [{ field: 'source.passwordSecret', message: refusal }],
      });
      for (const secret of [ADMIN_KEY, HOST_SECRET, OUTSIDE_SECRET, PG_PASSWORD]) expect(res.text).not.toContain(secret);
    }
    expect(fake.connections).toBe(0);
    const listed = await service.http().get(`${API}/backups?engine=postgres`).set('X-API-Key', backupAdmin);
    expect(listed.body.total).toBe(0);
  });

  it('holds every …Secret field of every route to it: plans, recovery targets, storage settings, encryption, WAL archives', async () => {
    const bad = 'env:DR_ADMIN_API_KEY';
    const location = (await service.http().get(`${API}/storage-locations`).set('X-API-Key', ADMIN_KEY)).body[0].id as string;
    const plan = await service
      .http()
      .post(`${API}/backup-plans`)
      .set('X-API-Key', backupAdmin)
      .send({ name: `p-${randomBytes(3).toString('hex')}`, engine: 'postgres', source: { url: fakeUrl(), passwordSecret: 'env:DRS_TEST_PG_PASSWORD' } });
    expect(plan.status).toBe(201);
    const cases: [string, string, string, object, string][] = [
      [
        'post',
        '/backup-plans',
        backupAdmin,
        { name: 'bad-plan', engine: 'postgres', source: { url: fakeUrl(), passwordSecret: bad } },
        'source.passwordSecret',
      ],
      ['patch', `/backup-plans/${plan.body.id}`, backupAdmin, { source: { url: fakeUrl(), passwordSecret: bad } }, 'source.passwordSecret'],
      [
        'post',
        '/backup-plans',
        backupAdmin,
        { name: 'bad-enc', engine: 'filesystem', source: { path: root }, encryption: { passphraseSecret: `file:${service.dataDir}/admin-api-key` } },
        'encryption.passphraseSecret',
      ],
      [
        'post',
        '/recovery',
        recoveryAdmin,
        { backupId: '00000000-0000-4000-8000-000000000000', type: 'FULL', target: { url: fakeUrl(), create: true, passwordSecret: bad } },
        'target.passwordSecret',
      ],
      [
        'post',
        '/storage-locations',
        ADMIN_KEY,
        {
          name: 'evil-s3',
          kind: 's3',
          settings: { bucket: 'b', endpoint: 'http://127.0.0.1:1', accessKeyIdSecret: bad, secretAccessKeySecret: 'env:DRS_TEST_PG_PASSWORD' },
        },
        'settings.accessKeyIdSecret',
      ],
      [
        'post',
        '/storage-locations',
        ADMIN_KEY,
        { name: 'evil-gcs', kind: 'gcs', settings: { bucket: 'b', keyFileSecret: 'file:/etc/shadow' } },
        'settings.keyFileSecret',
      ],
      [
        'post',
        '/storage-locations',
        ADMIN_KEY,
        { name: 'evil-enc', kind: 'local', settings: { path: join(root, 'loc') }, encryption: { passphraseSecret: 'env:HOST_SECRET_OUTSIDE_PREFIX' } },
        'encryption.passphraseSecret',
      ],
      [
        'post',
        '/wal-archives',
        backupAdmin,
        { name: 'evil-wal', storageLocationId: location, identitySecret: `file:${secretsDir}/to-signing-key` },
        'identitySecret',
      ],
    ];
    for (const [method, path, key, body, field] of cases) {
      const res = await (service.http() as any)[method](`${API}${path}`).set('X-API-Key', key).send(body);
      expect({ path, status: res.status, details: res.body.details }).toEqual({ path, status: 400, details: [{ field, message: refusal }] });
    }
    const stored = await service.http().get(`${API}/backup-plans/${plan.body.id}`).set('X-API-Key', ADMIN_KEY);
    expect(stored.body.source.passwordSecret).toBe('env:DRS_TEST_PG_PASSWORD');
    expect(fake.connections).toBe(0);
  });

  it('sends what an allowed reference names, from the environment and from a file under DR_SECRET_DIRS', async () => {
    for (const [passwordSecret, expected] of [
      ['env:DRS_TEST_PG_PASSWORD', PG_PASSWORD],
      [`file:${secretsDir}/pg-password`, FILE_PASSWORD],
    ]) {
      const before = fake.passwords.length;
      const backup = await backupAndWait(service, { engine: 'postgres', source: { url: fakeUrl(), passwordSecret } }, backupAdmin);
      expect(backup.status).toBe('FAILED'); // the fake server refuses every password after reading it
      expect(backup.error).toContain('password authentication failed');
      expect(fake.passwords.slice(before)).toEqual([expected]);
      expect(JSON.stringify(backup)).not.toContain(expected);
    }
  });

  it('refuses at resolution a reference stored before the allow-list existed (a plan edited in the database)', async () => {
    const plan = await service
      .http()
      .post(`${API}/backup-plans`)
      .set('X-API-Key', backupAdmin)
      .send({ name: `old-${randomBytes(3).toString('hex')}`, engine: 'postgres', source: { url: fakeUrl(), passwordSecret: 'env:DRS_TEST_PG_PASSWORD' } });
    await sql(service.database, `UPDATE backup_plans SET source = jsonb_set(source, '{passwordSecret}', '"env:DR_ADMIN_API_KEY"') WHERE id = $1`, [
      plan.body.id,
    ]);
    const connections = fake.connections;
    const run = await service.http().post(`${API}/backup-plans/${plan.body.id}/run`).set('X-API-Key', backupAdmin);
    expect(run.status).toBe(202);
    const done = await waitFor(
      async () => (await service.http().get(`${API}/backups/${run.body.id}`).set('X-API-Key', backupAdmin)).body,
      (b) => ['COMPLETED', 'FAILED'].includes(b.status),
    );
    expect(done.status).toBe('FAILED');
    expect(done.error).toContain('not an allowed secret reference');
    expect(done.error).not.toContain(ADMIN_KEY);
    expect(fake.connections).toBe(connections);
  });

  describe('dr wal-push / wal-fetch configs (the CLI holds them to the same allow-list, from its own environment)', () => {
    let receiver: Server;
    const requests: IncomingHttpHeaders[] = [];
    let endpoint: string;

    beforeAll(async () => {
      // an attacker's "S3 endpoint": records each request's headers (SigV4 sends the access key id in clear)
      receiver = createServer((req, res) => {
        requests.push(req.headers);
        req.resume();
        req.on('end', () => res.writeHead(403, { 'Content-Type': 'application/xml' }).end('<Error><Code>AccessDenied</Code></Error>'));
      });
      await new Promise<void>((r) => receiver.listen(0, '127.0.0.1', r));
      endpoint = `http://127.0.0.1:${(receiver.address() as AddressInfo).port}`;
    });
    afterAll(() => new Promise<void>((r) => receiver.close(() => r())));

    /** Runs the CLI without blocking this process (the receiver answers from its event loop). */
    async function push(
      storageSettings: object,
      env: Record<string, string>,
      extra: object = {},
      command = 'wal-push',
    ): Promise<{ status: number; stderr: string }> {
      const dir = mkdtempSync(join(root, 'wal-'));
      const config = join(dir, 'wal.json');
      writeFileSync(
        config,
        JSON.stringify({
          archive: 'a',
          storage: { kind: 's3', settings: { bucket: 'dr-wal-bucket', region: 'us-east-1', forcePathStyle: true, endpoint, ...storageSettings } },
          ...extra,
        }),
      );
      writeFileSync(join(dir, '000000010000000000000001'), randomBytes(1024));
      const args = command === 'wal-push' ? ['wal-push', '000000010000000000000001'] : ['wal-fetch', '000000010000000000000001', 'pg_wal/RECOVERYXLOG'];
      return new Promise((resolve) => {
        execFile(
          DR,
          [...args, '--config', config],
          { cwd: dir, env: { PATH: process.env.PATH, HOME: process.env.HOME, DR_SECRET_DIRS: secretsDir, ...env } },
          (error, _stdout, stderr) => {
            resolve({ status: error ? Number((error as { code?: number }).code) : 0, stderr });
          },
        );
      });
    }

    it("refuses the archiver's other secrets: nothing reaches the endpoint", async () => {
      const hostEnv = { PGPASSWORD: HOST_SECRET, DR_ADMIN_API_KEY: ADMIN_KEY, DRS_WAL_SECRET: 'wal-secret-value' };
      const cases: [object, object, string, string][] = [
        [{ accessKeyIdSecret: 'env:PGPASSWORD', secretAccessKeySecret: 'env:DRS_WAL_SECRET' }, {}, 'wal-push', 'settings.accessKeyIdSecret'],
        [{ accessKeyIdSecret: 'env:DR_ADMIN_API_KEY', secretAccessKeySecret: 'env:DRS_WAL_SECRET' }, {}, 'wal-push', 'settings.accessKeyIdSecret'],
        [{ accessKeyIdSecret: `file:${outsideDir}/secret`, secretAccessKeySecret: 'env:DRS_WAL_SECRET' }, {}, 'wal-push', 'settings.accessKeyIdSecret'],
        [{}, { encryption: { passphraseSecret: 'env:PGPASSWORD' } }, 'wal-push', 'encryption.passphraseSecret'],
        [{}, { identitySecret: `file:${secretsDir}/to-outside` }, 'wal-fetch', 'identitySecret'],
      ];
      for (const [settings, extra, command, field] of cases) {
        const result = await push(settings, hostEnv, extra, command);
        expect({ field, code: result.status }).toEqual({ field, code: 64 });
        expect(result.stderr).toContain(`${field}: not an allowed secret reference`);
        for (const secret of [HOST_SECRET, ADMIN_KEY, OUTSIDE_SECRET]) expect(result.stderr).not.toContain(secret);
      }
      expect(requests).toEqual([]);
    });

    it('sends an allowed one (the endpoint sees the access key id in the SigV4 Authorization header)', async () => {
      const result = await push(
        { accessKeyIdSecret: 'env:DRS_WAL_KEY_ID', secretAccessKeySecret: `file:${secretsDir}/pg-password` },
        { DRS_WAL_KEY_ID: 'AKIDALLOWEDEXAMPLE' },
      );
      expect(result.status).toBe(2); // the endpoint denies everything
      expect(requests.length).toBeGreaterThan(0);
      expect(String(requests[0].authorization)).toContain('Credential=AKIDALLOWEDEXAMPLE/');
    });
  });
});
