#!/usr/bin/env node
'use strict';
/**
 * Benchmark of the disaster-recovery service against the standard tools it wraps.
 *
 * Measures backup and restore of a pgbench database, of a ~1 GB directory tree and of a tree of ~35,000 small files
 * (copies of /usr/share/doc, /usr/share/man and Python's library), through the service's HTTP API and with
 * pg_dump / pg_restore / tar / zstd (and restic, for the small files) run directly, alternately, BENCH_REPEAT times
 * each; reports the best
 * (minimum) wall time of each, the service's peak RSS, sizes, and whether the restored data equals the original.
 *
 * Run after `npm run build`:  node bench/run.js   (knobs: see bench/README.md)
 * Progress goes to stderr; the result table to stdout and <benchdir>/results.json.
 */
const { spawn } = require('node:child_process');
const fs = require('node:fs');
const fsp = require('node:fs/promises');
const net = require('node:net');
const os = require('node:os');
const path = require('node:path');
const crypto = require('node:crypto');

const REPO = path.resolve(__dirname, '..');

/** Reads a positive integer from the environment, or `fallback`. */
function intEnv(name, fallback) {
  const raw = process.env[name];
  if (raw === undefined || raw === '') return fallback;
  const value = Number(raw);
  if (!Number.isInteger(value) || value < 1) throw new Error(`${name} must be a positive integer, got "${raw}"`);
  return value;
}

const BENCH_DIR = path.resolve(process.env.BENCH_DIR || path.join(REPO, '.bench'));
const CONFIG = {
  benchDir: BENCH_DIR,
  pgServer: (process.env.BENCH_PG_SERVER || 'postgresql://postgres@127.0.0.1:5432').replace(/\/+$/, ''),
  pgScale: intEnv('BENCH_PG_SCALE', 30),
  treeMb: intEnv('BENCH_TREE_MB', 1024),
  repeat: intEnv('BENCH_REPEAT', 3),
  port: intEnv('BENCH_PORT', 18891),
  keepServiceData: ['1', 'true', 'yes'].includes(String(process.env.BENCH_KEEP_SERVICE_DATA || '').toLowerCase()),
  treeDir: path.join(BENCH_DIR, 'tree'),
  smallTreeDir: process.env.BENCH_SMALL_TREE ? path.resolve(process.env.BENCH_SMALL_TREE) : path.join(BENCH_DIR, 'small-tree'),
  resticRepo: path.join(BENCH_DIR, 'restic-repo'),
  cases: new Set((process.env.BENCH_CASES || 'postgres,tree,age,small').split(',').map((c) => c.trim()).filter(Boolean)),
  treeMarker: path.join(BENCH_DIR, 'tree.json'),
  stdDir: path.join(BENCH_DIR, 'std'),
  stdRestoreDir: path.join(BENCH_DIR, 'std-restores'),
  serviceDataDir: path.join(BENCH_DIR, 'service-data'),
  restoreRoot: path.join(BENCH_DIR, 'restores'),
  serviceLog: path.join(BENCH_DIR, 'service.log'),
  resultsFile: path.join(BENCH_DIR, 'results.json'),
  ageKeyFile: path.join(BENCH_DIR, 'age.key'),
  /** Encrypted runs (service with an age recipient vs tar | zstd | age): on when the age command is installed. */
  age: false,
};
/** Database names; `BENCH_DB_PREFIX` keeps two benches on one server apart. */
const DB_PREFIX = process.env.BENCH_DB_PREFIX || 'bench';
if (!/^[a-z_][a-z0-9_]{0,30}$/.test(DB_PREFIX)) throw new Error(`BENCH_DB_PREFIX must be a lower-case SQL identifier, got "${DB_PREFIX}"`);
const DB = { src: `${DB_PREFIX}_src`, meta: `${DB_PREFIX}_meta`, restoreSvc: `${DB_PREFIX}_restore_svc`, restoreStd: `${DB_PREFIX}_restore_std` };
/** Fixed admin key given to the service through DR_ADMIN_API_KEY (40 characters). */
const API_KEY = 'dr-bench-admin-key-0123456789abcdefghijk';
const API = '/api/v1/disaster-recovery';
/** Ratio targets; encryption: issue 15 (encrypted backup and restore ≤ 1.15 × the same unencrypted); small files: issue 15 item 2. */
const TARGETS = { backupRatio: 1.1, restoreRatio: 1.1, smallBackupRatio: 1.5, peakRssMb: 250, encryptionRatio: 1.15 };
/** Bump when the tree generator changes, so an old tree is not reused. */
const TREE_FORMAT = 1;
const MiB = 1 << 20;

// ---------------------------------------------------------------------------------------------------------------
// Small helpers

/** Progress line on stderr with the elapsed time. */
const t0 = Date.now();
function log(message) {
  process.stderr.write(`[bench +${((Date.now() - t0) / 1000).toFixed(1)}s] ${message}\n`);
}

/** Milliseconds since `start` (a process.hrtime.bigint() value). */
function msSince(start) {
  return Number(process.hrtime.bigint() - start) / 1e6;
}

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));
const mb = (bytes) => (bytes == null ? null : Math.round((bytes / MiB) * 10) / 10);
const pgUrl = (database) => `${CONFIG.pgServer}/${database}`;

