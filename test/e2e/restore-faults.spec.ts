import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ADMIN_KEY, API, backupAndWait, recoverAndWait, startService, TestService, waitFor } from '../support/app';
import { createDatabase, databaseUrl, dropDatabase, sql } from '../support/database';
import { call, startServerProcess } from '../support/server-process';

/**
 * Faults around restores and backups: two recoveries into one target (the second is refused with TARGET_BUSY), a
 * restore that runs out of space (nothing reaches the target, the counts say so), and a service killed mid-backup
 * (the next start removes what the dead job left: staged object, scratch files, its folder).
 */

const TERMINAL = ['COMPLETED', 'FAILED'];

describe('two recoveries into one target', () => {
  let service: TestService;
  const work = mkdtempSync(join(tmpdir(), 'dr-busy-'));
  const databases: string[] = [];

  beforeAll(async () => {
    service = await startService();
    mkdirSync(join(work, 'src'));
    writeFileSync(join(work, 'src', 'big.bin'), randomBytes(24 << 20)); // a restore that takes a moment
  });

  afterAll(async () => {
    await service?.close();
    for (const db of databases) await dropDatabase(db);
    rmSync(work, { recursive: true, force: true });
  });

  const post = (body: object) => service.http().post(`${API}/recovery`).set('X-API-Key', ADMIN_KEY).send(body);
  const get = async (id: string) => (await service.http().get(`${API}/recovery/${id}`).set('X-API-Key', ADMIN_KEY)).body;

  it('refuses a second directory recovery into the same target, or one below or above it, while the first may run', async () => {
    const backup = await backupAndWait(service, { engine: 'filesystem', source: { path: join(work, 'src') } });
    expect(backup.status).toBe('COMPLETED');
    const target = join(service.restoreRoot, 'busy');

    // a production recovery holds its target while it awaits approval
    const waiting = await post({ backupId: backup.id, type: 'FULL', target: { path: target }, environment: 'production' });
    expect(waiting.status).toBe(202);
    expect(waiting.body.status).toBe('AWAITING_APPROVAL');
    for (const path of [target, join(target, 'below'), service.restoreRoot, `${target}/../busy/.`]) {
      const refused = await post({ backupId: backup.id, type: 'FULL', target: { path }, overwrite: true });
      expect(refused.status).toBe(409);
      expect(refused.body).toMatchObject({ code: 'TARGET_BUSY', details: [{ field: 'target.path', message: `in use by recovery ${waiting.body.id}` }] });
    }
    // a sibling whose name shares the prefix is another target
    const sibling = await post({ backupId: backup.id, type: 'FULL', target: { path: `${target}-sibling` } });
    expect(sibling.status).toBe(202);
    await waitFor(
      () => get(sibling.body.id),
      (r) => TERMINAL.includes(r.status),
    );

    const rejected = await service.http().post(`${API}/recovery/${waiting.body.id}/reject`).set('X-API-Key', ADMIN_KEY);
    expect(rejected.status).toBe(200);

    // released: now two at once, exactly one is accepted
    const both = await Promise.all([1, 2].map(() => post({ backupId: backup.id, type: 'FULL', target: { path: target } })));
    expect(both.map((r) => r.status).sort()).toEqual([202, 409]);
    const accepted = both.find((r) => r.status === 202)!;
    expect(both.find((r) => r.status === 409)!.body.code).toBe('TARGET_BUSY');
    const done = await waitFor(
      () => get(accepted.body.id),
      (r) => TERMINAL.includes(r.status),
    );
    expect(done.status).toBe('COMPLETED');

    // released on completion
    const again = await recoverAndWait(service, { backupId: backup.id, type: 'FULL', target: { path: target }, overwrite: true });
    expect(again.status).toBe('COMPLETED');
  });

  it('refuses a second recovery into the same database while the first runs', async () => {
    const source = await createDatabase('drt_busy_src');
    databases.push(source);
    await sql(source, 'CREATE TABLE t AS SELECT g AS id, md5(g::text) AS v FROM generate_series(1, 200000) g');
    const backup = await backupAndWait(service, { engine: 'postgres', source: { url: databaseUrl(source) } });
    expect(backup.status).toBe('COMPLETED');
    const target = `drt_busy_${randomBytes(4).toString('hex')}`;
    databases.push(target);
    const both = await Promise.all([1, 2].map(() => post({ backupId: backup.id, type: 'FULL', target: { url: databaseUrl(target), create: true } })));
    expect(both.map((r) => r.status).sort()).toEqual([202, 409]);
    expect(both.find((r) => r.status === 409)!.body).toMatchObject({ code: 'TARGET_BUSY', details: [{ field: 'target.url' }] });
    const done = await waitFor(
      () => get(both.find((r) => r.status === 202)!.body.id),
      (r) => TERMINAL.includes(r.status),
    );
    expect(done.status).toBe('COMPLETED');
    expect(await sql(target, 'SELECT count(*)::int AS n FROM t')).toEqual([{ n: 200000 }]);
  });
});

