import { spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { appendFileSync, existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { Client } from 'pg';
import { openWalArchiveStore, WalClientConfig } from '../../src/wal/wal-client-config';
import { WalArchiveStore } from '../../src/wal/wal-archive-store';
import { freePort, giveToPg, openDir, pgTool, runPgTool, startCluster, stopServer, TestCluster } from '../support/pg-cluster';
import { S3TestServer, startS3Server } from '../support/s3-server';

/**
 * Asynchronous WAL archiving (`dr wal-push --async`: a long-running pusher) and prefetch on recovery
 * (`dr wal-fetch --prefetch N`), with real PostgreSQL clusters made by initdb, pgbench as the write load, a real
 * local store and the S3 emulator (s3rver, the one the other S3 tests use). Nothing is mocked. Needs
 * `npm run build` first (archive_command and restore_command run bin/dr → dist/wal/wal-cli.js).
 */
const REPO = resolve(__dirname, '..', '..');
const DR = join(REPO, 'bin', 'dr');
const S3_ENV = 'DRS_WALA_S3_KEY=S3RVER DRS_WALA_S3_SECRET=S3RVER';
/** What pgbench changed: transactions recorded and the sum of the balances they moved. */
const STATE =
  'SELECT (SELECT count(*) FROM pgbench_history) AS history, (SELECT sum(abalance) FROM pgbench_accounts) AS balance, (SELECT sum(delta) FROM pgbench_history) AS deltas';

function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}

/** Runs pgbench (as this user, over TCP) against a cluster. @throws with its output when it fails */
function pgbench(port: number, args: string[]): string {
  const result = spawnSync(pgTool('pgbench'), ['-h', '127.0.0.1', '-p', String(port), '-U', 'postgres', ...args, 'postgres'], { encoding: 'utf8' });
  if (result.status !== 0) throw new Error(`pgbench ${args.join(' ')} failed: ${result.stdout}${result.stderr}`);
  return result.stdout;
}

/** Waits until PostgreSQL reports `segment` (or a later file) archived, with no failed call after `failedBefore`. */
async function waitArchived(cluster: TestCluster, segment: string, timeoutMs = 90_000): Promise<Record<string, any>> {
  const deadline = Date.now() + timeoutMs;
  let archiver: Record<string, any> = {};
  while (Date.now() < deadline) {
    archiver = (await cluster.query('SELECT last_archived_wal, failed_count::int AS failed, last_failed_wal FROM pg_stat_archiver'))[0];
    if (archiver.last_archived_wal && archiver.last_archived_wal.slice(0, 24) >= segment) return archiver;
    await sleep(100);
  }
  throw new Error(`${segment} not archived within ${timeoutMs} ms: ${JSON.stringify(archiver)}`);
}

/** Names of the WAL files PostgreSQL considers archived (`archive_status/*.done`). */
function doneFiles(dataDir: string): string[] {
  return readdirSync(join(dataDir, 'pg_wal', 'archive_status'))
    .filter((f) => f.endsWith('.done'))
    .map((f) => f.slice(0, -5))
    .sort();
}

/**
 * Checks that each file is archived and verifies: record present, stored object read back through every check of
 * a fetch (stored SHA-256, zstd frame checksum, raw SHA-256 against the record).
 */
async function expectArchivedAndVerified(store: WalArchiveStore, names: string[], scratch: string): Promise<void> {
  mkdirSync(scratch, { recursive: true });
  for (const name of names) {
    const record = await store.record(WalArchiveStore.parseName(name));
    expect({ name, archived: record !== null }).toEqual({ name, archived: true });
    await store.fetch(name, join(scratch, name)); // throws on any mismatch
    rmSync(join(scratch, name));
  }
}

/** The pid of the running pusher of a cluster's default spool, or null. */
function pusherPid(dataDir: string, archive: string): number | null {
  return spoolPid(join(dataDir, 'pg_wal', 'dr-spool', archive, 'push', 'pusher.pid'));
}

/** Kills (SIGKILL) the prefetcher of a data directory's default spool, if one runs (before its files are removed). */
function killPrefetcher(walDir: string, archive: string): void {
  const pid = spoolPid(join(walDir, 'dr-spool', archive, 'fetch', 'prefetcher.pid'));
  if (pid) process.kill(pid, 'SIGKILL');
}

/** The pid in a spool lock file when that process runs, else null. */
function spoolPid(file: string): number | null {
  if (!existsSync(file)) return null;
  const pid = Number(readFileSync(file, 'utf8').trim());
  try {
    // a killed pusher whose parent (init) has not reaped it yet is a zombie: not running
    return readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1]?.startsWith('Z') ? null : pid;
  } catch {
    return null;
  }
}