/** Single-quotes a string for bash. */
function sq(s) {
  return `'${String(s).replace(/'/g, `'\\''`)}'`;
}

/**
 * Runs a command to completion, capturing stdout and stderr.
 * @returns {{code:number, stdout:string, stderr:string}}; rejects on a non-zero exit unless `allowFail`.
 */
function run(command, args, { env, allowFail = false, cwd } = {}) {
  return new Promise((resolve, reject) => {
    const child = spawn(command, args, { env: env ?? process.env, cwd, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.setEncoding('utf8').on('data', (c) => (stdout += c));
    child.stderr.setEncoding('utf8').on('data', (c) => (stderr = (stderr + c).slice(-8192)));
    child.once('error', reject);
    child.once('close', (code, signal) => {
      if (code === 0 || allowFail) resolve({ code: code ?? -1, stdout, stderr });
      else reject(new Error(`${command} ${args.join(' ')} failed (${code ?? signal}): ${stderr.trim().slice(-2000)}`));
    });
  });
}

let haveGnuTime = fs.existsSync('/usr/bin/time');

/**
 * Times a standard-tool command line (bash, pipefail) and, with /usr/bin/time, the peak RSS of its largest process.
 * @returns {{ms:number, maxRssMb:number|null}}
 */
async function timeStandard(script) {
  const rssFile = path.join(CONFIG.stdDir, '.time-rss');
  const args = ['-c', `set -eo pipefail\n${script}`];
  const start = process.hrtime.bigint();
  const result = haveGnuTime
    ? await run('/usr/bin/time', ['-f', '%M', '-o', rssFile, 'bash', ...args], { allowFail: true })
    : await run('bash', args, { allowFail: true });
  const ms = msSince(start);
  if (result.code !== 0) throw new Error(`standard command failed (${result.code}): ${script}\n${result.stderr.trim().slice(-2000)}`);
  let maxRssMb = null;
  if (haveGnuTime) {
    const kb = Number((await fsp.readFile(rssFile, 'utf8')).trim().split('\n').pop());
    if (Number.isFinite(kb)) maxRssMb = Math.round((kb / 1024) * 10) / 10;
  }
  return { ms, maxRssMb };
}

/** Runs SQL on `database` with psql and returns the unaligned, tuples-only output. */
async function psql(database, sql) {
  return (await run('psql', ['-X', '-v', 'ON_ERROR_STOP=1', '-tA', '-d', pgUrl(database), '-c', sql])).stdout.trim();
}

/** Drops `database` if it exists, disconnecting its sessions. */
async function dropDatabase(database) {
  await psql('postgres', `DROP DATABASE IF EXISTS "${database}" WITH (FORCE)`);
}

/** Creates `database` unless it exists. */
async function ensureDatabase(database) {
  const exists = await psql('postgres', `SELECT 1 FROM pg_database WHERE datname = '${database}'`);
  if (exists !== '1') await psql('postgres', `CREATE DATABASE "${database}"`);
}

/** Order-independent checksum of pgbench_accounts (and its row count) in `database`. */
async function accountsChecksum(database) {
  const out = await psql(
    database,
    `SELECT count(*) || ':' || md5(string_agg(md5(t::text), '' ORDER BY aid)) FROM pgbench_accounts t`,
  );
  return out;
}

/** Total size in bytes of a file, or null when it does not exist. */
async function fileSize(file) {
  const s = await fsp.stat(file).catch(() => null);
  return s ? s.size : null;
}

// ---------------------------------------------------------------------------------------------------------------
// Data preparation

/** Checks that the build and the external tools are there. */
async function checkPrerequisites() {
  if (!fs.existsSync(path.join(REPO, 'dist', 'main.js'))) {
    throw new Error('dist/main.js is missing; run `npm run build` first');
  }
  for (const tool of ['pg_dump', 'pg_restore', 'pgbench', 'psql', 'createdb', 'tar', 'zstd', 'diff']) {
    const { code } = await run('bash', ['-c', `command -v ${tool}`], { allowFail: true });
    if (code !== 0) throw new Error(`${tool} is not on PATH`);
  }
  if (haveGnuTime) {
    const { code } = await run('/usr/bin/time', ['-f', '%M', 'true'], { allowFail: true });
    haveGnuTime = code === 0;
  }
  await psql('postgres', 'SELECT 1').catch((error) => {
    throw new Error(`cannot reach PostgreSQL at ${CONFIG.pgServer}: ${error.message}`);
  });
}

/** Drops and recreates bench_src and fills it with `pgbench -i -s <scale>`. @returns its size and checksum */
async function preparePostgres() {
  log(`creating ${DB.src} with pgbench -i -s ${CONFIG.pgScale}`);
  await dropDatabase(DB.src);
  await psql('postgres', `CREATE DATABASE "${DB.src}"`);
  const start = process.hrtime.bigint();
  await run('pgbench', ['-i', '-q', '-s', String(CONFIG.pgScale), pgUrl(DB.src)]);
  await psql(DB.src, 'VACUUM ANALYZE');
  const sizeBytes = Number(await psql(DB.src, `SELECT pg_database_size('${DB.src}')`));
  const checksum = await accountsChecksum(DB.src);
  log(`${DB.src}: ${mb(sizeBytes)} MB in ${(msSince(start) / 1000).toFixed(1)} s; pgbench_accounts ${checksum}`);
  return { sizeBytes, checksum };
}

/** A small deterministic PRNG (mulberry32), so the tree's layout and text are reproducible. */
function prng(seed) {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** ~4 MiB of log-like text lines; slices of it make the compressible part of the files. */
function buildTextPool(random) {
  const words = ['GET', 'POST', 'PUT', 'DELETE', 'user', 'order', 'invoice', 'payment', 'session', 'cache', 'miss', 'hit',
    'timeout', 'retry', 'ok', 'error', 'warn', 'info', 'debug', 'shard', 'replica', 'primary', 'commit', 'rollback'];
  const levels = ['INFO', 'INFO', 'INFO', 'DEBUG', 'WARN', 'ERROR'];
  const lines = [];
  let size = 0;
  let time = Date.UTC(2024, 0, 1);
  while (size < 4 * MiB) {
    time += Math.floor(random() * 5000);
    const pick = () => words[Math.floor(random() * words.length)];
    const line =
      `${new Date(time).toISOString()} ${levels[Math.floor(random() * levels.length)]} ` +
      `req=${Math.floor(random() * 1e9).toString(16)} ${pick()} /api/v1/${pick()}/${Math.floor(random() * 100000)} ` +
      `status=${[200, 200, 201, 204, 404, 500][Math.floor(random() * 6)]} ms=${Math.floor(random() * 900)} ` +
      `msg="${pick()} ${pick()} ${pick()} ${pick()}"\n`;
    lines.push(line);
    size += line.length;
  }
  return Buffer.from(lines.join(''), 'utf8');
}

/**
 * Semi-compressible content: segments of 2..16 KiB, about 30 % fresh random bytes and 70 % slices of the text
 * pool, so zstd -3 compresses it about 2-3x.
 */
function fileContent(size, random, pool) {
  const buf = Buffer.allocUnsafe(size);
  let offset = 0;
  while (offset < size) {
    const length = Math.min(size - offset, 2048 + Math.floor(random() * 14336));
    if (random() < 0.3) {
      crypto.randomFillSync(buf, offset, length);
    } else {
      const from = Math.floor(random() * (pool.length - length));
      pool.copy(buf, offset, from, from + length);
    }
    offset += length;
  }
  return buf;
}

/** A file size: 60 % small (4..64 KiB), 40 % log-uniform in 4 KiB..4 MiB. */
function randomFileSize(random) {
  const [lo, hi] = random() < 0.6 ? [4096, 65536] : [4096, 4 * MiB];
  return Math.round(Math.exp(Math.log(lo) + random() * (Math.log(hi) - Math.log(lo))));
}

/**
 * Builds (or reuses, when tree.json records the same size and format) a tree of about BENCH_TREE_MB MiB:
 * thousands of files in nested directories, a few symlinks and an empty directory. Written to tree.tmp, then
 * renamed, so an interrupted generation is never reused.
 * @returns the marker: {treeMb, format, files, bytes}
 */
async function prepareTree() {
  const marker = await fsp.readFile(CONFIG.treeMarker, 'utf8').then(JSON.parse).catch(() => null);
  if (marker && marker.treeMb === CONFIG.treeMb && marker.format === TREE_FORMAT && fs.existsSync(CONFIG.treeDir)) {
    log(`reusing tree ${CONFIG.treeDir}: ${marker.files} files, ${mb(marker.bytes)} MB`);
    return marker;
  }
  log(`generating a ${CONFIG.treeMb} MB tree in ${CONFIG.treeDir}`);
  await fsp.rm(CONFIG.treeMarker, { force: true });
  await fsp.rm(CONFIG.treeDir, { recursive: true, force: true });
  const tmp = `${CONFIG.treeDir}.tmp`;
  await fsp.rm(tmp, { recursive: true, force: true });
  const random = prng(20240101);
  const pool = buildTextPool(random);
  // Directories: d00..d15, each with 0..3 subdirectories, some with one more level.
  const dirs = [];
  for (let i = 0; i < 16; i++) {
    const top = `d${String(i).padStart(2, '0')}`;
    dirs.push(top);
    const subs = Math.floor(random() * 4);
    for (let j = 0; j < subs; j++) {
      dirs.push(`${top}/s${j}`);
      if (random() < 0.4) dirs.push(`${top}/s${j}/deep/er`);
    }
  }
  for (const dir of dirs) await fsp.mkdir(path.join(tmp, dir), { recursive: true });
  await fsp.mkdir(path.join(tmp, 'empty-dir'));
  const target = CONFIG.treeMb * MiB;
  const files = [];
  let bytes = 0;
  let pending = [];
  while (bytes < target) {
    const size = Math.min(randomFileSize(random), target - bytes);
    const dir = dirs[Math.floor(random() * dirs.length)];
    const rel = `${dir}/f${String(files.length).padStart(5, '0')}.${['log', 'dat', 'txt', 'bin'][files.length % 4]}`;
    files.push(rel);
    bytes += size;
    pending.push(fsp.writeFile(path.join(tmp, rel), fileContent(size, random, pool)));
    if (pending.length >= 8) {
      await Promise.all(pending);
      pending = [];
    }
  }
  await Promise.all(pending);
  // A few relative symlinks to files and one to a directory (no cycles, none dangling).
  for (let i = 0; i < 5; i++) {
    const to = files[Math.floor(random() * files.length)];
    await fsp.symlink(path.posix.join('..', to), path.join(tmp, 'd00', `link-${i}`));
  }
  await fsp.symlink('d01', path.join(tmp, 'latest'));
  await fsp.rename(tmp, CONFIG.treeDir);
  const result = { treeMb: CONFIG.treeMb, format: TREE_FORMAT, files: files.length, symlinks: 6, bytes };
  await fsp.writeFile(CONFIG.treeMarker, JSON.stringify(result, null, 2));
  log(`tree ready: ${files.length} files, ${mb(bytes)} MB`);
  return result;
}

/** What the small-file tree copies, when present: system documentation and Python's library (many small files). */
const SMALL_TREE_SOURCES = ['/usr/share/doc', '/usr/share/man', '/usr/lib/python3', ...safeGlobDirs('/usr/lib', /^python3\.\d+$/)];

function safeGlobDirs(dir, pattern) {
  try {
    return fs.readdirSync(dir).filter((n) => pattern.test(n)).map((n) => path.join(dir, n));
  } catch {
    return [];
  }
}

/**
 * Builds (once; reused while `small-tree.json` exists) the small-file tree: `cp -a` of {@link SMALL_TREE_SOURCES}
 * (those present), about 35,000 files of 320 MB on Debian 12 with Python 3.11.
 * @returns the marker: {sources, files, bytes}
 */
async function prepareSmallTree() {
  if (process.env.BENCH_SMALL_TREE) {
    const files = Number((await run('bash', ['-c', `find ${sq(CONFIG.smallTreeDir)} | wc -l`])).stdout.trim());
    const bytes = Number((await run('du', ['-sb', CONFIG.smallTreeDir])).stdout.split('\t')[0]);
    log(`small-file tree ${CONFIG.smallTreeDir} (BENCH_SMALL_TREE): ${files} entries, ${mb(bytes)} MB`);
    return { sources: [CONFIG.smallTreeDir], files, bytes };
  }
  const markerFile = path.join(CONFIG.benchDir, 'small-tree.json');
  const marker = await fsp.readFile(markerFile, 'utf8').then(JSON.parse).catch(() => null);
  if (marker && fs.existsSync(CONFIG.smallTreeDir)) {
    log(`reusing small-file tree ${CONFIG.smallTreeDir}: ${marker.files} entries, ${mb(marker.bytes)} MB`);
    return marker;
  }
  const sources = SMALL_TREE_SOURCES.filter((s) => fs.existsSync(s));
  if (!sources.length) throw new Error(`none of ${SMALL_TREE_SOURCES.join(', ')} exists to build the small-file tree`);
  log(`copying ${sources.join(', ')} into ${CONFIG.smallTreeDir}`);
  const tmp = `${CONFIG.smallTreeDir}.tmp`;
  await fsp.rm(tmp, { recursive: true, force: true });
  await fsp.rm(CONFIG.smallTreeDir, { recursive: true, force: true });
  await fsp.mkdir(tmp, { recursive: true });
  // `cp -a` of each source under a name of its own (python3 and python3.11 both end in their basename)
  for (const source of sources) await run('cp', ['-a', source, path.join(tmp, source.replace(/^\//, '').replace(/\//g, '_'))]);
  const files = Number((await run('bash', ['-c', `find ${sq(tmp)} | wc -l`])).stdout.trim());
  const bytes = Number((await run('du', ['-sb', tmp])).stdout.split('\t')[0]);
  await fsp.rename(tmp, CONFIG.smallTreeDir);
  const result = { sources, files, bytes };
  await fsp.writeFile(markerFile, JSON.stringify(result, null, 2));
  log(`small-file tree ready: ${files} entries, ${mb(bytes)} MB`);
  return result;
}

// ---------------------------------------------------------------------------------------------------------------
// The service

/** `preferred` if it is free on 127.0.0.1, else a free port the kernel picks. */
function freePort(preferred) {
  const tryListen = (port) =>
    new Promise((resolve) => {
      const server = net.createServer();
      server.once('error', () => resolve(null));
      server.listen(port, '127.0.0.1', () => {
        const { port: actual } = server.address();
        server.close(() => resolve(actual));
      });
    });
  return tryListen(preferred).then((port) => port ?? tryListen(0));
}

/**
 * Starts `node dist/main.js` with the benchmark's configuration (DR_* variables of the caller's environment pass
 * through, e.g. DR_ZSTD_WORKERS) and waits until readiness answers 200.
 * @returns {{child, pid, base, exited: Promise}}
 */
async function startService() {
  await ensureDatabase(DB.meta);
  await fsp.mkdir(CONFIG.restoreRoot, { recursive: true });
  const port = await freePort(CONFIG.port);
  const env = {
    ...process.env,
    DATABASE_URL: pgUrl(DB.meta),
    DR_DATA_DIR: CONFIG.serviceDataDir,
    DR_RESTORE_ROOTS: CONFIG.restoreRoot,
    DR_ADMIN_API_KEY: API_KEY,
    PORT: String(port),
    HOST: '127.0.0.1',
    DR_SCHEDULER_ENABLED: 'false',
    ...(CONFIG.age ? { DR_AGE_IDENTITY_SECRET: `file:${CONFIG.ageKeyFile}` } : {}),
  };
  delete env.DISASTER_RECOVERY_PORT; // it would take precedence over PORT
  const logStream = fs.createWriteStream(CONFIG.serviceLog, { flags: 'w' });
  // The same flags as `npm start` (see README).
  const child = spawn(process.execPath, ['--no-incremental-marking', path.join(REPO, 'dist', 'main.js')], {
    cwd: REPO,
    env,
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  child.stdout.pipe(logStream, { end: false });
  child.stderr.pipe(logStream, { end: false });
  const exited = new Promise((resolve) => child.once('exit', (code, signal) => resolve({ code, signal })));
  const service = { child, pid: child.pid, base: `http://127.0.0.1:${port}`, exited, exitedEarly: false };
  exited.then(() => (service.exitedEarly = true));
  log(`service started (pid ${child.pid}, port ${port}, log ${CONFIG.serviceLog})`);
  const deadline = Date.now() + 120_000;
  for (;;) {
    if (service.exitedEarly) throw new Error(`the service exited during start-up; see ${CONFIG.serviceLog}\n${await logTail()}`);
    const status = await fetch(`${service.base}/actuator/health/readiness`).then((r) => r.status).catch(() => 0);
    if (status === 200) break;
    if (Date.now() > deadline) throw new Error(`the service was not ready within 120 s; see ${CONFIG.serviceLog}`);
    await sleep(250);
  }
  log('service ready');
  return service;
}