const root = process.getuid?.() === 0;
(root ? describe : describe.skip)('a restore that runs out of space (tmpfs, needs root to mount)', () => {
  let service: TestService;
  const work = mkdtempSync(join(tmpdir(), 'dr-enospc-'));
  const small = join(work, 'small-fs');

  beforeAll(async () => {
    mkdirSync(small);
    execFileSync('mount', ['-t', 'tmpfs', '-o', 'size=2m', 'tmpfs', small]);
    service = await startService({ DR_RESTORE_ROOTS: small });
    mkdirSync(join(work, 'src'));
    writeFileSync(join(work, 'src', 'big.bin'), randomBytes(6 << 20));
  });

  afterAll(async () => {
    await service?.close();
    execFileSync('umount', [small]);
    rmSync(work, { recursive: true, force: true });
  });

  it('is FAILED with the reason, leaves nothing on the file system, and counts no bytes restored', async () => {
    const backup = await backupAndWait(service, { engine: 'filesystem', source: { path: join(work, 'src') } });
    expect(backup.status).toBe('COMPLETED');
    writeFileSync(join(small, 'already-there.txt'), 'kept\n');
    const recovery = await recoverAndWait(service, { backupId: backup.id, type: 'FULL', target: { path: join(small, 'restored') } });
    expect(recovery.status).toBe('FAILED');
    expect(recovery.error).toMatch(/tar failed .*(No space left on device|Wrote only \d+ of \d+ bytes)/);
    expect(readdirSync(small)).toEqual(['already-there.txt']);
    expect(recovery.bytesRestored).toBe(0);
    expect(recovery.bytesRead).toBeGreaterThan(0);
  });
});

describe('leftovers of a service killed mid-backup (kill -9)', () => {
  let meta: string;
  const dataDir = mkdtempSync(join(tmpdir(), 'dr-leftovers-'));
  const source = join(dataDir, 'src');

  beforeAll(async () => {
    meta = await createDatabase('drt_leftovers');
    mkdirSync(join(source, 'many'), { recursive: true });
    for (let i = 0; i < 500; i++) writeFileSync(join(source, 'many', `f${i}.txt`), `file ${i}\n`);
    // incompressible and large enough that the backup is still running when it is killed
    execFileSync('bash', ['-c', `head -c ${400 << 20} /dev/urandom > "$1"`, '_', join(source, 'big.bin')]);
  });

  afterAll(async () => {
    await dropDatabase(meta);
    rmSync(dataDir, { recursive: true, force: true });
  });

  const env = () => ({
    DATABASE_URL: databaseUrl(meta),
    DR_DATA_DIR: dataDir,
    DR_ADMIN_API_KEY: ADMIN_KEY,
    DR_JOB_LEASE_SECONDS: '3',
    DR_RESTORE_ROOTS: dataDir,
  });
  const scratch = join(dataDir, 'scratch');
  const backups = join(dataDir, 'backups');
  const scratchOf = (id: string) => (existsSync(scratch) ? readdirSync(scratch).filter((n) => n.includes(id)) : []);

  it('the next start removes the staged object, the scratch files and the folder of the dead job, and those of a failed one', async () => {
    const first = await startServerProcess(env());
    // a backup that FAILED (its database does not exist); below, what a failed publish would have left of it
    const failed = await call(first, ADMIN_KEY, 'POST', `${API}/backups`, {
      engine: 'postgres',
      source: { url: databaseUrl(`drt_missing_${randomBytes(4).toString('hex')}`) },
    });
    expect(failed.status).toBe(202);
    for (let i = 0; i < 200 && (await call(first, ADMIN_KEY, 'GET', `${API}/backups/${failed.body.id}`)).body.status !== 'FAILED'; i++) {
      await new Promise((r) => setTimeout(r, 100));
    }
    expect(existsSync(join(backups, failed.body.id))).toBe(false); // its cleanup removed its folder too
    const killed = await call(first, ADMIN_KEY, 'POST', `${API}/backups`, { engine: 'filesystem', source: { path: source } });
    expect(killed.status).toBe(202);
    const id = killed.body.id as string;
    let ready = false;
    for (let i = 0; i < 600 && !ready; i++) {
      const staged = existsSync(join(backups, id)) && readdirSync(join(backups, id)).some((n) => n.includes('.partial-'));
      ready = staged && scratchOf(id).some((n) => n.endsWith('.index.jsonl')) && scratchOf(id).some((n) => n.includes('.scan.'));
      if (!ready) await new Promise((r) => setTimeout(r, 50));
    }
    expect(ready).toBe(true);
    await first.kill9();
    expect(readdirSync(join(backups, id))).toEqual([expect.stringMatching(/^\.artifact\.tar\.zst\.partial-[0-9a-f]+$/)]);
    expect(scratchOf(id).length).toBeGreaterThanOrEqual(2);

    // what a failed publish leaves (a rename that failed, a cleanup that failed too): a staged file of the FAILED
    // backup in its folder, and a scratch index
    mkdirSync(join(backups, failed.body.id), { recursive: true });
    writeFileSync(join(backups, failed.body.id, '.artifact.tar.zst.partial-0123456789ab'), randomBytes(1024));
    writeFileSync(join(scratch, `${failed.body.id}.index.jsonl`), '{}\n');

    await new Promise((r) => setTimeout(r, 3500)); // let the dead process's lease expire
    const second = await startServerProcess(env());
    try {
      const after = await call(second, ADMIN_KEY, 'GET', `${API}/backups/${id}`);
      expect(after.body).toMatchObject({ status: 'FAILED', error: expect.stringMatching(/interrupted: the process running this backup stopped/) });
      expect(existsSync(join(backups, id))).toBe(false);
      expect(scratchOf(id)).toEqual([]);
      expect(existsSync(join(backups, failed.body.id))).toBe(false);
      expect(scratchOf(failed.body.id)).toEqual([]);
      expect(second.output()).toMatch(/removed what ended jobs left: 1 staged object\(s\), 1 scratch file\(s\)\/folder\(s\)/);
    } finally {
      await second.stop();
    }
  });
});
