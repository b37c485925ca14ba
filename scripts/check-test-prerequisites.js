#!/usr/bin/env node
/**
 * Run by `npm test` before the build (the `pretest` script): checks in about a second that what the test suite
 * needs is here, and when something is missing says what and the one command that installs it, instead of the
 * suite ending after many minutes in bare ENOENT failures.
 *
 * Checks: the command-line tools the tests run (a Debian package named for each), the PostgreSQL server binaries
 * `initdb`/`pg_ctl` (on PATH or in /usr/lib/postgresql/<major>/bin, as test/support/pg-cluster.ts finds them),
 * the GCS emulator's own packages (test/emulators/gcs), and that PostgreSQL (`TEST_PG_URL`, default
 * postgresql://postgres@127.0.0.1:5432/postgres) and MariaDB (`TEST_MYSQL_HOST`/`_PORT`/`_USER`, default
 * root@127.0.0.1:3306, no password) accept the tests' connections.
 *
 * Exit 0 when all is there, 1 otherwise (the message lists every problem). `DR_TEST_SKIP_PREREQUISITES=1` skips
 * the check (e.g. to run the suite knowing some tests will fail).
 */
'use strict';
const { accessSync, constants, existsSync, readdirSync } = require('node:fs');
const { delimiter, join } = require('node:path');

const ROOT = join(__dirname, '..');
const CONNECT_TIMEOUT_MS = 3000;

/** Each tool the tests run, alternatives first-found-wins, and the Debian package that brings it. */
const TOOLS = [
  { names: ['pg_dump'], apt: 'postgresql-client' },
  { names: ['pg_restore'], apt: 'postgresql-client' },
  { names: ['psql'], apt: 'postgresql-client' },
  { names: ['pg_basebackup'], apt: 'postgresql-client' },
  { names: ['pgbench'], apt: 'postgresql' },
  { names: ['mariadb-dump', 'mysqldump'], apt: 'mariadb-client' },
  { names: ['mariadb', 'mysql'], apt: 'mariadb-client' },
  { names: ['tar'], apt: 'tar' },
  { names: ['zstd'], apt: 'zstd' },
  { names: ['age', 'age-keygen'], all: true, apt: 'age' },
  { names: ['script'], apt: 'bsdutils' }, // gives `age -p` / `age -d` the terminal they read a passphrase from
  { names: ['restic'], apt: 'restic' },
  { names: ['openssl'], apt: 'openssl' },
  { names: ['shellcheck'], apt: 'shellcheck' },
  { names: ['jq'], apt: 'jq' },
  { names: ['curl'], apt: 'curl' },
  { names: ['diff'], apt: 'diffutils' },
  { names: ['sha256sum', 'xargs'], all: true, apt: 'coreutils findutils' },
];

/** The path of executable `name` on PATH, or undefined. */
function which(name) {
  for (const dir of (process.env.PATH || '').split(delimiter).filter(Boolean)) {
    try {
      accessSync(join(dir, name), constants.X_OK);
      return join(dir, name);
    } catch {
      // not here
    }
  }
  return undefined;
}

/** initdb and pg_ctl: on PATH, or in Debian's /usr/lib/postgresql/<major>/bin. */
function serverBinariesFound() {
  if (which('initdb') && which('pg_ctl')) return true;
  const root = '/usr/lib/postgresql';
  if (!existsSync(root)) return false;
  return readdirSync(root).some((major) => existsSync(join(root, major, 'bin', 'initdb')) && existsSync(join(root, major, 'bin', 'pg_ctl')));
}

/** Resolves with an error message, or null when `connect` succeeded within the timeout. */
async function answers(connect) {
  let timer;
  try {
    await Promise.race([
      connect(),
      new Promise((_, reject) => (timer = setTimeout(() => reject(new Error(`no answer within ${CONNECT_TIMEOUT_MS} ms`)), CONNECT_TIMEOUT_MS))),
    ]);
    return null;
  } catch (error) {
    return error.message || String(error);
  } finally {
    clearTimeout(timer);
  }
}