/** Stops the service with SIGTERM (SIGKILL after 30 s). @returns its exit code/signal, or null if not running */
async function stopService(service) {
  if (!service || service.exitedEarly) return null;
  log(`stopping the service (SIGTERM to pid ${service.pid})`);
  service.child.kill('SIGTERM');
  const timer = setTimeout(() => service.child.kill('SIGKILL'), 30_000);
  const result = await service.exited;
  clearTimeout(timer);
  return result;
}

/** Last lines of the service log. */
async function logTail(lines = 30) {
  const text = await fsp.readFile(CONFIG.serviceLog, 'utf8').catch(() => '');
  return text.split('\n').slice(-lines).join('\n');
}

/** Calls the service API with the admin key. @returns the parsed JSON body; throws on a non-2xx answer. */
async function api(service, method, route, body) {
  const response = await fetch(`${service.base}${API}${route}`, {
    method,
    headers: { 'X-API-Key': API_KEY, ...(body ? { 'Content-Type': 'application/json' } : {}) },
    body: body ? JSON.stringify(body) : undefined,
  });
  const text = await response.text();
  if (!response.ok) throw new Error(`${method} ${route} answered ${response.status}: ${text.slice(0, 2000)}`);
  return text ? JSON.parse(text) : null;
}

/** Reads a value (kB) from /proc/<pid>/status, e.g. VmRSS or VmHWM; null when unavailable. */
function procStatusKb(pid, field) {
  try {
    const match = fs.readFileSync(`/proc/${pid}/status`, 'utf8').match(new RegExp(`^${field}:\\s+(\\d+) kB`, 'm'));
    return match ? Number(match[1]) : null;
  } catch {
    return null;
  }
}

