import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { Client } from 'pg';
import { ADMIN_KEY, API, backupAndWait, recoverAndWait, startService, TestService, waitFor } from '../support/app';
import { freePort, giveToPg, openDir, PG_BIN_DIR, startCluster, stopServer, TestCluster } from '../support/pg-cluster';

/**
 * Point-in-time recovery end to end, with a real PostgreSQL 15 cluster created by the test (initdb into a temp
 * dir, its own port, archive_mode=on, archive_command = `bin/dr wal-push %p`), a base backup through the API,
 * recoveries to a time, an LSN, a named restore point and the latest point, each checked row by row; then a
 * deleted segment must show as a continuity gap (API and metric) and make the recoveries that need it fail.
 * Nothing is mocked. Needs `npm run build` first (archive_command runs dist/wal/wal-cli.js).
 * Timing: 6 batches of 5 rows, 1.2 s apart, a WAL switch after each (the spec runs in about a minute).
 */
const REPO = resolve(__dirname, '..', '..');
const DR = join(REPO, 'bin', 'dr');
const BATCHES = 6;
const ROWS_PER_BATCH = 5;
const GAP_MS = 1200;

describe('point-in-time recovery (real PostgreSQL cluster, WAL archived with dr wal-push)', () => {
  let service: TestService;
  let root: string;
  let cluster: TestCluster;
  let archiveId: string;
  let archiveName: string;
  let baseBackupId: string;
  let planId: string;
  const servers: string[] = [];
  /** Server clock after batch i committed / before batch i started (ISO). */
  const committedBy: string[] = [];
  const startedAfter: string[] = [];
  let lsnAfterBatch2: string;
  const http = () => service.http();

  beforeAll(async () => {
    if (!existsSync(join(REPO, 'dist', 'wal', 'wal-cli.js'))) throw new Error('run `npm run build` first: archive_command runs dist/wal/wal-cli.js');
    root = mkdtempSync(join(tmpdir(), 'dr-pitr-'));
    openDir(root);
    const store = join(root, 'store');
    mkdirSync(store, { mode: 0o750 });
    giveToPg(store); // wal-push runs as the PostgreSQL OS user and writes here
    service = await startService(PG_BIN_DIR ? { DR_PG_BIN_DIR: PG_BIN_DIR } : {});
    openDir(service.restoreRoot); // recovered servers (as the PostgreSQL OS user) live below it
    const location = await http()
      .post(`${API}/storage-locations`)
      .set('X-API-Key', ADMIN_KEY)
      .send({ name: 'pitr-store', kind: 'local', settings: { path: store } });
    expect(location.status).toBe(201);
    archiveName = `main-${Date.now()}`;
    const archive = await http().post(`${API}/wal-archives`).set('X-API-Key', ADMIN_KEY).send({ name: archiveName, storageLocationId: location.body.id });
    expect(archive.status).toBe(201);
    archiveId = archive.body.id;
    const clientConfig = await http().get(`${API}/wal-archives/${archiveId}/client-config`).set('X-API-Key', ADMIN_KEY);
    expect(clientConfig.body).toEqual({ archive: archiveName, storage: { kind: 'local', settings: { path: store } } });
    const configFile = join(root, 'wal.json');
    writeFileSync(configFile, JSON.stringify(clientConfig.body), { mode: 0o644 });
    cluster = await startCluster(root, 'source', [
      'wal_level = replica',
      'archive_mode = on',
      `archive_command = '"${DR}" wal-push "%p" --config "${configFile}"'`,
      'archive_timeout = 0',
    ]);
    servers.push(cluster.dataDir);
    await cluster.query('CREATE TABLE events (id serial PRIMARY KEY, batch int NOT NULL, note text NOT NULL)');
  }, 120_000);

  afterAll(async () => {
    for (const dir of servers) stopServer(dir);
    await service?.close();
    if (root) rmSync(root, { recursive: true, force: true });
    if (service) rmSync(service.restoreRoot, { recursive: true, force: true });
  });

  it('takes a base backup with pg_basebackup (a plan keeping the last one), recording its WAL range', async () => {
    const plan = await http()
      .post(`${API}/backup-plans`)
      .set('X-API-Key', ADMIN_KEY)
      .send({
        name: 'pitr-plan',
        engine: 'postgres-base',
        source: { url: `postgresql://postgres@127.0.0.1:${cluster.port}/postgres`, walArchiveId: archiveId },
        storageLocationId: (await http().get(`${API}/wal-archives/${archiveId}`).set('X-API-Key', ADMIN_KEY)).body.storageLocationId,
        retention: { keepLast: 1 },
      });
    expect(plan.status).toBe(201);
    planId = plan.body.id;
    const backup = await backupAndWait(service, { planId });
    expect(backup.error).toBeNull();
    expect(backup.status).toBe('COMPLETED');
    baseBackupId = backup.id;
    expect(backup.walRange).toEqual(
      expect.objectContaining({
        walArchiveId: archiveId,
        timeline: 1,
        startLsn: expect.stringMatching(/^[0-9A-F]+\/[0-9A-F]+$/),
        endLsn: expect.stringMatching(/^[0-9A-F]+\/[0-9A-F]+$/),
      }),
    );
    // -X none: the server waited until the WAL the backup needs was archived.
    const status = (await http().get(`${API}/wal-archives/${archiveId}`).set('X-API-Key', ADMIN_KEY)).body;
    expect(status.segmentsArchived).toBeGreaterThanOrEqual(1);
    expect(status.baseBackups).toBe(1);
  });

  it('archives the WAL of rows committed over time, across WAL switches', async () => {
    let lastSwitchRequested = 0;
    for (let batch = 1; batch <= BATCHES; batch++) {
      startedAfter[batch] = (
        await cluster.query<{ t: string }>(`SELECT to_char(clock_timestamp() AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"') AS t`)
      )[0].t;
      const client = new Client({ host: '127.0.0.1', port: cluster.port, user: 'postgres', database: 'postgres' });
      await client.connect();
      await client.query('BEGIN');
      for (let i = 0; i < ROWS_PER_BATCH; i++) await client.query('INSERT INTO events (batch, note) VALUES ($1, $2)', [batch, `row ${i}`]);
      await client.query('COMMIT');
      committedBy[batch] = (await client.query(`SELECT to_char(clock_timestamp() AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"') AS t`)).rows[0].t;
      if (batch === 2) lsnAfterBatch2 = (await client.query('SELECT pg_current_wal_lsn()::text AS l')).rows[0].l;
      if (batch === 4) await client.query(`SELECT pg_create_restore_point('dr-after-batch-4')`);
      await client.end();
      // The last batch's switch is what ends the newest segment: the switch after the loop finds nothing written
      // since and names the same segment, which may be archived during the pause below, before that switch.
      if (batch === BATCHES) lastSwitchRequested = Date.now();
      await cluster.query('SELECT pg_switch_wal()');
      await new Promise((r) => setTimeout(r, GAP_MS));
    }
    const last = (await cluster.query<{ f: string }>('SELECT pg_walfile_name(pg_switch_wal()) AS f'))[0].f;
    const deadline = Date.now() + 60_000;
    let archiver: Record<string, any> = {};
    while (Date.now() < deadline) {
      archiver = (await cluster.query('SELECT last_archived_wal, failed_count, last_failed_wal FROM pg_stat_archiver'))[0];
      if (archiver.last_archived_wal && archiver.last_archived_wal >= last) break;
      await new Promise((r) => setTimeout(r, 200));
    }
    expect(archiver).toEqual(expect.objectContaining({ failed_count: '0' }));
    expect(archiver.last_archived_wal >= last).toBe(true);
    const status = (await http().get(`${API}/wal-archives/${archiveId}`).set('X-API-Key', ADMIN_KEY)).body;
    const answered = Date.now();
    expect(status.continuity).toEqual(expect.objectContaining({ ok: true, missingCount: 0, toSegment: status.newestSegment }));
    expect(status.newestSegment >= last.slice(0, 24)).toBe(true);
    // the achieved RPO is the age of the newest archived segment, measured when the request was answered
    const age = (answered - Date.parse(status.newestSegmentAt)) / 1000;
    expect(Math.abs(status.achievedRpoSeconds - age)).toBeLessThanOrEqual(0.6);
    expect(Date.parse(status.newestSegmentAt)).toBeGreaterThanOrEqual(lastSwitchRequested - 1000);
  }, 120_000);

  /** Runs a POINT_IN_TIME recovery and returns the recovery body and the batches present in the recovered server. */
  async function recoverTo(name: string, recoveryTarget: object, extra: object = {}): Promise<{ recovery: Record<string, any>; batches: number[] }> {
    const port = await freePort();
    const dataDirectory = join(service.restoreRoot, name);
    servers.push(dataDirectory);
    const recovery = await recoverAndWait(service, { type: 'POINT_IN_TIME', target: { dataDirectory, port, recoveryTarget, ...extra } });
    if (recovery.status !== 'COMPLETED') return { recovery, batches: [] };
    const client = new Client({ host: '127.0.0.1', port, user: 'postgres', database: 'postgres' });
    await client.connect();
    try {
      const rows = (await client.query('SELECT batch, count(*)::int AS n FROM events GROUP BY batch ORDER BY batch')).rows;
      for (const r of rows) expect(r.n).toBe(ROWS_PER_BATCH); // whole transactions only
      return { recovery, batches: rows.map((r) => r.batch) };
    } finally {
      await client.end();
      stopServer(dataDirectory);
    }
  }

  it('recovers to a time T between two batches: exactly the rows committed at or before T', async () => {
    const t = new Date((Date.parse(committedBy[3]) + Date.parse(startedAfter[4])) / 2).toISOString();
    const { recovery, batches } = await recoverTo('to-time', { time: t }, { walArchiveId: archiveId });
    expect(recovery.error).toBeNull();
    expect(recovery.backupId).toBe(baseBackupId); // chosen: the newest base backup that ended before T
    expect(batches).toEqual([1, 2, 3]);
    expect(recovery.pointInTime).toEqual(
      expect.objectContaining({
        state: 'promoted',
        timeline: 2,
        lsn: expect.stringMatching(/\//),
        server: expect.objectContaining({ port: expect.any(Number), running: true }),
      }),
    );
    // The last transaction replayed is batch 3's commit: at or before T, after batch 3 started.
    const last = Date.parse(recovery.pointInTime.lastTransactionAt.replace(' ', 'T').replace(/\+00$/, 'Z'));
    expect(last).toBeLessThanOrEqual(Date.parse(t));
    expect(last).toBeGreaterThanOrEqual(Date.parse(startedAfter[3]) - 1);
    expect(recovery.durationMs).toBeGreaterThan(0);
    process.stdout.write(
      `PITR to time: recovery ${recovery.durationMs} ms (replay ${recovery.pointInTime.replayMs} ms), reached ${recovery.pointInTime.lsn}\n`,
    );
  }, 90_000);

  it('recovers to the latest archived point: all rows', async () => {
    const { recovery, batches } = await recoverTo('to-latest', { latest: true }, { walArchiveId: archiveId });
    expect(recovery.error).toBeNull();
    expect(batches).toEqual([1, 2, 3, 4, 5, 6]);
    process.stdout.write(`PITR to latest: recovery ${recovery.durationMs} ms (replay ${recovery.pointInTime.replayMs} ms)\n`);
  }, 90_000);

  it('recovers to an LSN and to a named restore point, and can pause there instead of promoting', async () => {
    const byLsn = await recoverTo('to-lsn', { lsn: lsnAfterBatch2 }, { walArchiveId: archiveId });
    expect(byLsn.recovery.error).toBeNull();
    expect(byLsn.batches).toEqual([1, 2]);
    const byName = await recoverTo('to-name', { name: 'dr-after-batch-4' }, { walArchiveId: archiveId, action: 'pause' });
    expect(byName.recovery.error).toBeNull();
    expect(byName.recovery.pointInTime.state).toBe('paused');
    expect(byName.batches).toEqual([1, 2, 3, 4]);
  }, 120_000);

  it('refuses bad targets with 400 naming the field', async () => {
    const port = await freePort();
    const two = await http()
      .post(`${API}/recovery`)
      .set('X-API-Key', ADMIN_KEY)
      .send({
        type: 'POINT_IN_TIME',
        backupId: baseBackupId,
        target: { dataDirectory: join(service.restoreRoot, 'bad'), port, recoveryTarget: { latest: true, lsn: '0/1' } },
      });
    expect(two.status).toBe(400);
    expect(JSON.stringify(two.body)).toContain('target.recoveryTarget');
    const early = await http()
      .post(`${API}/recovery`)
      .set('X-API-Key', ADMIN_KEY)
      .send({
        type: 'POINT_IN_TIME',
        backupId: baseBackupId,
        target: { dataDirectory: join(service.restoreRoot, 'bad'), port, recoveryTarget: { time: '2001-01-01T00:00:00Z' } },
      });
    expect(early.status).toBe(400);
    expect(JSON.stringify(early.body)).toContain('before base backup');
    const outside = await http()
      .post(`${API}/recovery`)
      .set('X-API-Key', ADMIN_KEY)
      .send({ type: 'POINT_IN_TIME', backupId: baseBackupId, target: { dataDirectory: '/etc/pitr', port, recoveryTarget: { latest: true } } });
    expect(outside.status).toBe(403);
    const full = await http()
      .post(`${API}/recovery`)
      .set('X-API-Key', ADMIN_KEY)
      .send({ type: 'FULL', backupId: baseBackupId, target: { path: join(service.restoreRoot, 'bad') } });
    expect(full.status).toBe(400);
    expect(full.body.details).toEqual([expect.objectContaining({ field: 'type' })]);
    const neither = await http()
      .post(`${API}/recovery`)
      .set('X-API-Key', ADMIN_KEY)
      .send({ type: 'POINT_IN_TIME', target: { dataDirectory: join(service.restoreRoot, 'bad'), port, recoveryTarget: { latest: true } } });
    expect(neither.status).toBe(400);
    expect(neither.body.details).toEqual([expect.objectContaining({ field: 'backupId' })]);
    const badPort = await http()
      .post(`${API}/recovery`)
      .set('X-API-Key', ADMIN_KEY)
      .send({
        type: 'POINT_IN_TIME',
        backupId: baseBackupId,
        target: { dataDirectory: join(service.restoreRoot, 'bad'), port: 80, recoveryTarget: { time: 'yesterday' } },
      });
    expect(badPort.status).toBe(400);
    expect(badPort.body.details.map((d: { field: string }) => d.field).sort()).toEqual(['target.port', 'target.recoveryTarget.time']);
  });

  it('fails a latest recovery whose replay stopped short because a segment could not be fetched (corrupt object)', async () => {
    // The listing still shows every segment (continuity ok), but wal-fetch refuses the corrupt one, which
    // PostgreSQL takes for the end of the WAL: it would promote early and silently lose the later transactions.
    const store = join(root, 'store', 'wal', archiveName, '00000001');
    const segments = readdirSync(store)
      .filter((f) => /^[0-9A-F]{24}\.json$/.test(f))
      .sort();
    const victim = join(store, `${segments[segments.length - 3].slice(0, 24)}.zst`);
    const original = readFileSync(victim);
    const corrupt = Buffer.from(original);
    corrupt[Math.floor(corrupt.length / 2)] ^= 0xff;
    writeFileSync(victim, corrupt);
    try {
      const latest = await recoverTo('corrupt-latest', { latest: true }, { walArchiveId: archiveId });
      expect(latest.recovery.status).toBe('FAILED');
      expect(latest.recovery.error).toContain(`before the archive's newest segment ${segments[segments.length - 1].slice(0, 24)}`);
    } finally {
      writeFileSync(victim, original);
    }
  }, 120_000);

  it('detects a missing archived segment (API and metric) and fails a recovery that needs it, naming it', async () => {
    const store = join(root, 'store', 'wal', archiveName, '00000001');
    const segments = readdirSync(store)
      .filter((f) => /^[0-9A-F]{24}\.json$/.test(f))
      .sort();
    const victim = segments[segments.length - 3].slice(0, 24);
    rmSync(join(store, `${victim}.json`));
    rmSync(join(store, `${victim}.zst`));
    const status = (await http().get(`${API}/wal-archives/${archiveId}`).set('X-API-Key', ADMIN_KEY)).body;
    expect(status.continuity.ok).toBe(false);
    expect(status.continuity.missing).toEqual([victim]);
    const metrics = (await http().get('/actuator/prometheus')).text;
    expect(metrics).toContain(`dr_wal_archive_gaps{archive="${archiveName}"} 1`);
    expect(metrics).toMatch(new RegExp(`dr_wal_archive_achieved_rpo_seconds\\{archive="${archiveName}"\\} \\d`));
    const latest = await recoverTo('gap-latest', { latest: true }, { walArchiveId: archiveId });
    expect(latest.recovery.status).toBe('FAILED');
    expect(latest.recovery.error).toContain(victim);
    // A time after the gap passes the pre-check; PostgreSQL itself stops at the gap and the reason names it.
    const late = await recoverTo('gap-time', { time: committedBy[BATCHES] }, { walArchiveId: archiveId });
    expect(late.recovery.status).toBe('FAILED');
    expect(late.recovery.error).toContain(victim);
    expect(late.recovery.error).toMatch(/recovery ended before configured recovery target was reached|target was not reached/);
  }, 120_000);

  it('removes the WAL no kept base backup needs when retention deletes a base backup (the gap goes with it)', async () => {
    const second = await backupAndWait(service, { planId });
    expect(second.status).toBe('COMPLETED');
    // keepLast 1: the first base backup goes, and with it the WAL before the second one's start.
    const segmentsLeft = () =>
      readdirSync(join(root, 'store', 'wal', archiveName, '00000001'))
        .filter((f) => /^[0-9A-F]{24}\.json$/.test(f))
        .map((f) => f.slice(0, 24));
    const { status, left } = await waitFor(
      async () => ({ status: (await http().get(`${API}/wal-archives/${archiveId}`).set('X-API-Key', ADMIN_KEY)).body, left: segmentsLeft() }),
      ({ status: b, left: l }) => b.baseBackups === 1 && l.every((name) => name >= b.continuity.fromSegment),
      30_000,
    );
    expect(status.baseBackups).toBe(1);
    expect(status.continuity).toEqual(expect.objectContaining({ ok: true, missingCount: 0 }));
    expect(status.continuity.fromSegment > '000000010000000000000002').toBe(true);
    expect(left.length).toBeGreaterThan(0);
    expect(left.every((name) => name >= status.continuity.fromSegment)).toBe(true);
    expect(status.plans).toEqual([expect.objectContaining({ id: planId, name: 'pitr-plan' })]);
    const metrics = (await http().get('/actuator/prometheus')).text;
    expect(metrics).toMatch(new RegExp(`dr_plan_wal_rpo_seconds\\{plan="pitr-plan",archive="${archiveName}"\\} \\d`));
  }, 90_000);
});