describe.each([{ kind: 'local' as const }, { kind: 's3' as const }])(
  'asynchronous archiving and prefetch, $kind store (real PostgreSQL, pgbench load)',
  ({ kind }) => {
    let root: string;
    let cluster: TestCluster;
    let s3: S3TestServer | undefined;
    let config: WalClientConfig;
    let configFile: string;
    let store: WalArchiveStore;
    const archive = `async-${kind}`;
    const servers: string[] = [];

    beforeAll(async () => {
      if (!existsSync(join(REPO, 'dist', 'wal', 'wal-cli.js'))) throw new Error('run `npm run build` first');
      root = mkdtempSync(join(tmpdir(), `dr-wal-async-${kind}-`));
      openDir(root);
      if (kind === 's3') {
        s3 = await startS3Server('dr-wal-async');
        config = {
          archive,
          storage: {
            kind: 's3',
            settings: {
              bucket: s3.bucket,
              endpoint: s3.endpoint,
              forcePathStyle: true,
              region: 'us-east-1',
              accessKeyIdSecret: 'env:DRS_WALA_S3_KEY',
              secretAccessKeySecret: 'env:DRS_WALA_S3_SECRET',
            },
          },
        };
        process.env.DRS_WALA_S3_KEY = 'S3RVER';
        process.env.DRS_WALA_S3_SECRET = 'S3RVER';
      } else {
        const path = join(root, 'store');
        mkdirSync(path, { mode: 0o750 });
        giveToPg(path);
        config = { archive, storage: { kind: 'local', settings: { path } } };
      }
      configFile = join(root, 'wal.json');
      writeFileSync(configFile, JSON.stringify(config), { mode: 0o644 });
      store = (await openWalArchiveStore(config, { encrypt: false, decrypt: true })).store;
      cluster = await startCluster(root, 'source', [
        'wal_level = replica',
        'archive_mode = on',
        `archive_command = '${kind === 's3' ? `${S3_ENV} ` : ''}"${DR}" wal-push "%p" --config "${configFile}" --async --parallel 4'`,
        'max_wal_size = 256MB',
      ]);
      servers.push(cluster.dataDir);
    }, 120_000);

    afterAll(async () => {
      for (const dir of servers) stopServer(dir);
      const pid = cluster ? pusherPid(cluster.dataDir, archive) : null;
      if (pid) process.kill(pid, 'SIGKILL');
      if (root) killPrefetcher(join(root, 'base', 'pg_wal'), archive);
      await s3?.close();
      if (root) rmSync(root, { recursive: true, force: true });
    });

    it('archives under a pgbench write load, every segment PostgreSQL marked done is stored and verifies, and recovers to a restore point with prefetch', async () => {
      const base = join(root, 'base');
      mkdirSync(base, { mode: 0o700 });
      giveToPg(base);
      runPgTool(pgTool('pg_basebackup'), ['-h', '127.0.0.1', '-p', String(cluster.port), '-U', 'postgres', '-D', base, '-X', 'none', '-c', 'fast']);
      pgbench(cluster.port, ['-i', '-s', '8', '-q']); // after the base backup: its WAL (about 10 segments) is replayed
      pgbench(cluster.port, ['-c', '2', '-j', '2', '-T', '5', '-n']);
      const expected = (await cluster.query(STATE))[0];
      expect(Number(expected.history)).toBeGreaterThan(0);
      await cluster.query(`SELECT pg_create_restore_point('dr-async-rp')`);
      pgbench(cluster.port, ['-c', '2', '-j', '2', '-T', '4', '-n']);
      const last = (await cluster.query<{ f: string }>('SELECT pg_walfile_name(pg_switch_wal()) AS f'))[0].f;
      const archiver = await waitArchived(cluster, last);
      expect(archiver.failed).toBe(0);
      const done = doneFiles(cluster.dataDir);
      expect(done.length).toBeGreaterThanOrEqual(5);
      await expectArchivedAndVerified(store, done, join(root, 'verify'));
      expect(pusherPid(cluster.dataDir, archive)).not.toBeNull(); // one long-running pusher did the work

      // recovery of the base backup to the restore point, restore_command with prefetch
      const port = await freePort();
      servers.push(base);
      appendFileSync(
        join(base, 'postgresql.conf'),
        [
          '',
          `port = ${port}`,
          `unix_socket_directories = '${join(root, 'source-run')}'`,
          'archive_mode = off',
          `restore_command = '${kind === 's3' ? `${S3_ENV} ` : ''}DR_WAL_TIMING=1 "${DR}" wal-fetch "%f" "%p" --config "${configFile}" --prefetch 6'`,
          `recovery_target_name = 'dr-async-rp'`,
          `recovery_target_action = 'promote'`,
          '',
        ].join('\n'),
      );
      writeFileSync(join(base, 'recovery.signal'), '');
      giveToPg(join(base, 'recovery.signal'));
      const started = Date.now();
      runPgTool(pgTool('pg_ctl'), ['start', '-D', base, '-l', join(root, 'source-run', 'recovery.log'), '-w', '-t', '120']);
      const client = async <T>(sql: string) => {
        const c = new Client({ host: '127.0.0.1', port, user: 'postgres', database: 'postgres' });
        await c.connect();
        try {
          return (await c.query(sql)).rows as T[];
        } finally {
          await c.end();
        }
      };
      const deadline = Date.now() + 120_000;
      while ((await client<{ r: boolean }>('SELECT pg_is_in_recovery() AS r'))[0].r) {
        if (Date.now() > deadline) throw new Error(`recovery did not end:\n${readFileSync(join(root, 'source-run', 'recovery.log'), 'utf8')}`);
        await sleep(200);
      }
      const replayMs = Date.now() - started;
      // exactly the state at the restore point: the transactions of the first pgbench run, none of the second
      expect((await client(STATE))[0]).toEqual(expected);
      const log = readFileSync(join(root, 'source-run', 'recovery.log'), 'utf8');
      const fromSpool = (log.match(/ms from spool/g) ?? []).length;
      const fromArchive = (log.match(/ms from archive/g) ?? []).length;
      expect(fromSpool).toBeGreaterThanOrEqual(3); // replay was fed from the prefetch spool
      process.stdout.write(
        `${kind}: ${done.length} segments archived asynchronously; recovery to the restore point ${replayMs} ms, ${fromSpool} segments from the spool, ${fromArchive} fetched directly\n`,
      );
    }, 300_000);

    it('kill -9 of the pusher mid-batch loses no acknowledged segment, and archiving resumes', async () => {
      // a backlog of 8 segments (archiving held: archive_command fails meanwhile), then released: the pusher is
      // killed once PostgreSQL marked 2 of them done, with the others in flight or queued
      await cluster.query('CREATE TABLE IF NOT EXISTS burst (id int, pad text)');
      await cluster.query(`ALTER SYSTEM SET archive_command = 'exit 1'`);
      await cluster.query('SELECT pg_reload_conf()');
      await sleep(500);
      const doneBefore = new Set(doneFiles(cluster.dataDir));
      for (let i = 0; i < 8; i++) {
        await cluster.query(`INSERT INTO burst SELECT g, md5(g::text) || repeat('x', 400) FROM generate_series(1, 20000) g`);
        await cluster.query('SELECT pg_switch_wal()');
      }
      await cluster.query('ALTER SYSTEM RESET archive_command');
      await cluster.query('SELECT pg_reload_conf()');
      let killed: number | null = null;
      let doneAtKill: string[] = [];
      let readyAtKill = 0;
      const deadline = Date.now() + 60_000;
      while (killed === null && Date.now() < deadline) {
        const pid = pusherPid(cluster.dataDir, archive);
        const newlyDone = doneFiles(cluster.dataDir).filter((f) => !doneBefore.has(f));
        if (pid && newlyDone.length >= 2) {
          process.kill(pid, 'SIGKILL');
          killed = pid;
          doneAtKill = doneFiles(cluster.dataDir);
          readyAtKill = readdirSync(join(cluster.dataDir, 'pg_wal', 'archive_status')).filter((f) => f.endsWith('.ready')).length;
        }
        await sleep(5);
      }
      expect(killed).not.toBeNull();
      // every file PostgreSQL considered archived when the pusher died is in the store and verifies
      await expectArchivedAndVerified(store, doneAtKill, join(root, 'verify-kill'));
      expect(readyAtKill).toBeGreaterThan(0); // it died mid-batch: files were waiting for it
      // archiving resumes: a new pusher (started by the waiting wal-push) stores the rest
      await cluster.query(`INSERT INTO burst SELECT g, 'after' FROM generate_series(1, 1000) g`);
      const last = (await cluster.query<{ f: string }>('SELECT pg_walfile_name(pg_switch_wal()) AS f'))[0].f;
      await waitArchived(cluster, last, 120_000);
      // the new pusher may already have exited idle (60 s) when PostgreSQL's archiver waited out its retry pause
      // after the killed pusher's waiting wal-push failed (seen under load); if one runs, it is not the killed one
      const pid = pusherPid(cluster.dataDir, archive);
      expect(pid).not.toBe(killed);
      const done = doneFiles(cluster.dataDir);
      await expectArchivedAndVerified(store, done, join(root, 'verify-after'));
      // continuity: every segment from the first to the last one archived is in the store
      const segments = (await store.list())
        .map((f) => f.file)
        .filter((f) => f.kind === 'segment')
        .map((f) => f.name);
      const numbers = segments.map((s) => parseInt(s.slice(16), 16) + parseInt(s.slice(8, 16), 16) * 256);
      for (let n = Math.min(...numbers); n <= Math.max(...numbers); n++) expect(numbers).toContain(n);
      process.stdout.write(
        `${kind}: pusher ${killed} killed with ${doneAtKill.length} files done and ${readyAtKill} ready; resumed by pusher ${pid ?? '(exited idle)'}, ${done.length} done\n`,
      );
    }, 300_000);
  },
);