/** Samples VmRSS of `pid` every 200 ms. @returns {stop(): number} giving the maximum seen, in MB */
function startRssSampler(pid) {
  let maxKb = procStatusKb(pid, 'VmRSS') ?? 0;
  const timer = setInterval(() => {
    maxKb = Math.max(maxKb, procStatusKb(pid, 'VmRSS') ?? 0);
  }, 200);
  return {
    stop() {
      clearInterval(timer);
      maxKb = Math.max(maxKb, procStatusKb(pid, 'VmRSS') ?? 0);
      return Math.round((maxKb / 1024) * 10) / 10;
    },
  };
}

/**
 * Starts a backup or a recovery (POST `collection`) and polls GET `collection/{id}` every 100 ms until it is
 * COMPLETED or FAILED, sampling the service's RSS meanwhile.
 * @returns {{ms, rssMb, record}} where record is the final API representation.
 */
async function runServiceJob(service, collection, body) {
  const sampler = startRssSampler(service.pid);
  const start = process.hrtime.bigint();
  try {
    const created = await api(service, 'POST', `/${collection}`, body);
    for (;;) {
      const record = await api(service, 'GET', `/${collection}/${created.id}`);
      if (record.status === 'COMPLETED' || record.status === 'FAILED') {
        return { ms: msSince(start), rssMb: sampler.stop(), record };
      }
      if (service.exitedEarly) throw new Error(`the service exited while ${collection}/${created.id} was ${record.status}`);
      await sleep(100);
    }
  } finally {
    sampler.stop();
  }
}

// ---------------------------------------------------------------------------------------------------------------
// Measurements

/** Collects the runs of one operation (service side and standard side) and reduces them to the best. */
class Operation {
  constructor(name, serviceLabel, standardLabel) {
    Object.assign(this, { name, serviceLabel, standardLabel });
    this.service = [];
    this.standard = [];
    this.errors = [];
    this.sizes = {};
  }

  /** Best (minimum) time of the successful service runs, and the max RSS seen over all of them. */
  summary() {
    const ok = this.service.filter((r) => r.status === 'COMPLETED');
    const best = (runs) => (runs.length ? Math.min(...runs.map((r) => r.ms)) : null);
    const maxOf = (runs, key) => {
      const values = runs.map((r) => r[key]).filter((v) => v != null);
      return values.length ? Math.max(...values) : null;
    };
    const serviceMs = best(ok);
    const serviceJobMs = ok.length ? Math.min(...ok.map((r) => r.jobMs ?? r.ms)) : null;
    const standardMs = best(this.standard);
    // The machine's speed drifts by tens of percent over minutes (shared virtual CPUs), so runs far apart do not
    // compare; each repeat runs the two sides back to back, and the median of those pairs' ratios is the robust figure.
    const pairs = [];
    for (let i = 0; i < Math.min(this.service.length, this.standard.length); i++) {
      const svc = this.service[i];
      if (svc.status === 'COMPLETED' && this.standard[i]) pairs.push((svc.jobMs ?? svc.ms) / this.standard[i].ms);
    }
    pairs.sort((a, b) => a - b);
    const median = pairs.length ? (pairs.length % 2 ? pairs[(pairs.length - 1) / 2] : (pairs[pairs.length / 2 - 1] + pairs[pairs.length / 2]) / 2) : null;
    const round2 = (x) => (x == null ? null : Math.round(x * 100) / 100);
    return {
      operation: this.name,
      service: this.serviceLabel,
      standard: this.standardLabel,
      serviceMs: serviceMs == null ? null : Math.round(serviceMs),
      standardMs: standardMs == null ? null : Math.round(standardMs),
      serviceJobMs: serviceJobMs == null ? null : Math.round(serviceJobMs),
      ratio: serviceMs != null && standardMs ? round2(serviceMs / standardMs) : null,
      pairRatios: pairs.map(round2),
      pairRatioMedian: round2(median),
      servicePeakRssMb: maxOf(this.service, 'rssMb'),
      standardPeakRssMb: maxOf(this.standard, 'maxRssMb'),
      sizes: this.sizes,
      serviceRuns: this.service.map((r) => ({ ms: Math.round(r.ms), jobMs: r.jobMs, status: r.status, rssMb: r.rssMb, ...(r.durationMs != null ? { serviceDurationMs: r.durationMs } : {}), ...(r.error ? { error: r.error } : {}) })),
      standardRuns: this.standard.map((r) => ({ ms: Math.round(r.ms), maxRssMb: r.maxRssMb })),
      errors: this.errors,
    };
  }
}

/** Runs `a` and `b` in that order on even repeats and in reverse order on odd ones, so neither always goes first. */
async function alternate(repeatIndex, a, b) {
  if (repeatIndex % 2 === 0) {
    await a();
    await b();
  } else {
    await b();
    await a();
  }
}

/** Records a service job's outcome on `op`. @returns the final record (null when the request itself failed) */
async function measureServiceJob(op, service, collection, body) {
  try {
    const { ms, rssMb, record } = await runServiceJob(service, collection, body);
    // jobMs: from the record's creation (request accepted) to its finish, as the service recorded them; the polled
    // wall time adds the HTTP round trips and up to one 100 ms poll interval.
    const jobMs = record.finishedAt ? new Date(record.finishedAt).getTime() - new Date(record.createdAt).getTime() : null;
    op.service.push({ ms, jobMs, rssMb, status: record.status, durationMs: record.durationMs, error: record.error });
    if (record.status === 'FAILED') {
      op.errors.push(`${collection} ${record.id} FAILED: ${record.error}`);
      log(`  service ${op.name}: FAILED after ${Math.round(ms)} ms: ${record.error}`);
    } else {
      log(`  service ${op.name}: ${Math.round(ms)} ms, RSS ${rssMb} MB`);
    }
    return record;
  } catch (error) {
    op.service.push({ ms: null, status: 'ERROR', error: error.message });
    op.errors.push(error.message);
    log(`  service ${op.name}: ERROR ${error.message}`);
    return null;
  }
}

/** Times a standard command line and records it on `op`. */
async function measureStandard(op, script) {
  try {
    const result = await timeStandard(script);
    op.standard.push(result);
    log(`  standard ${op.name}: ${Math.round(result.ms)} ms${result.maxRssMb != null ? `, max RSS ${result.maxRssMb} MB` : ''}`);
  } catch (error) {
    op.errors.push(error.message);
    log(`  standard ${op.name}: ERROR ${error.message}`);
  }
}

