#!/usr/bin/env node
'use strict';
/**
 * Large-database benchmark (issue 16 item 2): backup and restore times of a >= 1 GB pgbench database through the
 * service (parallel dump `source.jobs`, and the plain streamed dump) against `pg_dump -Fd -j2` / `pg_restore -j2`
 * and pgBackRest full backup / restore, all in one run on one PostgreSQL cluster that this script starts itself
 * (initdb on first use, reused afterwards). See bench/README.md ("Large databases") for what is compared and how.
 *
 * Output: a table on stdout, progress on stderr, every run in <BENCH_DIR>/results.json. Exit code 1 when a job
 * failed or a restored database differs from the source.
 */
const { spawn } = require('node:child_process');
const fs = require('node:fs');
const fsp = require('node:fs/promises');
const path = require('node:path');

const REPO = path.resolve(__dirname, '..');
const intEnv = (name, fallback) => {
  const raw = process.env[name];
  if (raw === undefined || raw === '') return fallback;
  if (!/^[1-9][0-9]*$/.test(raw)) throw new Error(`${name} must be a positive integer, got "${raw}"`);
  return Number(raw);
};
const DIR = path.resolve(process.env.BENCH_DIR || path.join(REPO, '.bench', 'scale'));
const C = {
  scale: intEnv('BENCH_SCALE', 70),
  repeat: intEnv('BENCH_REPEAT', 2),
  jobs: intEnv('BENCH_JOBS', 2),
  pgPort: intEnv('BENCH_SCALE_PG_PORT', 55470),
  port: intEnv('BENCH_PORT', 18892),
  pgData: path.join(DIR, 'pgdata'),
  pgRun: path.join(DIR, 'run'),
  pgbr: path.join(DIR, 'pgbackrest'),
  std: path.join(DIR, 'std'),
  serviceData: path.join(DIR, 'service-data'),
  results: path.join(DIR, 'results.json'),
};
const PGBR_CONF = path.join(C.pgbr, 'pgbackrest.conf');
const SRC = 'scale_src';
const API_KEY = 'dr-bench-admin-key-0123456789abcdefghijk';
const API = '/api/v1/disaster-recovery';
const AS_PG = process.getuid?.() === 0; // PostgreSQL and pgBackRest refuse root: run them as the postgres OS user
const pgUrl = (db) => `postgresql://postgres@127.0.0.1:${C.pgPort}/${db}`;
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
const t0 = Date.now();
const log = (m) => process.stderr.write(`[${((Date.now() - t0) / 1000).toFixed(1).padStart(6)} s] ${m}\n`);
const sq = (s) => `'${String(s).replace(/'/g, `'\\''`)}'`;

/** Runs a command; rejects with its stderr unless it exits 0. @returns stdout */
function run(command, args, { asPg = false, env } = {}) {
  const [cmd, argv] = asPg && AS_PG ? ['runuser', ['-u', 'postgres', '--', command, ...args]] : [command, args];
  return new Promise((resolve, reject) => {
    const child = spawn(cmd, argv, { cwd: '/tmp', env: env ?? process.env, stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    let err = '';
    child.stdout.setEncoding('utf8').on('data', (c) => (out += c));
    child.stderr.setEncoding('utf8').on('data', (c) => (err = (err + c).slice(-4000)));
    child.once('error', reject);
    child.once('close', (code) => (code === 0 ? resolve(out) : reject(new Error(`${command} ${args.join(' ')} failed (${code}): ${err.trim()}`))));
  });
}

/** Wall time of a bash script (pipefail), in ms. */
async function timed(script, asPg = false) {
  const start = process.hrtime.bigint();
  await run('bash', ['-c', `set -eo pipefail\n${script}`], { asPg });
  return Number(process.hrtime.bigint() - start) / 1e6;
}

const psql = async (db, sql) => (await run('psql', ['-X', '-v', 'ON_ERROR_STOP=1', '-tA', '-d', pgUrl(db), '-c', sql])).trim();
const dropDb = (db) => psql('postgres', `DROP DATABASE IF EXISTS "${db}" WITH (FORCE)`);
const chownPg = (p) => (AS_PG ? run('chown', ['-R', 'postgres:', p]) : Promise.resolve());

/** The cluster (initdb on first use, archiving WAL through pgBackRest), started; the pgBackRest stanza created. */
async function prepareCluster() {
  await fsp.mkdir(C.pgRun, { recursive: true });
  for (const d of ['repo', 'log', 'lock', 'spool']) await fsp.mkdir(path.join(C.pgbr, d), { recursive: true });
  await fsp.writeFile(
    PGBR_CONF,
    [
      '[global]',
      `repo1-path=${path.join(C.pgbr, 'repo')}`,
      'repo1-retention-full=1',
      `process-max=${C.jobs}`,
      'compress-type=zst',
      'compress-level=3',
      'start-fast=y',
      'log-level-console=warn',
      'log-level-file=off',
      `lock-path=${path.join(C.pgbr, 'lock')}`,
      `spool-path=${path.join(C.pgbr, 'spool')}`,
      '[bench]',
      `pg1-path=${C.pgData}`,
      `pg1-port=${C.pgPort}`,
      `pg1-socket-path=${C.pgRun}`,
      '',
    ].join('\n'),
  );
  await chownPg(C.pgbr);
  await chownPg(C.pgRun);
  if (!fs.existsSync(path.join(C.pgData, 'PG_VERSION'))) {
    log(`initdb ${C.pgData}`);
    await fsp.mkdir(C.pgData, { recursive: true, mode: 0o700 });
    await chownPg(C.pgData);
    await run('initdb', ['-D', C.pgData, '-A', 'trust', '-U', 'postgres'], { asPg: true });
  }
  // (re)written on every run, so a cluster made by hand or by an earlier version gets the same settings
  const auto = path.join(C.pgData, 'postgresql.auto.conf');
  await fsp.writeFile(auto, [
    `port = ${C.pgPort}`,
    `listen_addresses = '127.0.0.1'`,
    `unix_socket_directories = '${C.pgRun}'`,
    'wal_level = replica',
    'archive_mode = on',
    `archive_command = 'pgbackrest --config=${PGBR_CONF} --stanza=bench archive-push %p'`,
    'max_wal_size = 4GB',
    '',
  ].join('\n'));
  await chownPg(auto);
  const running = await run('pg_ctl', ['-D', C.pgData, 'status'], { asPg: true }).then(() => true, () => false);
  if (running) await run('pg_ctl', ['-D', C.pgData, '-w', 'restart', '-m', 'fast', '-l', path.join(C.pgRun, 'postgres.log')], { asPg: true });
  else await run('pg_ctl', ['-D', C.pgData, '-w', 'start', '-l', path.join(C.pgRun, 'postgres.log')], { asPg: true });
  await run('pgbackrest', [`--config=${PGBR_CONF}`, '--stanza=bench', 'stanza-create'], { asPg: true });
  await run('pgbackrest', [`--config=${PGBR_CONF}`, '--stanza=bench', 'check'], { asPg: true });
  log(`cluster on port ${C.pgPort} ready, pgBackRest stanza "bench" checked`);
}

/** `pgbench -i -s SCALE` into scale_src, unless it already holds that scale. @returns database size in bytes */
async function prepareSource() {
  const exists = (await psql('postgres', `SELECT 1 FROM pg_database WHERE datname = '${SRC}'`)) === '1';
  const rows = exists ? await psql(SRC, `SELECT CASE WHEN to_regclass('pgbench_accounts') IS NULL THEN 0 ELSE (SELECT count(*) FROM pgbench_accounts) END`) : '0';
  if (rows !== String(C.scale * 100000)) {
    log(`pgbench -i -s ${C.scale} (once; reused while the row count matches)`);
    if (!exists) await psql('postgres', `CREATE DATABASE ${SRC}`);
    await run('pgbench', ['-i', '-q', '-s', String(C.scale), pgUrl(SRC)]);
  }
  await psql(SRC, 'CHECKPOINT');
  return Number(await psql(SRC, `SELECT pg_database_size('${SRC}')`));
}

const checksum = (db) => psql(db, `SELECT count(*) || ':' || sum(abalance) || ':' || md5(string_agg(md5(t::text), '' ORDER BY aid)) FROM pgbench_accounts t`);

async function startService() {
  await dropDb('scale_meta');
  await psql('postgres', 'CREATE DATABASE scale_meta');
  await fsp.rm(C.serviceData, { recursive: true, force: true });
  const env = { ...process.env, DATABASE_URL: pgUrl('scale_meta'), DR_DATA_DIR: C.serviceData, DR_ADMIN_API_KEY: API_KEY, PORT: String(C.port), HOST: '127.0.0.1', DR_SCHEDULER_ENABLED: 'false', DR_LOG_LEVEL: 'warn' };
  delete env.DISASTER_RECOVERY_PORT;
  const child = spawn(process.execPath, ['--no-incremental-marking', path.join(REPO, 'dist', 'main.js')], { cwd: REPO, env, stdio: ['ignore', 'ignore', fs.openSync(path.join(DIR, 'service.log'), 'w')] });
  const service = { child, base: `http://127.0.0.1:${C.port}`, exited: false };
  child.once('exit', () => (service.exited = true));
  for (const deadline = Date.now() + 120_000; ; await sleep(250)) {
    if (service.exited) throw new Error(`the service exited during start-up; see ${path.join(DIR, 'service.log')}`);
    if ((await fetch(`${service.base}/actuator/health/readiness`).then((r) => r.status, () => 0)) === 200) break;
    if (Date.now() > deadline) throw new Error('the service was not ready within 120 s');
  }
  log(`service ready (pid ${child.pid})`);
  return service;
}

