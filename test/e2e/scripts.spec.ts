import { spawnSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, readdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createDatabase, databaseUrl, dropDatabase, sql, tableChecksums } from '../support/database';
import { call as callOnce, ServerProcess, startServerProcess } from '../support/server-process';
import { diffTrees } from '../support/trees';

const SCRIPTS = join(__dirname, '..', '..', 'scripts');
const API = '/api/v1/disaster-recovery';
const ADMIN_KEY = 'scripts-spec-admin-key-0123456789abcdef';

/**
 * `call` once more when the first attempt hits a keep-alive socket the server closed while it sat idle (undici's
 * "other side closed" race after the seconds the scripts run between two fetches); a server that is really down
 * fails the second attempt too.
 */
async function call(...args: Parameters<typeof callOnce>): ReturnType<typeof callOnce> {
  try {
    return await callOnce(...args);
  } catch (error) {
    if (!/other side closed|ECONNRESET/.test(String((error as { cause?: unknown }).cause))) throw error;
    return callOnce(...args);
  }
}

/** Every shell file under scripts/ (the library and the scripts). */
function shellFiles(dir = SCRIPTS): string[] {
  return readdirSync(dir).flatMap((name) => {
    const path = join(dir, name);
    if (statSync(path).isDirectory()) return shellFiles(path);
    return name.endsWith('.sh') ? [path] : [];
  });
}

const shellcheck = spawnSync('shellcheck', ['--version'], { encoding: 'utf8' }).status === 0;
if (!shellcheck) console.warn('scripts.spec: SKIPPING shellcheck: not on PATH (apt-get install shellcheck)');

describe('scripts/ lint', () => {
  if (!shellcheck && process.env.CI) {
    // CI installs shellcheck (.ci/run): there, a missing binary must not quietly skip the lint.
    it('shellcheck is installed in CI', () => {
      throw new Error('no `shellcheck` on PATH in CI: .ci/run must install the Debian package shellcheck');
    });
  }
  (shellcheck ? it : it.skip)('every script passes shellcheck (warnings included), following the sourced library', () => {
    const files = shellFiles();
    expect(files.length).toBeGreaterThanOrEqual(12);
    const result = spawnSync('shellcheck', ['--severity=style', ...files], { encoding: 'utf8', cwd: SCRIPTS });
    expect(result.stdout + result.stderr).toBe('');
    expect(result.status).toBe(0);
  });

  it('every script is executable and answers --help with exit 0 without an API key', () => {
    for (const file of shellFiles().filter((f) => !f.includes('/lib/'))) {
      expect(statSync(file).mode & 0o111).not.toBe(0);
      const result = spawnSync(file, ['--help'], { encoding: 'utf8', env: { PATH: process.env.PATH } });
      expect({ file, status: result.status }).toEqual({ file, status: 0 });
      expect(result.stdout).toMatch(/^Usage: /);
    }
  });
});