/** `diff -r --no-dereference a b` (symlinks compared as links). @returns 'ok' or 'mismatch: <first lines>' */
async function compareTrees(a, b) {
  const { code, stdout, stderr } = await run('diff', ['-r', '--no-dereference', a, b], { allowFail: true });
  if (code === 0) return 'ok';
  return `mismatch: ${(stdout + stderr).split('\n').slice(0, 5).join(' | ')}`;
}

/**
 * One repeat of every measurement. Service op and standard op alternate (order flips every repeat).
 * Restored data are checked, then removed to save disk.
 */
async function runRepeat(r, service, ops, checks, source) {
  log(`repeat ${r + 1}/${CONFIG.repeat}`);
  if (CONFIG.cases.has('postgres')) await runPostgresRepeat(r, service, ops, checks, source);
  if (CONFIG.cases.has('tree')) await runTreeRepeat(r, service, ops, checks);
  if (CONFIG.cases.has('small')) await runSmallTreeRepeat(r, service, ops, checks);
}

/** One repeat of the PostgreSQL backup and restore. */
async function runPostgresRepeat(r, service, ops, checks, source) {
  const std = CONFIG.stdDir;
  const dumpFile = path.join(std, 'out.dump');
  const dumpZst = path.join(std, 'out.zst');

  // PostgreSQL backup: service vs pg_dump -Fc -Z0 | zstd -3 (same work) and vs pg_dump -Fc (gzip).
  let pgBackup = null;
  await alternate(
    r,
    async () => {
      const record = await measureServiceJob(ops.pgBackup, service, 'backups', {
        engine: 'postgres',
        source: { url: pgUrl(DB.src) },
      });
      if (record?.status === 'COMPLETED') {
        pgBackup = record;
        ops.pgBackup.sizes.serviceRawBytes = record.sizeBytes;
        ops.pgBackup.sizes.serviceStoredBytes = record.storedBytes;
      }
    },
    async () => {
      await fsp.rm(dumpZst, { force: true });
      await measureStandard(ops.pgBackup, `pg_dump -Fc -Z0 ${sq(pgUrl(DB.src))} | zstd -3 -q -f -o ${sq(dumpZst)}`);
      ops.pgBackup.sizes.standardStoredBytes = await fileSize(dumpZst);
      await fsp.rm(dumpFile, { force: true });
      await measureStandard(ops.pgBackupGzip, `pg_dump -Fc -f ${sq(dumpFile)} ${sq(pgUrl(DB.src))}`);
      ops.pgBackupGzip.sizes.standardStoredBytes = await fileSize(dumpFile);
    },
  );

  // PostgreSQL restore: service (create:true) vs createdb && pg_restore -j2 of the -Fc dump.
  await alternate(
    r,
    async () => {
      if (!pgBackup) return void ops.pgRestore.errors.push('skipped: no completed service backup of the database');
      await dropDatabase(DB.restoreSvc);
      const record = await measureServiceJob(ops.pgRestore, service, 'recovery', {
        backupId: pgBackup.id,
        type: 'FULL',
        target: { url: pgUrl(DB.restoreSvc), create: true },
      });
      if (record?.status === 'COMPLETED') {
        ops.pgRestore.sizes.serviceBytesRead = record.bytesRead ?? record.bytesRestored;
        const sum = await accountsChecksum(DB.restoreSvc).catch((e) => `error: ${e.message}`);
        checks.pgService.push(sum === source.checksum ? 'ok' : `mismatch: ${sum} vs ${source.checksum}`);
      }
    },
    async () => {
      if (!fs.existsSync(dumpFile)) return void ops.pgRestore.errors.push('skipped: no standard dump');
      await dropDatabase(DB.restoreStd);
      await measureStandard(
        ops.pgRestore,
        `createdb --maintenance-db=${sq(pgUrl('postgres'))} ${DB.restoreStd}\npg_restore -j2 -d ${sq(pgUrl(DB.restoreStd))} ${sq(dumpFile)}`,
      );
      ops.pgRestore.sizes.standardBytesRead = await fileSize(dumpFile);
      const sum = await accountsChecksum(DB.restoreStd).catch((e) => `error: ${e.message}`);
      checks.pgStandard.push(sum === source.checksum ? 'ok' : `mismatch: ${sum} vs ${source.checksum}`);
    },
  );
}

/** One repeat of the 1 GiB tree's backup and restore (and, with age, the encrypted pair). */
async function runTreeRepeat(r, service, ops, checks) {
  const std = CONFIG.stdDir;
  const treeZst = path.join(std, 'tree.tar.zst');
  const treeAge = path.join(std, 'tree.tar.zst.age');

  // Filesystem backup: service vs tar | zstd -3.
  let fsBackup = null;
  await alternate(
    r,
    async () => {
      const record = await measureServiceJob(ops.fsBackup, service, 'backups', {
        engine: 'filesystem',
        source: { path: CONFIG.treeDir },
      });
      if (record?.status === 'COMPLETED') {
        fsBackup = record;
        ops.fsBackup.sizes.serviceRawBytes = record.sizeBytes;
        ops.fsBackup.sizes.serviceStoredBytes = record.storedBytes;
      }
    },
    async () => {
      await fsp.rm(treeZst, { force: true });
      await measureStandard(ops.fsBackup, `tar -cf - -C ${sq(CONFIG.treeDir)} . | zstd -3 -q -f -o ${sq(treeZst)}`);
      ops.fsBackup.sizes.standardStoredBytes = await fileSize(treeZst);
    },
  );

  // Filesystem restore: service into restores/tree-<n> vs zstd -dc | tar -x; both compared with diff -r.
  await alternate(
    r,
    async () => {
      if (!fsBackup) return void ops.fsRestore.errors.push('skipped: no completed service backup of the tree');
      const dir = path.join(CONFIG.restoreRoot, `tree-${r + 1}`);
      await fsp.rm(dir, { recursive: true, force: true });
      const record = await measureServiceJob(ops.fsRestore, service, 'recovery', {
        backupId: fsBackup.id,
        type: 'FULL',
        target: { path: dir },
      });
      if (record?.status === 'COMPLETED') {
        ops.fsRestore.sizes.serviceBytesRead = record.bytesRead ?? record.bytesRestored;
        checks.treeService.push(await compareTrees(CONFIG.treeDir, dir));
      }
      await fsp.rm(dir, { recursive: true, force: true });
    },
    async () => {
      if (!fs.existsSync(treeZst)) return void ops.fsRestore.errors.push('skipped: no standard tree archive');
      const dir = path.join(CONFIG.stdRestoreDir, `tree-${r + 1}`);
      await fsp.rm(dir, { recursive: true, force: true });
      await fsp.mkdir(dir, { recursive: true });
      await measureStandard(ops.fsRestore, `zstd -dc ${sq(treeZst)} | tar -xf - -C ${sq(dir)}`);
      ops.fsRestore.sizes.standardBytesRead = await fileSize(treeZst);
      checks.treeStandard.push(await compareTrees(CONFIG.treeDir, dir));
      await fsp.rm(dir, { recursive: true, force: true });
    },
  );
  if (!CONFIG.age || !CONFIG.cases.has('age')) return;

  // Encrypted filesystem backup: service into the age-encrypted location vs tar | zstd -3 | age -r.
  let encBackup = null;
  await alternate(
    r,
    async () => {
      const record = await measureServiceJob(ops.fsBackupEnc, service, 'backups', {
        engine: 'filesystem',
        source: { path: CONFIG.treeDir },
        storageLocationId: service.encryptedLocationId,
      });
      if (record?.status === 'COMPLETED') {
        encBackup = record;
        ops.fsBackupEnc.sizes.serviceStoredBytes = record.storedBytes;
      }
    },
    async () => {
      await fsp.rm(treeAge, { force: true });
      await measureStandard(ops.fsBackupEnc, `tar -cf - -C ${sq(CONFIG.treeDir)} . | zstd -3 -q | age -r ${sq(service.ageRecipient)} -o ${sq(treeAge)}`);
      ops.fsBackupEnc.sizes.standardStoredBytes = await fileSize(treeAge);
    },
  );
  // Encrypted filesystem restore: service vs age -d | zstd -dc | tar -x.
  await alternate(
    r,
    async () => {
      if (!encBackup) return void ops.fsRestoreEnc.errors.push('skipped: no completed encrypted service backup');
      const dir = path.join(CONFIG.restoreRoot, `tree-enc-${r + 1}`);
      await fsp.rm(dir, { recursive: true, force: true });
      const record = await measureServiceJob(ops.fsRestoreEnc, service, 'recovery', { backupId: encBackup.id, type: 'FULL', target: { path: dir } });
      if (record?.status === 'COMPLETED') checks.treeServiceEnc.push(await compareTrees(CONFIG.treeDir, dir));
      await fsp.rm(dir, { recursive: true, force: true });
    },
    async () => {
      if (!fs.existsSync(treeAge)) return void ops.fsRestoreEnc.errors.push('skipped: no standard encrypted archive');
      const dir = path.join(CONFIG.stdRestoreDir, `tree-enc-${r + 1}`);
      await fsp.rm(dir, { recursive: true, force: true });
      await fsp.mkdir(dir, { recursive: true });
      await measureStandard(ops.fsRestoreEnc, `age -d -i ${sq(CONFIG.ageKeyFile)} ${sq(treeAge)} | zstd -dc | tar -xf - -C ${sq(dir)}`);
      await fsp.rm(dir, { recursive: true, force: true });
    },
  );
}