async function postgresProblem() {
  const { Client } = require('pg');
  const url = process.env.TEST_PG_URL || 'postgresql://postgres@127.0.0.1:5432/postgres';
  const client = new Client({ connectionString: url, connectionTimeoutMillis: CONNECT_TIMEOUT_MS });
  const problem = await answers(async () => {
    await client.connect();
    const { rows } = await client.query('SELECT rolsuper FROM pg_roles WHERE rolname = current_user');
    if (!rows[0] || !rows[0].rolsuper) throw new Error('the test user is not a superuser (the tests create databases, roles and clusters)');
  });
  await client.end().catch(() => undefined);
  return problem && `PostgreSQL at ${url.replace(/:[^:@/]*@/, ':***@')} does not accept the tests' connection: ${problem}`;
}

async function mariadbProblem() {
  const mysql = require('mysql2/promise');
  const address = {
    host: process.env.TEST_MYSQL_HOST || '127.0.0.1',
    port: Number(process.env.TEST_MYSQL_PORT || 3306),
    user: process.env.TEST_MYSQL_USER || 'root',
  };
  let connection;
  const problem = await answers(async () => {
    connection = await mysql.createConnection({ ...address, connectTimeout: CONNECT_TIMEOUT_MS });
    await connection.query('SELECT 1');
  });
  if (connection) await connection.end().catch(() => undefined);
  return problem && `MariaDB at ${address.user}@${address.host}:${address.port} (no password) does not accept the tests' connection: ${problem}`;
}

async function main() {
  if (process.env.DR_TEST_SKIP_PREREQUISITES === '1') return 0;
  const started = Date.now();
  const packages = new Set();
  const missing = [];
  for (const tool of TOOLS) {
    const found = tool.names.filter((n) => which(n));
    if (tool.all ? found.length < tool.names.length : found.length === 0) {
      missing.push(tool.all ? tool.names.filter((n) => !found.includes(n)).join(', ') : tool.names.join(' or '));
      for (const p of tool.apt.split(' ')) packages.add(p);
    }
  }
  if (!serverBinariesFound()) {
    missing.push('initdb and pg_ctl (PostgreSQL server binaries)');
    packages.add('postgresql');
  }
  const services = (await Promise.all([postgresProblem(), mariadbProblem()])).filter(Boolean);
  const emulator = existsSync(join(ROOT, 'test', 'emulators', 'gcs', 'node_modules'));

  if (!missing.length && !services.length && emulator) return 0;
  const lines = ['npm test: the test suite cannot run here yet:'];
  if (missing.length) {
    lines.push(`  missing tools: ${missing.join('; ')}`);
    lines.push(`  install them (Debian/Ubuntu, as root): apt-get update && apt-get install -y ${[...packages].join(' ')}`);
  }
  if (!emulator) lines.push('  the GCS emulator is not installed: npm ci --prefix test/emulators/gcs --no-audit --no-fund');
  for (const s of services) lines.push(`  ${s}`);
  if (services.length) {
    lines.push('  the tests need PostgreSQL on 127.0.0.1:5432 (superuser postgres, trust authentication from 127.0.0.1) and');
    lines.push('  MariaDB on 127.0.0.1:3306 (root, no password); TEST_PG_URL and TEST_MYSQL_HOST/_PORT/_USER point elsewhere');
  }
  lines.push('  or, on a Debian machine as root, `bash .ci/run` installs and starts all of it and runs the tests');
  lines.push(`  (checked in ${Date.now() - started} ms; DR_TEST_SKIP_PREREQUISITES=1 runs the suite anyway)`);
  process.stderr.write(`${lines.join('\n')}\n`);
  return 1;
}

main().then(
  (code) => process.exit(code),
  (error) => {
    process.stderr.write(`npm test: the prerequisites check failed: ${error.stack || error}\n`);
    process.exit(1);
  },
);