/** The scripts run as an operator runs them, against the service started as its own process. */
describe('scripts against a running service', () => {
  let server: ServerProcess;
  let meta: string;
  let sourceDb: string;
  const restoredDb = `drt_scripts_restored_${process.pid}`;
  const dataDir = mkdtempSync(join(tmpdir(), 'dr-scripts-'));
  const restoreRoot = mkdtempSync(join(tmpdir(), 'dr-scripts-restores-'));
  const tree = join(dataDir, 'tree');
  const configDir = join(dataDir, 'config');

  /** Runs scripts/<name> with the key and URL in its environment, as a cron job would. */
  const run = (name: string, args: string[], env: Record<string, string> = {}) => {
    const result = spawnSync(join(SCRIPTS, name), args, {
      encoding: 'utf8',
      timeout: 120_000,
      env: {
        PATH: process.env.PATH,
        HOME: process.env.HOME,
        DR_API_URL: `${server.url}${API}`,
        DR_API_KEY: ADMIN_KEY,
        DR_POLL_SECONDS: '1',
        ...env,
      },
    });
    return { code: result.status, stdout: result.stdout, stderr: result.stderr };
  };
  const json = (stdout: string) => {
    const lines = stdout.trim().split('\n');
    expect(lines).toHaveLength(1); // --json prints exactly one JSON line
    return JSON.parse(lines[0]);
  };

  beforeAll(async () => {
    meta = await createDatabase('drt_scripts_meta');
    sourceDb = await createDatabase('drt_scripts_src');
    await sql(sourceDb, `CREATE TABLE orders (id serial PRIMARY KEY, item text NOT NULL, qty int NOT NULL)`);
    await sql(sourceDb, `INSERT INTO orders (item, qty) SELECT 'item ' || g, g FROM generate_series(1, 500) g`);
    mkdirSync(join(tree, 'a', 'b'), { recursive: true });
    writeFileSync(join(tree, 'a', 'b', 'deep.txt'), 'deep file\n');
    writeFileSync(join(tree, 'top.bin'), Buffer.alloc(100_000, 7));
    mkdirSync(configDir);
    writeFileSync(join(configDir, 'app.yml'), 'port: 8080\n');
    writeFileSync(join(configDir, 'db.yml'), 'pool: 5\n');
    server = await startServerProcess(
      { DATABASE_URL: databaseUrl(meta), DR_DATA_DIR: dataDir, DR_RESTORE_ROOTS: restoreRoot, DR_ADMIN_API_KEY: ADMIN_KEY },
      90_000,
    );
  });

  afterAll(async () => {
    await server?.stop();
    await dropDatabase(restoredDb);
    await dropDatabase(sourceDb);
    await dropDatabase(meta);
  });

  it('filesystem backup, backup and recovery validation, then recovery into an identical tree', () => {
    const backup = run('backup/filesystem-backup.sh', ['--path', tree, '--json']);
    expect(backup.stderr).toBe('');
    expect(backup.code).toBe(0);
    const record = json(backup.stdout);
    expect(record).toMatchObject({ engine: 'filesystem', status: 'COMPLETED' });

    const checksum = run('validation/backup-validation.sh', ['--backup', record.id]);
    expect(checksum.code).toBe(0);
    expect(checksum.stdout).toContain(`backup ${record.id} verified (checksum): ok`);

    const restoreCheck = run('validation/recovery-validation.sh', ['--backup', 'latest', '--engine', 'filesystem', '--json']);
    expect(restoreCheck.code).toBe(0);
    expect(json(restoreCheck.stdout)).toMatchObject({ backupId: record.id, mode: 'restore', status: 'COMPLETED', ok: true });

    const target = join(restoreRoot, 'tree');
    const recovery = run('recovery/filesystem-recovery.sh', ['--backup', record.id, '--path', target]);
    expect(recovery.code).toBe(0);
    expect(recovery.stdout).toMatch(new RegExp(`^recovery [0-9a-f-]{36} COMPLETED: backup ${record.id} into`));
    expect(diffTrees(tree, target)).toBe('');

    // The same target again: refused by the service (409), the script says why and exits 1.
    const again = run('recovery/filesystem-recovery.sh', ['--backup', record.id, '--path', target]);
    expect(again.code).toBe(1);
    expect(again.stderr).toContain('HTTP 409 TARGET_NOT_EMPTY');
    expect(again.stdout).toBe('');
  });

  it('configuration backup and recovery of the snapshot', async () => {
    const backup = run('backup/config-backup.sh', ['--path', join(configDir, '*.yml'), '--json']);
    expect(backup.code).toBe(0);
    const record = json(backup.stdout);
    expect(record).toMatchObject({ engine: 'configuration', status: 'COMPLETED', fileCount: 2 });

    const target = join(restoreRoot, 'config');
    const recovery = run('recovery/config-recovery.sh', ['--backup', 'latest', '--path', target, '--json']);
    expect(recovery.code).toBe(0);
    expect(json(recovery.stdout)).toMatchObject({ backupId: record.id, status: 'COMPLETED' });
    const listing = await call(server, ADMIN_KEY, 'GET', `${API}/backups/${record.id}/files`);
    expect(
      listing.body.items
        .map((f: { path: string }) => f.path)
        .sort()
        .join(','),
    ).toMatch(/app\.yml.*db\.yml/);
  });

  it('database backup and recovery into a new database with the same rows', async () => {
    const backup = run('backup/database-backup.sh', ['--url', databaseUrl(sourceDb)]);
    expect(backup.code).toBe(0);
    expect(backup.stdout).toMatch(/^backup [0-9a-f-]{36} COMPLETED: engine postgres/);

    const recovery = run('recovery/database-recovery.sh', ['--backup', 'latest', '--url', databaseUrl(restoredDb), '--create', '--json']);
    expect(recovery.stderr).toBe('');
    expect(recovery.code).toBe(0);
    const record = json(recovery.stdout);
    expect(record.status).toBe('COMPLETED');
    // the measured RTO: from the runner's start to its end, as recorded
    expect(record.durationMs).toBe(Date.parse(record.finishedAt) - Date.parse(record.startedAt));
    expect(record.durationMs).toBeGreaterThan(0);
    expect(await tableChecksums(restoredDb)).toEqual(await tableChecksums(sourceDb));

    const integrity = run('validation/integrity-check.sh', ['--json']);
    expect(integrity.code).toBe(0);
    const summary = json(integrity.stdout);
    expect(summary.failed).toEqual([]);
    expect(summary.checked).toBeGreaterThanOrEqual(3);
  });

  it('a failing backup exits 1 with the reason; bad usage exits 2; a bad key exits 1 naming the error', () => {
    const failed = run('backup/database-backup.sh', ['--url', databaseUrl('drt_scripts_no_such_db')]);
    expect(failed.code).toBe(1);
    expect(failed.stderr).toMatch(/backup [0-9a-f-]{36} FAILED: pg_dump failed/);
    expect(failed.stderr).toContain('drt_scripts_no_such_db');

    const missing = run('recovery/filesystem-recovery.sh', ['--path', join(restoreRoot, 'x')]);
    expect(missing.code).toBe(2);
    expect(missing.stderr).toContain('--backup is required');
    const unknown = run('backup/filesystem-backup.sh', ['--path', tree, '--bogus']);
    expect(unknown.code).toBe(2);
    expect(unknown.stderr).toContain("unknown argument '--bogus'");
    const noKey = run('validation/integrity-check.sh', [], { DR_API_KEY: '' });
    expect(noKey.code).toBe(2);
    expect(noKey.stderr).toContain('DR_API_KEY is not set');

    const badKey = 'wrong-key-but-long-enough-000000000000';
    const refused = run('backup/filesystem-backup.sh', ['--path', tree], { DR_API_KEY: badKey });
    expect(refused.code).toBe(1);
    expect(refused.stderr).toContain('HTTP 401 UNAUTHENTICATED');
    expect(refused.stdout + refused.stderr).not.toContain(badKey);

    const badInput = run('backup/filesystem-backup.sh', ['--path', join(tree, 'no-such-dir')]);
    expect(badInput.code).toBe(1);
    expect(badInput.stderr).toContain('VALIDATION_FAILED');
    expect(badInput.stderr).toContain('source.path');

    const down = run('monitoring/system-health-check.sh', [], { DR_API_URL: 'http://127.0.0.1:1/api/v1/disaster-recovery' });
    expect(down.code).toBe(1);
    expect(down.stderr).toContain('cannot connect to http://127.0.0.1:1/actuator/health');
  });

  it('health check reports each component', () => {
    const health = run('monitoring/system-health-check.sh', [], { DR_API_KEY: '' });
    expect(health.code).toBe(0);
    expect(health.stdout).toContain(`${server.url}/actuator/health: ok`);
    expect(health.stdout).toMatch(/database: up/);
    expect(health.stdout).toMatch(/storage: up/);
    const readiness = run('monitoring/system-health-check.sh', ['--probe', 'readiness', '--json']);
    expect(readiness.code).toBe(0);
    expect(json(readiness.stdout).status).toBe('ok');
  });

  it('post-recovery-status records an external recovery that GET /recovery lists with its duration', async () => {
    const posted = run('recovery/post-recovery-status.sh', [
      '--status',
      'completed',
      '--target',
      'orders',
      '--recovery-point',
      '2026-01-02T03:00:00Z',
      '--started',
      '2026-01-02T04:00:00Z',
      '--finished',
      '2026-01-02T04:12:30Z',
      '--notes',
      'pg_restore by hand',
      '--json',
    ]);
    expect(posted.stderr).toBe('');
    expect(posted.code).toBe(0);
    const record = json(posted.stdout);
    expect(record).toMatchObject({
      type: 'EXTERNAL',
      status: 'COMPLETED',
      backupId: null,
      durationMs: 750_000,
      target: { name: 'orders', recoveryPoint: '2026-01-02T03:00:00.000Z', notes: 'pg_restore by hand' },
      createdBy: 'apikey:bootstrap-admin',
    });
    const listed = await call(server, ADMIN_KEY, 'GET', `${API}/recovery`);
    expect(listed.body.items.find((r: { id: string }) => r.id === record.id)).toMatchObject({ type: 'EXTERNAL', durationMs: 750_000 });

    const failed = run('recovery/post-recovery-status.sh', [
      '--status',
      'failed',
      '--target',
      'orders',
      '--recovery-point',
      '2026-01-02T03:00:00Z',
      '--started',
      '2026-01-02T04:00:00Z',
      '--finished',
      '2026-01-02T04:05:00Z',
      '--error',
      'disk full',
    ]);
    expect(failed.code).toBe(0);
    expect(failed.stdout).toMatch(/recorded: orders FAILED \(external\)/);

    const noError = run('recovery/post-recovery-status.sh', [
      '--status',
      'failed',
      '--target',
      'x',
      '--recovery-point',
      '2026-01-02T03:00:00Z',
      '--started',
      '2026-01-02T04:00:00Z',
    ]);
    expect(noError.code).toBe(2);
    expect(noError.stderr).toContain('--error is required');

    const backwards = run('recovery/post-recovery-status.sh', [
      '--status',
      'completed',
      '--target',
      'orders',
      '--recovery-point',
      '2026-01-02T03:00:00Z',
      '--started',
      '2026-01-02T05:00:00Z',
      '--finished',
      '2026-01-02T04:00:00Z',
    ]);
    expect(backwards.code).toBe(1);
    expect(backwards.stderr).toContain('HTTP 400 VALIDATION_FAILED');
    expect(backwards.stderr).toContain('finishedAt: finishedAt must not be before startedAt');
  });

  it('integrity-check and backup-validation exit 1 naming a backup whose stored artifact was corrupted', async () => {
    const backup = run('backup/filesystem-backup.sh', ['--path', tree, '--json']);
    expect(backup.code).toBe(0);
    const record = json(backup.stdout);
    // The default location is DR_DATA_DIR/backups: flip one byte of the stored artifact, as bit rot would.
    const artifact = join(dataDir, 'backups', record.artifactKey);
    const bytes = readFileSync(artifact);
    bytes[bytes.length - 1] ^= 0xff;
    writeFileSync(artifact, bytes);

    const one = run('validation/backup-validation.sh', ['--backup', record.id]);
    expect(one.code).toBe(1);
    expect(one.stderr).toContain(`backup ${record.id} FAILED verification (checksum`);
    expect(one.stdout).toBe('');

    const all = run('validation/integrity-check.sh', ['--engine', 'filesystem', '--json']);
    expect(all.code).toBe(1);
    const summary = json(all.stdout);
    expect(summary.failed).toEqual([{ backupId: record.id, reason: expect.stringContaining('FAILED verification') }]);
    expect(summary.verified.length).toBe(summary.checked - 1);
    expect(summary.checked).toBeGreaterThanOrEqual(2);
  });

  it('POST /recovery/external validates its body and its roles', async () => {
    const bad = await call(server, ADMIN_KEY, 'POST', `${API}/recovery/external`, {
      status: 'done',
      targetName: '',
      recoveryPoint: 'yesterday',
      startedAt: '2026-01-02T04:00:00Z',
      finishedAt: '2026-01-02T04:00:00Z',
      extra: 1,
    });
    expect(bad.status).toBe(400);
    const fields = bad.body.details.map((d: { field: string }) => d.field);
    expect(fields).toEqual(expect.arrayContaining(['status', 'targetName', 'recoveryPoint', 'extra']));

    const future = await call(server, ADMIN_KEY, 'POST', `${API}/recovery/external`, {
      status: 'COMPLETED',
      targetName: 'x',
      recoveryPoint: '2026-01-02T03:00:00Z',
      startedAt: '2026-01-02T04:00:00Z',
      finishedAt: '2999-01-01T00:00:00Z',
    });
    expect(future.status).toBe(400);
    expect(future.body.details).toContainEqual({ field: 'finishedAt', message: 'finishedAt is in the future' });

    const unknownBackup = await call(server, ADMIN_KEY, 'POST', `${API}/recovery/external`, {
      status: 'COMPLETED',
      targetName: 'x',
      recoveryPoint: '2026-01-02T03:00:00Z',
      startedAt: '2026-01-02T04:00:00Z',
      finishedAt: '2026-01-02T04:01:00Z',
      backupId: '00000000-0000-4000-8000-000000000000',
    });
    expect(unknownBackup.status).toBe(404);

    const viewer = await call(server, ADMIN_KEY, 'POST', `${API}/api-keys`, { name: 'scripts-viewer', roles: ['VIEWER'] });
    expect(viewer.status).toBe(201);
    const forbidden = await call(server, viewer.body.secret, 'POST', `${API}/recovery/external`, {
      status: 'COMPLETED',
      targetName: 'x',
      recoveryPoint: '2026-01-02T03:00:00Z',
      startedAt: '2026-01-02T04:00:00Z',
      finishedAt: '2026-01-02T04:01:00Z',
    });
    expect(forbidden.status).toBe(403);
  });
});