/** Generates the age identity of the encrypted runs, if the age command is installed. */
async function prepareAge() {
  const { code } = await run('bash', ['-c', 'command -v age && command -v age-keygen'], { allowFail: true });
  if (code !== 0) {
    log('age is not installed: skipping the encrypted runs');
    return;
  }
  await fsp.rm(CONFIG.ageKeyFile, { force: true });
  await run('age-keygen', ['-o', CONFIG.ageKeyFile]);
  CONFIG.age = true;
}

/**
 * One repeat on the small-file tree: the service's backup against `tar | zstd -3` and against `restic backup` into
 * a fresh repository (restic 0.14's default: repository format 2, zstd `auto`; its `init` is not timed), then the
 * service's restore against `zstd -dc | tar -x`, both restores compared with the tree (`diff -r`).
 */
async function runSmallTreeRepeat(r, service, ops, checks) {
  const smallZst = path.join(CONFIG.stdDir, 'small-tree.tar.zst');
  let backup = null;
  await alternate(
    r,
    async () => {
      const record = await measureServiceJob(ops.smallBackup, service, 'backups', { engine: 'filesystem', source: { path: CONFIG.smallTreeDir } });
      if (record?.status === 'COMPLETED') {
        backup = record;
        ops.smallBackup.sizes.serviceRawBytes = record.sizeBytes;
        ops.smallBackup.sizes.serviceStoredBytes = record.storedBytes;
      }
    },
    async () => {
      await fsp.rm(smallZst, { force: true });
      await measureStandard(ops.smallBackup, `tar -cf - -C ${sq(CONFIG.smallTreeDir)} . | zstd -3 -q -f -o ${sq(smallZst)}`);
      ops.smallBackup.sizes.standardStoredBytes = await fileSize(smallZst);
      if (!CONFIG.restic) return;
      await fsp.rm(CONFIG.resticRepo, { recursive: true, force: true });
      await run('restic', ['init', '-q', '-r', CONFIG.resticRepo], { env: { ...process.env, RESTIC_PASSWORD: 'bench' } });
      await measureStandard(
        ops.smallBackupRestic,
        `RESTIC_PASSWORD=bench restic -r ${sq(CONFIG.resticRepo)} backup -q --cache-dir ${sq(path.join(CONFIG.benchDir, 'restic-cache'))} ${sq(CONFIG.smallTreeDir)}`,
      );
      ops.smallBackupRestic.sizes.standardStoredBytes = Number((await run('du', ['-sb', CONFIG.resticRepo])).stdout.split('\t')[0]);
      await fsp.rm(CONFIG.resticRepo, { recursive: true, force: true });
    },
  );
  await alternate(
    r,
    async () => {
      if (!backup) return void ops.smallRestore.errors.push('skipped: no completed service backup of the small-file tree');
      const dir = path.join(CONFIG.restoreRoot, `small-${r + 1}`);
      await fsp.rm(dir, { recursive: true, force: true });
      const record = await measureServiceJob(ops.smallRestore, service, 'recovery', { backupId: backup.id, type: 'FULL', target: { path: dir } });
      if (record?.status === 'COMPLETED') checks.smallService.push(await compareTrees(CONFIG.smallTreeDir, dir));
      await fsp.rm(dir, { recursive: true, force: true });
    },
    async () => {
      if (!fs.existsSync(smallZst)) return void ops.smallRestore.errors.push('skipped: no standard small-file archive');
      const dir = path.join(CONFIG.stdRestoreDir, `small-${r + 1}`);
      await fsp.rm(dir, { recursive: true, force: true });
      await fsp.mkdir(dir, { recursive: true });
      await measureStandard(ops.smallRestore, `zstd -dc ${sq(smallZst)} | tar -xf - -C ${sq(dir)}`);
      checks.smallStandard.push(await compareTrees(CONFIG.smallTreeDir, dir));
      await fsp.rm(dir, { recursive: true, force: true });
    },
  );
}

/** Creates the service's age-encrypted storage location; records its id and recipient on `service`. */
async function createEncryptedLocation(service) {
  const key = await fsp.readFile(CONFIG.ageKeyFile, 'utf8');
  service.ageRecipient = key.match(/public key: (age1[0-9a-z]+)/)[1];
  const dir = path.join(CONFIG.serviceDataDir, 'encrypted');
  await fsp.mkdir(dir, { recursive: true });
  const location = await api(service, 'POST', '/storage-locations', {
    name: `bench-encrypted-${Date.now()}`,
    kind: 'local',
    settings: { path: dir },
    encryption: { recipients: [service.ageRecipient] },
  });
  service.encryptedLocationId = location.id;
}

/** Starts from a clean service state: fresh metadata database, no stored artifacts, no leftover restores. */
async function resetServiceState() {
  if (CONFIG.keepServiceData) {
    log('BENCH_KEEP_SERVICE_DATA set: keeping bench_meta and service-data');
  } else {
    await dropDatabase(DB.meta);
    await fsp.rm(CONFIG.serviceDataDir, { recursive: true, force: true });
  }
  await fsp.rm(CONFIG.restoreRoot, { recursive: true, force: true });
  await fsp.rm(CONFIG.stdRestoreDir, { recursive: true, force: true });
  await fsp.mkdir(CONFIG.stdDir, { recursive: true });
}

// ---------------------------------------------------------------------------------------------------------------
// Report

/** Formats bytes as MB with one decimal, or '-'. */
function fmtMb(bytes) {
  return bytes == null ? '-' : `${mb(bytes)} MB`;
}

/** Human-readable sizes of one operation. */
function describeSizes(s) {
  const parts = [];
  if (s.serviceRawBytes != null) parts.push(`raw ${fmtMb(s.serviceRawBytes)}`);
  if (s.serviceStoredBytes != null) parts.push(`svc ${fmtMb(s.serviceStoredBytes)}`);
  if (s.standardStoredBytes != null) parts.push(`std ${fmtMb(s.standardStoredBytes)}`);
  if (s.serviceBytesRead != null) parts.push(`svc read ${fmtMb(s.serviceBytesRead)}`);
  if (s.standardBytesRead != null) parts.push(`std read ${fmtMb(s.standardBytesRead)}`);
  return parts.join(', ') || '-';
}