async function api(service, method, route, body) {
  const res = await fetch(`${service.base}${API}${route}`, { method, headers: { 'X-API-Key': API_KEY, 'Content-Type': 'application/json' }, body: body && JSON.stringify(body) });
  const text = await res.text();
  if (!res.ok) throw new Error(`${method} ${route}: ${res.status} ${text.slice(0, 500)}`);
  return JSON.parse(text);
}

/** A service job: POST, then poll every 100 ms. @returns {ms: job time as the service recorded it, record} */
async function job(service, collection, body) {
  const created = await api(service, 'POST', `/${collection}`, body);
  for (;;) {
    const record = await api(service, 'GET', `/${collection}/${created.id}`);
    if (record.status === 'FAILED') throw new Error(`${collection} ${record.id} FAILED: ${record.error}`);
    if (record.status === 'COMPLETED') return { ms: new Date(record.finishedAt).getTime() - new Date(record.createdAt).getTime(), record };
    await sleep(100);
  }
}

async function main() {
  await fsp.mkdir(C.std, { recursive: true });
  await prepareCluster();
  const dbBytes = await prepareSource();
  log(`source: ${SRC}, pgbench scale ${C.scale}, ${(dbBytes / 1e6).toFixed(0)} MB`);
  const expected = await checksum(SRC);
  const service = await startService();
  const runs = {};
  const sizes = {};
  const add = (name, ms) => {
    (runs[name] ??= []).push(Math.round(ms));
    log(`  ${name}: ${Math.round(ms)} ms`);
  };
  const mismatches = [];
  const check = async (name, db) => {
    const got = await checksum(db);
    if (got !== expected) mismatches.push(`${name}: pgbench_accounts ${got}, source ${expected}`);
  };
  const dumpDir = path.join(C.std, 'dump');
  const pgbrRestore = path.join(DIR, 'pgbackrest-restore');
  let svcParallel;
  try {
    for (let r = 0; r < C.repeat; r++) {
      log(`repeat ${r + 1} of ${C.repeat}`);
      const backups = [
        ['backup: service, source.jobs', async () => {
          const { ms, record } = await job(service, 'backups', { engine: 'postgres', source: { url: pgUrl(SRC), jobs: C.jobs } });
          svcParallel = record;
          sizes['service artifact, stored'] = record.storedBytes;
          sizes['service artifact, raw'] = record.sizeBytes;
          add('backup: service, source.jobs', ms);
        }],
        ['backup: service, plain', async () => add('backup: service, plain', (await job(service, 'backups', { engine: 'postgres', source: { url: pgUrl(SRC) } })).ms)],
        ['backup: pg_dump -Fd -j', async () => {
          await fsp.rm(dumpDir, { recursive: true, force: true });
          add('backup: pg_dump -Fd -j', await timed(`pg_dump -Fd -j ${C.jobs} -f ${sq(dumpDir)} -d ${sq(pgUrl(SRC))}`));
          sizes['pg_dump -Fd (gzip)'] = Number((await run('du', ['-sb', dumpDir])).split('\t')[0]);
        }],
        ['backup: pgBackRest full', async () => {
          add('backup: pgBackRest full', await timed(`pgbackrest --config=${sq(PGBR_CONF)} --stanza=bench --type=full backup`, true));
          sizes['pgBackRest repository'] = Number((await run('du', ['-sb', path.join(C.pgbr, 'repo', 'backup')])).split('\t')[0]);
        }],
      ];
      // the order rotates on every repeat, so that none always runs first (page cache, CPU drift)
      for (let i = 0; i < backups.length; i++) await backups[(i + r) % backups.length][1]();

      const restores = [
        async () => {
          await dropDb('scale_restore_svc');
          add('restore: service', (await job(service, 'recovery', { backupId: svcParallel.id, type: 'FULL', target: { url: pgUrl('scale_restore_svc'), create: true } })).ms);
          if (r === 0) await check('service restore', 'scale_restore_svc');
          await dropDb('scale_restore_svc');
        },
        async () => {
          await dropDb('scale_restore_std');
          add('restore: pg_restore -j', await timed(`createdb -h 127.0.0.1 -p ${C.pgPort} -U postgres scale_restore_std && pg_restore -j ${C.jobs} --exit-on-error -d ${sq(pgUrl('scale_restore_std'))} ${sq(dumpDir)}`));
          if (r === 0) await check('pg_restore', 'scale_restore_std');
          await dropDb('scale_restore_std');
        },
        async () => {
          await fsp.rm(pgbrRestore, { recursive: true, force: true });
          await fsp.mkdir(pgbrRestore, { mode: 0o700 });
          await chownPg(pgbrRestore);
          add('restore: pgBackRest', await timed(`pgbackrest --config=${sq(PGBR_CONF)} --stanza=bench --pg1-path=${sq(pgbrRestore)} restore`, true));
          await fsp.rm(pgbrRestore, { recursive: true, force: true });
        },
      ];
      for (let i = 0; i < restores.length; i++) await restores[(i + r) % restores.length]();
    }
  } finally {
    service.child.kill('SIGTERM');
  }
  const best = (name) => (runs[name]?.length ? Math.min(...runs[name]) : null);
  const ratio = (a, b) => (best(a) && best(b) ? Math.round((best(a) / best(b)) * 100) / 100 : null);
  const rows = [
    ['backup: service, source.jobs', 'backup: pg_dump -Fd -j', 'backup: pgBackRest full'],
    ['backup: service, plain', 'backup: pg_dump -Fd -j', 'backup: pgBackRest full'],
    ['restore: service', 'restore: pg_restore -j', 'restore: pgBackRest'],
  ].map(([svc, dump, pgbr]) => ({ operation: svc, bestMs: best(svc), runs: runs[svc], vsPgDump: ratio(svc, dump), vsPgBackRest: ratio(svc, pgbr) }));
  for (const name of ['backup: pg_dump -Fd -j', 'backup: pgBackRest full', 'restore: pg_restore -j', 'restore: pgBackRest']) rows.push({ operation: name, bestMs: best(name), runs: runs[name] });
  const result = { at: new Date().toISOString(), scale: C.scale, databaseBytes: dbBytes, jobs: C.jobs, repeat: C.repeat, rows, sizes, mismatches };
  await fsp.writeFile(C.results, JSON.stringify(result, null, 2));
  console.log(`pgbench scale ${C.scale} (${(dbBytes / 1e6).toFixed(0)} MB on disk), ${C.jobs} jobs, best of ${C.repeat}`);
  console.log('| operation | best ms | runs ms | ÷ pg_dump/pg_restore | ÷ pgBackRest |\n|---|---|---|---|---|');
  for (const row of rows) console.log(`| ${row.operation} | ${row.bestMs ?? '-'} | ${(row.runs ?? []).join(', ')} | ${row.vsPgDump ?? ''} | ${row.vsPgBackRest ?? ''} |`);
  console.log(`sizes (bytes): ${JSON.stringify(sizes)}`);
  if (mismatches.length) {
    console.log(`MISMATCH: ${mismatches.join('; ')}`);
    process.exitCode = 1;
  }
}

main().catch((error) => {
  console.error(error.stack || error.message);
  process.exitCode = 1;
});