describe("prefetch spool and the asynchronous commands' input (bin/dr, local store)", () => {
  let dir: string;
  let configFile: string;
  const segments = ['000000010000000000000011', '000000010000000000000012', '000000010000000000000013', '000000010000000000000014'];
  const contents = new Map<string, Buffer>();

  beforeAll(() => {
    dir = mkdtempSync(join(tmpdir(), 'dr-wal-prefetch-'));
    mkdirSync(join(dir, 'pg_wal'));
    configFile = join(dir, 'wal.json');
    writeFileSync(configFile, JSON.stringify({ archive: 'pf', storage: { kind: 'local', settings: { path: join(dir, 'store') } } }));
    for (const name of segments) {
      const bytes = Buffer.alloc(16 << 20);
      randomBytes(1 << 20).copy(bytes);
      contents.set(name, bytes);
      writeFileSync(join(dir, name), bytes);
      const push = spawnSync(DR, ['wal-push', name, '--config', configFile], { cwd: dir, encoding: 'utf8' });
      expect(push.status).toBe(0);
    }
  });
  afterAll(() => {
    killPrefetcher(join(dir, 'pg_wal'), 'pf');
    rmSync(dir, { recursive: true, force: true });
  });

  const fetch = (name: string, to: string) =>
    spawnSync(DR, ['wal-fetch', name, to, '--config', configFile, '--prefetch', '3', '--idle-exit', '5'], {
      cwd: dir,
      encoding: 'utf8',
      env: { ...process.env, DR_WAL_TIMING: '1' },
    });

  it('hands over a spooled segment only when it matches its archive record; a tampered one is fetched again from the archive', async () => {
    const first = fetch(segments[0], 'pg_wal/RECOVERYXLOG');
    expect(first.status).toBe(0);
    expect(first.stderr).toContain('from archive');
    expect(readFileSync(join(dir, 'pg_wal', 'RECOVERYXLOG')).equals(contents.get(segments[0])!)).toBe(true);
    const spool = join(dir, 'pg_wal', 'dr-spool', 'pf', 'fetch');
    const deadline = Date.now() + 30_000;
    while (!segments.slice(1).every((s) => existsSync(join(spool, `${s}.json`)))) {
      if (Date.now() > deadline) throw new Error(`not prefetched: ${readdirSync(spool).join(', ')}`);
      await sleep(50);
    }
    const second = fetch(segments[1], 'pg_wal/RECOVERYXLOG');
    expect(second.status).toBe(0);
    expect(second.stderr).toContain('from spool');
    expect(readFileSync(join(dir, 'pg_wal', 'RECOVERYXLOG')).equals(contents.get(segments[1])!)).toBe(true);
    // a spooled segment damaged after it was fetched (a flipped byte) is never handed over
    const spooled = join(spool, segments[2]);
    const damaged = readFileSync(spooled);
    damaged[1000] ^= 0xff;
    writeFileSync(spooled, damaged);
    const third = fetch(segments[2], 'pg_wal/RECOVERYXLOG');
    expect(third.status).toBe(0);
    expect(third.stderr).toContain(`spooled ${segments[2]} is sha256`);
    expect(third.stderr).toContain('from archive');
    expect(readFileSync(join(dir, 'pg_wal', 'RECOVERYXLOG')).equals(contents.get(segments[2])!)).toBe(true);
    // the end of the archive: not archived, exit 1 quietly, whatever the spool holds
    const beyond = fetch('000000010000000000000015', 'pg_wal/RECOVERYXLOG2');
    expect(beyond.status).toBe(1);
    expect(existsSync(join(dir, 'pg_wal', 'RECOVERYXLOG2'))).toBe(false);
  }, 60_000);

  it('refuses a spool path that is not absolute and normalized, and out-of-range numbers (exit 64)', () => {
    for (const args of [
      ['--spool', 'relative/dir'],
      ['--spool', '/tmp/../etc'],
      ['--prefetch', '65'],
      ['--parallel', '0'],
      ['--prefetch', '2x'],
    ]) {
      const result = spawnSync(DR, ['wal-fetch', segments[0], 'pg_wal/X', '--config', configFile, ...args], { cwd: dir, encoding: 'utf8' });
      expect({ args, status: result.status }).toEqual({ args, status: 64 });
      expect(result.stderr).toContain(args[0]);
    }
    const push = spawnSync(DR, ['wal-push', segments[0], '--config', configFile, '--async', '--spool', '/a//b'], { cwd: dir, encoding: 'utf8' });
    expect(push.status).toBe(64);
  });

  it('acknowledges only the very file the pusher stored: a second call for it exits 0 from the shell, a different file under the name never', async () => {
    const pgWal = join(dir, 'ack', 'pg_wal');
    mkdirSync(join(pgWal, 'archive_status'), { recursive: true });
    const name = '000000010000000000000031';
    writeFileSync(join(pgWal, name), contents.get(segments[0])!);
    writeFileSync(join(pgWal, 'archive_status', `${name}.ready`), '');
    const push = () =>
      spawnSync(DR, ['wal-push', `pg_wal/${name}`, '--config', configFile, '--async', '--timeout', '10'], {
        cwd: join(dir, 'ack'),
        encoding: 'utf8',
        env: { ...process.env, DR_WAL_TIMING: '1' },
      });
    try {
      const first = push();
      expect(first.status).toBe(0);
      expect(first.stderr).toContain('from pusher');
      const again = push();
      expect(again.status).toBe(0);
      expect(again.stderr).toContain('acknowledged from the spool (shell)');
      // PostgreSQL never rewrites a ready file, but a status must not outlive its file: another file, same name
      rmSync(join(pgWal, name));
      writeFileSync(join(pgWal, name), contents.get(segments[1])!);
      const other = push();
      expect(other.status).toBe(2);
      expect(other.stderr).toContain(`${name}: the pusher stored sha256`);
      expect(other.stderr).not.toContain('(shell)');
    } finally {
      const pid = spoolPid(join(pgWal, 'dr-spool', 'pf', 'push', 'pusher.pid'));
      if (pid) process.kill(pid, 'SIGKILL');
    }
  });

  it('an asynchronous push whose config names a secret the allow-list refuses fails at once with the reason (exit 64), never the value', () => {
    const refused = join(dir, 'refused.json');
    writeFileSync(
      refused,
      JSON.stringify({
        archive: 'refused',
        storage: { kind: 'local', settings: { path: join(dir, 'store') } },
        encryption: { passphraseSecret: 'env:PGPASSWORD' },
      }),
    );
    mkdirSync(join(dir, 'wal2'));
    writeFileSync(join(dir, 'wal2', segments[0]), contents.get(segments[0])!);
    const started = Date.now();
    const result = spawnSync(DR, ['wal-push', `wal2/${segments[0]}`, '--config', refused, '--async', '--timeout', '30'], {
      cwd: dir,
      encoding: 'utf8',
      env: { PATH: process.env.PATH, PGPASSWORD: 'archiver-own-secret-4711' },
    });
    expect(result.status).toBe(64);
    expect(result.stderr).toContain('encryption.passphraseSecret');
    expect(result.stderr).not.toContain('archiver-own-secret-4711');
    expect(Date.now() - started).toBeLessThan(15_000); // the pusher's reason, not the timeout
    expect(existsSync(join(dir, 'store', 'wal', 'refused'))).toBe(false);
  });
});