/** Renders rows as a fixed-width text table. */
function table(headers, rows) {
  const widths = headers.map((h, i) => Math.max(h.length, ...rows.map((r) => String(r[i]).length)));
  const line = (cells) => cells.map((c, i) => (i === 0 || i === cells.length - 1 ? String(c).padEnd(widths[i]) : String(c).padStart(widths[i]))).join('  ');
  return [line(headers), widths.map((w) => '-'.repeat(w)).join('  '), ...rows.map(line)].join('\n');
}

/** The stdout report: environment, the measurement table, targets and checks. */
function renderReport(results) {
  const out = [];
  const m = results.machine;
  out.push(`Disaster-recovery service benchmark — ${results.finishedAt}`);
  out.push(`machine: ${m.cpus} x ${m.cpuModel}, ${m.memoryMb} MB RAM, node ${m.node}, ${m.pgDump}, zstd ${m.zstd}`);
  out.push(
    `data: ${DB.src} pgbench scale ${results.config.pgScale} (${fmtMb(results.data.postgresBytes)} on disk); ` +
      `tree ${results.data.treeFiles} files, ${fmtMb(results.data.treeBytes)}; small-file tree ${results.data.smallTreeEntries} entries, ` +
      `${fmtMb(results.data.smallTreeBytes)}; best of ${results.config.repeat} runs each`,
  );
  const extra = Object.entries(results.serviceEnv);
  out.push(`service env: defaults${extra.length ? ` + ${extra.map(([k, v]) => `${k}=${v}`).join(' ')}` : ''}`);
  out.push('');
  const rows = results.operations.map((o) => [
    o.operation,
    o.serviceMs ?? 'FAILED',
    o.serviceJobMs ?? '-',
    o.standardMs ?? 'FAILED',
    o.ratio ?? '-',
    o.pairRatioMedian ?? '-',
    o.servicePeakRssMb ?? '-',
    o.standardPeakRssMb ?? '-',
    `${describeSizes(o.sizes)}   [std: ${o.standard}]`,
  ]);
  out.push(table(['operation', 'service ms', 'svc job ms', 'standard ms', 'best/best', 'pair median', 'svc RSS MB', 'std RSS MB', 'sizes   [standard command]'], rows));
  out.push('');
  out.push(`service peak RSS (VmHWM over the whole run): ${results.servicePeakRssMb ?? '-'} MB`);
  out.push('');
  out.push('targets:');
  for (const t of results.targets) out.push(`  ${t.verdict.padEnd(4)}  ${t.name}: ${t.value ?? '-'} (target ${t.target})`);
  out.push('checks:');
  for (const [name, value] of Object.entries(results.checks)) out.push(`  ${value === 'ok' ? 'ok  ' : 'FAIL'}  ${name}: ${value}`);
  const errors = results.operations.flatMap((o) => o.errors.map((e) => `${o.operation}: ${e}`));
  if (errors.length) {
    out.push('problems:');
    for (const e of errors) out.push(`  ${e.replace(/\s*\n\s*/g, ' | ')}`);
  }
  out.push('');
  out.push('service ms = best wall time through the API (POST, then GET every 100 ms); svc job ms = best time from the');
  out.push('record\'s creation to its finish; best/best = best service ms / best standard ms; pair median = median over repeats');
  out.push('of (svc job ms / standard ms) of the two runs made back to back in that repeat (robust to the machine\'s drift).');
  out.push('svc RSS = max VmRSS of the service process sampled every 200 ms (child processes such as pg_dump/tar not included);');
  out.push('std RSS = peak RSS of the largest process of the standard pipeline (/usr/bin/time %M). Figures depend on the machine.');
  return out.join('\n');
}

/** Collapses a list of per-repeat check outcomes into 'ok' or the first problem. */
function collapse(outcomes) {
  if (!outcomes.length) return 'not run';
  return outcomes.find((o) => o !== 'ok') ?? 'ok';
}

/** DR_* variables of the caller's environment that reach the service (besides those the benchmark sets). */
function passedServiceEnv() {
  const own = ['DR_DATA_DIR', 'DR_RESTORE_ROOTS', 'DR_ADMIN_API_KEY', 'DR_SCHEDULER_ENABLED'];
  return Object.fromEntries(Object.entries(process.env).filter(([k]) => k.startsWith('DR_') && !own.includes(k)));
}

/** Facts about the machine, for the report. */
async function machineInfo() {
  const version = async (cmd, args) => (await run(cmd, args, { allowFail: true })).stdout.split('\n')[0].trim();
  return {
    cpus: os.cpus().length,
    cpuModel: os.cpus()[0]?.model ?? 'unknown',
    memoryMb: Math.round(os.totalmem() / MiB),
    node: process.version,
    pgDump: await version('pg_dump', ['--version']),
    zstd: (await version('zstd', ['--version'])).replace(/^.*v(\d[\w.]*).*$/, '$1'),
    kernel: os.release(),
  };
}

// ---------------------------------------------------------------------------------------------------------------
// Main

let activeService = null;

/** Stops the service if the benchmark is interrupted. */
function installSignalHandlers() {
  for (const signal of ['SIGINT', 'SIGTERM']) {
    process.once(signal, async () => {
      log(`${signal}: stopping`);
      await stopService(activeService).catch(() => undefined);
      process.exit(130);
    });
  }
}

/**
 * What encryption adds to the service's own job: for each repeat, the encrypted job's time over the plain one's
 * (`plainOp` and `encOp` ran in the same repeat, minutes apart at most). @returns the median ratio, or null
 */
function encryptionOverhead(plainOp, encOp) {
  const ratios = [];
  for (let i = 0; i < Math.min(plainOp.service.length, encOp.service.length); i++) {
    const plain = plainOp.service[i];
    const enc = encOp.service[i];
    if (plain.status === 'COMPLETED' && enc.status === 'COMPLETED') ratios.push((enc.jobMs ?? enc.ms) / (plain.jobMs ?? plain.ms));
  }
  ratios.sort((a, b) => a - b);
  return ratios.length ? Math.round(ratios[Math.floor(ratios.length / 2)] * 100) / 100 : null;
}

