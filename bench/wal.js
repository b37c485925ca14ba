#!/usr/bin/env node
'use strict';
/**
 * WAL archiving throughput and lag: `dr wal-push` synchronous (one process per segment) and asynchronous
 * (`--async`: one long-running pusher, 4 at a time), to the local store and to the S3 emulator (s3rver), against
 * pgBackRest (Debian's package; `archive-push`, synchronous and `archive-async=y` with process-max 4, zstd level 3,
 * to a posix repository) archiving the same kind of cluster in the same run.
 *
 * For each mode a fresh cluster (initdb, 16 MiB segments, fsync off so the disk is not the bottleneck) is made, then:
 * 1. **load**: pgbench runs a WAL-heavy script (inserts of random md5 text, about 2x compressible like busy WAL)
 *    rate-limited (`-R`) to BENCH_WAL_TARGET_SEGMENTS segments/s (default 4 = 64 MiB/s) for BENCH_WAL_SECONDS
 *    (default 20); every 250 ms the archive lag is sampled: the segments PostgreSQL completed and has not had
 *    archived yet (`pg_wal/archive_status/*.ready`). Reported: WAL generated (segments/s), archived during the load
 *    (segments/s), lag max / p95 / mean, and the time to drain once the load stops;
 * 2. **backlog**: archiving held (archive_command fails) while BENCH_WAL_BACKLOG segments (default 32) are written,
 *    then released: the time until PostgreSQL has them all archived gives the highest rate (segments/s, MiB/s).
 *
 * Prints a table, with each mode's ratio to pgBackRest's synchronous and asynchronous figures, and writes
 * `.bench/wal-results.json`. Modes: BENCH_WAL_MODES (comma separated, default all available):
 * dr-sync-local, dr-async-local, dr-sync-s3, dr-async-s3, pgbackrest-sync, pgbackrest-async.
 * pgBackRest to S3 needs TLS, which s3rver does not serve here: it is compared on the local store only.
 *
 * Needs: `npm run build`, initdb/pg_ctl/pgbench (Debian: /usr/lib/postgresql/<major>/bin), pgbackrest for its rows.
 * As root, clusters run as the `postgres` OS user.  Run: node bench/wal.js
 */
const { spawn, spawnSync } = require('node:child_process');
const fs = require('node:fs');
const net = require('node:net');
const path = require('node:path');

const REPO = path.resolve(__dirname, '..');
const DR = path.join(REPO, 'bin', 'dr');
const WORK = path.join(REPO, '.bench', 'wal');
const SEGMENT = 16 << 20;
const LOAD_SECONDS = Number(process.env.BENCH_WAL_SECONDS || 20);
const TARGET = Number(process.env.BENCH_WAL_TARGET_SEGMENTS || 4);
const BACKLOG = Number(process.env.BENCH_WAL_BACKLOG || 32);
const CLIENTS = Number(process.env.BENCH_WAL_CLIENTS || 2);
const PG_USER = 'postgres';

const log = (m) => process.stderr.write(`[wal bench] ${m}\n`);
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

const PG_BIN = (() => {
  if (spawnSync('sh', ['-c', 'command -v initdb && command -v pg_ctl'], { stdio: 'ignore' }).status === 0) return '';
  const root = '/usr/lib/postgresql';
  const majors = fs.existsSync(root) ? fs.readdirSync(root).filter((d) => /^\d+$/.test(d)).sort((a, b) => b - a) : [];
  return majors.length ? path.join(root, majors[0], 'bin') : '';
})();
const pgTool = (name) => (PG_BIN ? path.join(PG_BIN, name) : name);
const asRoot = process.getuid() === 0;
const pgId = asRoot
  ? { uid: Number(spawnSync('id', ['-u', PG_USER], { encoding: 'utf8' }).stdout), gid: Number(spawnSync('id', ['-g', PG_USER], { encoding: 'utf8' }).stdout) }
  : null;
const give = (p) => pgId && fs.chownSync(p, pgId.uid, pgId.gid);

/** Runs a tool as the PostgreSQL OS user. @throws with its output */
function asPg(command, args, env = {}) {
  const r = spawnSync(command, args, { encoding: 'utf8', cwd: '/tmp', env: { PATH: process.env.PATH, LANG: 'C.UTF-8', HOME: '/tmp', ...env }, ...(pgId || {}) });
  if (r.status !== 0) throw new Error(`${command} ${args.join(' ')}: ${r.stdout}${r.stderr}`);
  return r.stdout;
}

function freePort() {
  return new Promise((resolve, reject) => {
    const server = net.createServer();
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address();
      server.close(() => resolve(port));
    });
    server.on('error', reject);
  });
}