async function main() {
  installSignalHandlers();
  await fsp.mkdir(CONFIG.benchDir, { recursive: true });
  await checkPrerequisites();
  log(`bench dir ${CONFIG.benchDir}; scale ${CONFIG.pgScale}, tree ${CONFIG.treeMb} MB, repeat ${CONFIG.repeat}`);
  const machine = await machineInfo();
  const source = CONFIG.cases.has('postgres') ? await preparePostgres() : { sizeBytes: null, checksum: null };
  const tree = CONFIG.cases.has('tree') ? await prepareTree() : { files: null, bytes: null };
  const smallTree = CONFIG.cases.has('small') ? await prepareSmallTree() : { files: null, bytes: null };
  CONFIG.restic = CONFIG.cases.has('small') && (await run('bash', ['-c', 'command -v restic'], { allowFail: true })).code === 0;
  if (CONFIG.cases.has('small') && !CONFIG.restic) log('restic is not installed: the small-file backup is compared with tar | zstd -3 only');
  await prepareAge();
  await resetServiceState();

  const ops = {
    pgBackup: new Operation('postgres backup', 'POST /backups engine=postgres', 'pg_dump -Fc -Z0 | zstd -3'),
    pgBackupGzip: new Operation('postgres backup vs -Fc', 'same service runs', 'pg_dump -Fc (gzip)'),
    pgRestore: new Operation('postgres restore', 'POST /recovery create=true', 'createdb && pg_restore -j2 (-Fc dump)'),
    fsBackup: new Operation('filesystem backup', 'POST /backups engine=filesystem', 'tar -cf - | zstd -3'),
    fsRestore: new Operation('filesystem restore', 'POST /recovery path=restores/tree-n', 'zstd -dc | tar -xf -'),
    fsBackupEnc: new Operation('filesystem backup, age', 'POST /backups into an age-encrypted location', 'tar | zstd -3 | age -r'),
    fsRestoreEnc: new Operation('filesystem restore, age', 'POST /recovery of the encrypted backup', 'age -d | zstd -dc | tar -x'),
    smallBackup: new Operation('small-file backup', 'POST /backups engine=filesystem (small-file tree)', 'tar -cf - | zstd -3'),
    smallBackupRestic: new Operation('small-file backup vs restic', 'same service runs', 'restic backup (fresh repository)'),
    smallRestore: new Operation('small-file restore', 'POST /recovery path=restores/small-n', 'zstd -dc | tar -xf -'),
  };
  ops.smallBackupRestic.service = ops.smallBackup.service;
  for (const key of Object.keys(ops)) {
    const group = key.startsWith('pg') ? 'postgres' : key.startsWith('small') ? 'small' : key.endsWith('Enc') ? 'age' : 'tree';
    if (!CONFIG.cases.has(group) || (group === 'age' && !CONFIG.cases.has('tree'))) delete ops[key];
  }
  if (ops.pgBackup) ops.pgBackupGzip.service = ops.pgBackup.service; // one set of service runs, compared with two standard commands
  const checks = { pgService: [], pgStandard: [], treeService: [], treeStandard: [], treeServiceEnc: [], smallService: [], smallStandard: [] };
  let servicePeakRssMb = null;
  let serviceExit = null;
  const startedAt = new Date().toISOString();
  try {
    activeService = await startService();
    if (CONFIG.age && ops.fsBackupEnc) await createEncryptedLocation(activeService);
    for (let r = 0; r < CONFIG.repeat; r++) await runRepeat(r, activeService, ops, checks, source);
    const hwm = procStatusKb(activeService.pid, 'VmHWM');
    servicePeakRssMb = hwm == null ? null : Math.round((hwm / 1024) * 10) / 10;
  } finally {
    serviceExit = await stopService(activeService).catch((e) => ({ error: e.message }));
    activeService = null;
  }

  const operations = Object.values(ops).map((o) => o.summary());
  const byName = Object.fromEntries(operations.map((o) => [o.operation, o]));
  const verdict = (value, limit) => (value == null ? 'MISS' : value <= limit ? 'PASS' : 'MISS');
  const pair = (name) => byName[name]?.pairRatioMedian;
  const targets = [
    ...(ops.pgBackup ? [{ name: 'postgres backup svc/std, median of back-to-back pairs (vs pg_dump -Z0 | zstd -3)', value: pair('postgres backup'), limit: TARGETS.backupRatio }] : []),
    ...(ops.pgRestore ? [{ name: 'postgres restore svc/std, median of back-to-back pairs (vs createdb && pg_restore -j2)', value: pair('postgres restore'), limit: TARGETS.restoreRatio }] : []),
    ...(ops.fsBackup ? [{ name: 'filesystem backup svc/std, median of back-to-back pairs (vs tar | zstd -3)', value: pair('filesystem backup'), limit: TARGETS.backupRatio }] : []),
    ...(ops.fsRestore ? [{ name: 'filesystem restore svc/std, median of back-to-back pairs (vs zstd -dc | tar -x)', value: pair('filesystem restore'), limit: TARGETS.restoreRatio }] : []),
    ...(ops.smallBackup ? [{ name: 'small-file backup svc/std, median of back-to-back pairs (vs tar | zstd -3)', value: pair('small-file backup'), limit: TARGETS.smallBackupRatio }] : []),
    ...(ops.smallBackup && CONFIG.restic ? [{ name: 'small-file backup svc/restic, median of back-to-back pairs (ahead of restic)', value: pair('small-file backup vs restic'), limit: 1 }] : []),
    ...(ops.smallRestore ? [{ name: 'small-file restore svc/std, median of back-to-back pairs (vs zstd -dc | tar -x)', value: pair('small-file restore'), limit: TARGETS.restoreRatio }] : []),
    { name: 'service peak RSS MB (VmHWM)', value: servicePeakRssMb, limit: TARGETS.peakRssMb },
    ...(CONFIG.age && ops.fsBackupEnc
      ? [
          { name: 'encrypted / plain service filesystem backup (median of same-repeat pairs)', value: encryptionOverhead(ops.fsBackup, ops.fsBackupEnc), limit: TARGETS.encryptionRatio },
          { name: 'encrypted / plain service filesystem restore (median of same-repeat pairs)', value: encryptionOverhead(ops.fsRestore, ops.fsRestoreEnc), limit: TARGETS.encryptionRatio },
        ]
      : []),
  ].map(({ limit, ...t }) => ({ ...t, target: `<= ${limit}`, verdict: verdict(t.value, limit) }));
  const results = {
    startedAt,
    finishedAt: new Date().toISOString(),
    machine,
    config: { ...CONFIG, cases: [...CONFIG.cases] },
    serviceEnv: passedServiceEnv(),
    data: { postgresBytes: source.sizeBytes, postgresChecksum: source.checksum, treeFiles: tree.files, treeBytes: tree.bytes, smallTreeEntries: smallTree.files, smallTreeBytes: smallTree.bytes },
    operations,
    servicePeakRssMb,
    targets,
    checks: {
      ...(ops.pgRestore
        ? { 'postgres restore (service) pgbench_accounts checksum': collapse(checks.pgService), 'postgres restore (standard) pgbench_accounts checksum': collapse(checks.pgStandard) }
        : {}),
      ...(ops.fsRestore ? { 'filesystem restore (service) diff -r': collapse(checks.treeService), 'filesystem restore (standard) diff -r': collapse(checks.treeStandard) } : {}),
      ...(CONFIG.age && ops.fsRestoreEnc ? { 'encrypted filesystem restore (service) diff -r': collapse(checks.treeServiceEnc) } : {}),
      ...(ops.smallRestore ? { 'small-file restore (service) diff -r': collapse(checks.smallService), 'small-file restore (standard) diff -r': collapse(checks.smallStandard) } : {}),
    },
    serviceExit,
  };
  await fsp.writeFile(CONFIG.resultsFile, `${JSON.stringify(results, null, 2)}\n`);
  process.stdout.write(`${renderReport(results)}\n\nresults: ${CONFIG.resultsFile}\n`);
  const failed = operations.some((o) => o.errors.length) || Object.values(results.checks).some((c) => c !== 'ok');
  process.exitCode = failed ? 1 : 0;
}

if (require.main === module) {
  main().catch(async (error) => {
    process.stderr.write(`bench failed: ${error.stack ?? error.message}\n`);
    await stopService(activeService).catch(() => undefined);
    const tail = await logTail(20);
    if (tail.trim()) process.stderr.write(`--- last lines of ${CONFIG.serviceLog} ---\n${tail}\n`);
    process.exit(1);
  });
}

/** The pieces bench/incremental.js reuses (tree generator, service start/stop, API calls). */
module.exports = {
  CONFIG, log, msSince, mb, run, sq, prng, buildTextPool, fileContent, randomFileSize, prepareTree, checkPrerequisites,
  startService, stopService, api, runServiceJob, resetServiceState, machineInfo, logTail,
};