function psql(port, sql) {
  const r = spawnSync(pgTool('psql'), ['-h', '127.0.0.1', '-p', String(port), '-U', 'postgres', '-XAtq', '-c', sql, 'postgres'], { encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`psql ${sql}: ${r.stderr}`);
  return r.stdout.trim();
}

/** Segment number of a WAL file name (16 MiB segments: 256 per log id). */
const segno = (name) => parseInt(name.slice(8, 16), 16) * 256 + parseInt(name.slice(16, 24), 16);

/** s3rver (the tests' emulator process) on a free port. */
async function startS3() {
  const port = await freePort();
  const dir = fs.mkdtempSync(path.join(WORK, 's3rver-'));
  const child = spawn(process.execPath, [path.join(REPO, 'test', 'support', 's3rver-process.js'), String(port), dir, 'wal-bench'], {
    env: { PATH: process.env.PATH, HOME: process.env.HOME, NODE_OPTIONS: '--openssl-legacy-provider' }, stdio: 'ignore',
  });
  const endpoint = `http://127.0.0.1:${port}`;
  for (let i = 0; i < 150; i++) {
    try {
      if ((await fetch(`${endpoint}/`)).ok) break;
    } catch {
      /* not yet */
    }
    await sleep(100);
  }
  return {
    endpoint,
    stop: () => {
      child.kill('SIGKILL');
      fs.rmSync(dir, { recursive: true, force: true });
    },
  };
}

/** The archive_command of a mode, and its setup (store, config files). */
async function prepareMode(mode, dir, s3) {
  const store = path.join(dir, 'store');
  fs.mkdirSync(store, { recursive: true });
  give(store);
  if (mode.startsWith('dr-')) {
    const kind = mode.endsWith('s3') ? 's3' : 'local';
    const config = kind === 's3'
      ? { archive: mode, storage: { kind: 's3', settings: { bucket: 'wal-bench', endpoint: s3.endpoint, forcePathStyle: true, region: 'us-east-1', accessKeyIdSecret: 'env:DRS_WALBENCH_KEY', secretAccessKeySecret: 'env:DRS_WALBENCH_SECRET' } }, zstdLevel: 3 }
      : { archive: mode, storage: { kind: 'local', settings: { path: store } }, zstdLevel: 3 };
    const file = path.join(dir, 'wal.json');
    fs.writeFileSync(file, JSON.stringify(config), { mode: 0o644 });
    const env = kind === 's3' ? 'DRS_WALBENCH_KEY=S3RVER DRS_WALBENCH_SECRET=S3RVER ' : '';
    const async = mode.includes('async') ? ' --async --parallel 4' : '';
    return { command: `${env}"${DR}" wal-push "%p" --config "${file}"${async}`, setup: () => undefined };
  }
  // pgBackRest: a posix repository, zstd 3 like the service, async with process-max 4 like the pusher
  const conf = path.join(dir, 'pgbackrest.conf');
  for (const d of ['pgbr-spool', 'pgbr-log', 'pgbr-lock']) {
    fs.mkdirSync(path.join(dir, d), { recursive: true });
    give(path.join(dir, d));
  }
  return {
    command: `pgbackrest --config="${conf}" --stanza=bench archive-push "%p"`,
    setup: (port, dataDir, socketDir) => {
      fs.writeFileSync(conf, [
        '[global]', `repo1-path=${store}`, 'compress-type=zst', 'compress-level=3', `spool-path=${path.join(dir, 'pgbr-spool')}`,
        `log-path=${path.join(dir, 'pgbr-log')}`, `lock-path=${path.join(dir, 'pgbr-lock')}`, 'log-level-console=warn', 'log-level-file=info',
        `archive-async=${mode.includes('async') ? 'y' : 'n'}`, 'process-max=4', 'start-fast=y',
        '[bench]', `pg1-path=${dataDir}`, `pg1-port=${port}`, `pg1-socket-path=${socketDir}`, '',
      ].join('\n'), { mode: 0o644 });
      asPg('pgbackrest', [`--config=${conf}`, '--stanza=bench', 'stanza-create']);
    },
  };
}

/** One mode: fresh cluster, load phase, backlog phase. */
async function runMode(mode, s3) {
  const dir = path.join(WORK, mode);
  fs.rmSync(dir, { recursive: true, force: true });
  fs.mkdirSync(dir, { recursive: true, mode: 0o755 });
  give(dir);
  const dataDir = path.join(dir, 'pg');
  const runDir = path.join(dir, 'run');
  fs.mkdirSync(runDir);
  give(runDir);
  const port = await freePort();
  const { command, setup } = await prepareMode(mode, dir, s3);
  asPg(pgTool('initdb'), ['-D', dataDir, '-A', 'trust', '-U', 'postgres', '--no-sync', '-E', 'UTF8', '--locale=C']);
  // archive_command reads the "hold" flag file: while it exists archiving fails (the backlog phase builds up)
  const hold = path.join(dir, 'hold');
  fs.appendFileSync(path.join(dataDir, 'postgresql.conf'), [
    '', `port = ${port}`, `listen_addresses = '127.0.0.1'`, `unix_socket_directories = '${runDir}'`, 'fsync = off',
    'synchronous_commit = off', 'wal_level = replica', 'archive_mode = on', 'max_wal_size = 4GB', 'checkpoint_timeout = 30min',
    `archive_command = 'test ! -e ${hold} && ${command.replace(/'/g, "''")}'`, '',
  ].join('\n'));
  asPg(pgTool('pg_ctl'), ['start', '-D', dataDir, '-l', path.join(runDir, 'server.log'), '-w', '-t', '60']);
  const stat = () => {
    const [archived, failed, last] = psql(port, 'SELECT archived_count, failed_count, coalesce(last_archived_wal, \'\') FROM pg_stat_archiver').split('|');
    return { archived: Number(archived), failed: Number(failed), last };
  };
  const ready = () => fs.readdirSync(path.join(dataDir, 'pg_wal', 'archive_status')).filter((f) => f.endsWith('.ready')).length;
  const currentSegno = () => segno(psql(port, 'SELECT pg_walfile_name(pg_current_wal_lsn())'));
  const drain = async (timeoutMs) => {
    const target = psql(port, 'SELECT pg_walfile_name(pg_switch_wal())');
    const started = Date.now();
    while (Date.now() - started < timeoutMs) {
      const s = stat();
      if (s.last && s.last.slice(0, 24) >= target && ready() === 0) return (Date.now() - started) / 1000;
      await sleep(50);
    }
    throw new Error(`${mode}: not drained within ${timeoutMs} ms (${JSON.stringify(stat())}, ${ready()} ready)`);
  };
  try {
    setup(port, dataDir, runDir);
    psql(port, 'CREATE TABLE walload (id bigint, pad text)');
    // calibration: WAL bytes of one transaction of the script
    const script = path.join(dir, 'load.sql');
    fs.writeFileSync(script, "INSERT INTO walload SELECT g, md5(random()::text) || md5(random()::text) || md5(random()::text) FROM generate_series(1, 4000) g;\n");
    const lsn0 = psql(port, 'SELECT pg_current_wal_lsn()');
    for (let i = 0; i < 5; i++) psql(port, fs.readFileSync(script, 'utf8'));
    const txBytes = Number(psql(port, `SELECT pg_current_wal_lsn() - '${lsn0}'::pg_lsn`)) / 5;
    const rate = Math.max(1, Math.round((TARGET * SEGMENT) / txBytes));
    await drain(180_000);
    // 1. load
    const before = stat();
    const seg0 = currentSegno();
    const samples = [];
    const bench = spawn(pgTool('pgbench'), ['-h', '127.0.0.1', '-p', String(port), '-U', 'postgres', '-n', '-f', script, '-c', String(CLIENTS), '-j', String(CLIENTS), '-R', String(rate), '-T', String(LOAD_SECONDS), 'postgres'], { stdio: 'ignore' });
    const benchEnded = new Promise((r) => bench.once('exit', r));
    const started = Date.now();
    let ended = false;
    benchEnded.then(() => (ended = true));
    while (!ended) {
      samples.push(ready());
      await sleep(250);
    }
    const loadSeconds = (Date.now() - started) / 1000;
    const after = stat();
    const generated = currentSegno() - seg0;
    const drainSeconds = await drain(600_000);
    const sorted = [...samples].sort((a, b) => a - b);
    const load = {
      seconds: +loadSeconds.toFixed(1),
      txWalKiB: Math.round(txBytes / 1024),
      generatedPerSecond: +(generated / loadSeconds).toFixed(2),
      archivedPerSecond: +((after.archived - before.archived) / loadSeconds).toFixed(2),
      lagMax: sorted[sorted.length - 1] ?? 0,
      lagP95: sorted[Math.floor(sorted.length * 0.95)] ?? 0,
      lagMean: +(samples.reduce((a, b) => a + b, 0) / Math.max(1, samples.length)).toFixed(2),
      drainSeconds: +drainSeconds.toFixed(2),
    };
    const failedUnderLoad = stat().failed - before.failed;
    // 2. backlog: hold archiving, write BACKLOG segments, release (the held calls count as failed: not reported)
    fs.writeFileSync(hold, '');
    const held = stat().archived;
    for (let i = 0; i < BACKLOG; i++) {
      psql(port, `INSERT INTO walload SELECT g, md5(random()::text) || md5(random()::text) || md5(random()::text) FROM generate_series(1, 4000) g`);
      psql(port, 'SELECT pg_switch_wal()');
    }
    fs.rmSync(hold);
    const releaseStarted = Date.now();
    await drain(900_000);
    const backlogSeconds = (Date.now() - releaseStarted) / 1000;
    const backlogArchived = stat().archived - held;
    const backlog = {
      segments: backlogArchived,
      seconds: +backlogSeconds.toFixed(2),
      perSecond: +(backlogArchived / backlogSeconds).toFixed(2),
      MiBps: +((backlogArchived * 16) / backlogSeconds).toFixed(1),
    };
    return { mode, load, backlog, failedCalls: failedUnderLoad };
  } finally {
    try {
      asPg(pgTool('pg_ctl'), ['stop', '-D', dataDir, '-m', 'immediate', '-w']);
    } catch {
      /* already stopped */
    }
    const pidFile = path.join(dataDir, 'pg_wal', 'dr-spool', mode, 'push', 'pusher.pid');
    if (fs.existsSync(pidFile)) {
      try {
        process.kill(Number(fs.readFileSync(pidFile, 'utf8')), 'SIGTERM');
      } catch {
        /* ended */
      }
    }
    fs.rmSync(dir, { recursive: true, force: true });
  }
}

async function main() {
  if (!fs.existsSync(path.join(REPO, 'dist', 'wal', 'wal-cli.js'))) throw new Error('run `npm run build` first');
  const hasPgbr = spawnSync('sh', ['-c', 'command -v pgbackrest'], { stdio: 'ignore' }).status === 0;
  const all = ['pgbackrest-sync', 'pgbackrest-async', 'dr-sync-local', 'dr-async-local', 'dr-sync-s3', 'dr-async-s3'];
  const modes = (process.env.BENCH_WAL_MODES ? process.env.BENCH_WAL_MODES.split(',') : all).filter((m) => hasPgbr || !m.startsWith('pgbackrest'));
  if (!hasPgbr) log('pgbackrest not installed (apt-get install pgbackrest): its rows are skipped');
  fs.mkdirSync(WORK, { recursive: true });
  fs.chmodSync(path.join(REPO, '.bench'), 0o755);
  fs.chmodSync(WORK, 0o755);
  const s3 = modes.some((m) => m.endsWith('s3')) ? await startS3() : null;
  const results = [];
  try {
    for (const mode of modes) {
      log(`${mode}: load ${LOAD_SECONDS} s at ${TARGET} segments/s, then a backlog of ${BACKLOG} segments`);
      const r = await runMode(mode, s3);
      log(JSON.stringify(r));
      results.push(r);
    }
  } finally {
    s3?.stop();
  }
  const ref = (name) => results.find((r) => r.mode === name);
  const lines = [
    `WAL archiving, 16 MiB segments; load: pgbench -R at ${TARGET} segments/s (${TARGET * 16} MiB/s) for ${LOAD_SECONDS} s, ${CLIENTS} clients; backlog: ${BACKLOG} segments released at once`,
    '',
    '| mode | generated seg/s | archived seg/s (load) | lag max / p95 / mean (segments) | drain s | backlog seg/s (MiB/s) | vs pgBackRest sync | vs pgBackRest async | failed calls (load) |',
    '| --- | --- | --- | --- | --- | --- | --- | --- | --- |',
  ];
  for (const r of results) {
    const ratio = (other) => (other ? `${(r.backlog.perSecond / other.backlog.perSecond).toFixed(2)}x` : '–');
    lines.push(`| ${r.mode} | ${r.load.generatedPerSecond} | ${r.load.archivedPerSecond} | ${r.load.lagMax} / ${r.load.lagP95} / ${r.load.lagMean} | ${r.load.drainSeconds} | ${r.backlog.perSecond} (${r.backlog.MiBps}) | ${ratio(ref('pgbackrest-sync'))} | ${ratio(ref('pgbackrest-async'))} | ${r.failedCalls} |`);
  }
  lines.push('', `targets: backlog ≥ 4 segments/s (64 MiB/s) and lag max ≤ 2 under the load, for dr-async-*:`);
  for (const r of results.filter((x) => x.mode.startsWith('dr-async'))) {
    lines.push(`  ${r.mode}: ${r.backlog.perSecond >= 4 ? 'PASS' : 'MISS'} throughput ${r.backlog.perSecond} seg/s, ${r.load.lagMax <= 2 ? 'PASS' : 'MISS'} lag max ${r.load.lagMax}`);
  }
  process.stdout.write(`${lines.join('\n')}\n`);
  fs.writeFileSync(path.join(REPO, '.bench', 'wal-results.json'), JSON.stringify({ at: new Date().toISOString(), loadSeconds: LOAD_SECONDS, target: TARGET, backlog: BACKLOG, results }, null, 2));
}

main().catch((error) => {
  process.stderr.write(`${error.stack || error}\n`);
  process.exit(1);
});
