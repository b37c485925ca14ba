#!/usr/bin/env node
'use strict';
/**
 * What age encryption costs, measured in one run on this machine (run after `npm run build`):
 *
 * 1. Payload throughput, MiB/s of plaintext, encrypting and decrypting `BENCH_AGE_MB` MiB (default 512) from a file
 *    in the page cache to /dev/null: the age-encryption library's own STREAM (pure JavaScript, what the service
 *    used before issue 15), the service's (dist/pipeline/age-encryption.js: header by the library, payload by
 *    node:crypto), and the `age` command (Go). Runs alternate, the order rotating every repeat.
 * 2. The artifact pipeline on the bench tree (bench/run.js's `.bench/tree`, `BENCH_TREE_MB`): `tar -c` →
 *    ArtifactPipeline.store (zstd -3, then age or not) → file, and file → openRaw → `tar -x`, encrypted and plain
 *    back to back (order alternating), `BENCH_REPEAT` pairs; and the same pairs of the standard pipelines
 *    (`tar | zstd -3 [| age -r]`, `[age -d |] zstd -dc | tar -x`). The figure judged is the median over pairs of
 *    encrypted / plain time (target ≤ 1.15). This is the pipeline alone: the service's job adds bookkeeping (file
 *    index, manifest, records) to both sides, so its ratio is lower than this one.
 *
 * Progress on stderr, the tables on stdout, everything in `.bench/age-results.json`. Knobs: `BENCH_AGE_MB`,
 * `BENCH_TREE_MB`, `BENCH_REPEAT`, `BENCH_DIR`, `BENCH_AGE_ONLY` (`payload` or `pipeline`), `DR_ZSTD_WORKERS`.
 */
const fs = require('node:fs');
const fsp = require('node:fs/promises');
const path = require('node:path');
const { spawn } = require('node:child_process');
const { Duplex, Readable, Writable } = require('node:stream');
const { pipeline } = require('node:stream/promises');
const { CONFIG, log, msSince, run, sq, prepareTree } = require('./run');

const REPO = path.resolve(__dirname, '..');
const MiB = 1 << 20;
const AGE_MB = Number(process.env.BENCH_AGE_MB || 512);
const TARGET_RATIO = 1.15;

const median = (values) => {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted.length ? sorted[Math.floor(sorted.length / 2)] : null;
};
const round = (value, digits = 2) => (value == null ? null : Math.round(value * 10 ** digits) / 10 ** digits);

/** Wall and CPU time of an in-process async step (CPU: this process's user + system). */
async function timed(step) {
  const cpu = process.cpuUsage();
  const start = process.hrtime.bigint();
  await step();
  const used = process.cpuUsage(cpu);
  return { ms: msSince(start), cpuMs: (used.user + used.system) / 1000 };
}

/** Wall time of a bash command line (pipefail). */
async function timedShell(script) {
  const start = process.hrtime.bigint();
  await run('bash', ['-c', `set -eo pipefail\n${script}`]);
  return { ms: msSince(start), cpuMs: null };
}

const devNull = () => fs.createWriteStream('/dev/null');
const readFile = (file) => fs.createReadStream(file, { highWaterMark: MiB });

// ---------------------------------------------------------------------------------------------------------------
// 1. Payload throughput

/** The implementation before issue 15: the library's Web streams, as src/pipeline/age-encryption.ts had them. */
async function libraryVariant() {
  const { Encrypter, Decrypter } = await import('age-encryption');
  return {
    async encrypt(recipient) {
      const encrypter = new Encrypter();
      encrypter.addRecipient(recipient);
      const plaintext = new TransformStream();
      const ciphertext = await encrypter.encrypt(plaintext.readable);
      return Duplex.fromWeb({ writable: plaintext.writable, readable: ciphertext }, { objectMode: false });
    },
    async decrypt(source, identity) {
      const decrypter = new Decrypter();
      decrypter.addIdentity(identity);
      return Readable.fromWeb(await decrypter.decrypt(Readable.toWeb(source)), { objectMode: false });
    },
  };
}

/** The service's build. */
function serviceVariant() {
  const age = require(path.join(REPO, 'dist', 'pipeline', 'age-encryption.js'));
  return {
    encrypt: (recipient) => age.createEncryptStream({ recipients: [recipient] }),
    decrypt: (source, identity) => age.decryptStream(source, { identities: [identity], passphrases: [] }),
  };
}

async function payloadThroughput(keys) {
  const plain = path.join(CONFIG.benchDir, 'age-plain.bin');
  if ((await fsp.stat(plain).catch(() => null))?.size !== AGE_MB * MiB) {
    log(`writing ${AGE_MB} MiB of random bytes to ${plain}`);
    await run('bash', ['-c', `head -c ${AGE_MB * MiB} /dev/urandom > ${sq(plain)}`]);
  }
  const variants = { library: await libraryVariant(), service: serviceVariant() };
  const files = { library: path.join(CONFIG.benchDir, 'age-library.age'), service: path.join(CONFIG.benchDir, 'age-service.age'), age: path.join(CONFIG.benchDir, 'age-binary.age') };
  // one untimed encryption each: the files the decryptions read (and a check that each decrypts the others')
  for (const name of ['library', 'service']) await pipeline(readFile(plain), await variants[name].encrypt(keys.recipient), fs.createWriteStream(files[name]));
  await run('age', ['-r', keys.recipient, '-o', files.age, plain]);
  await run('bash', ['-c', `cmp <(age -d -i ${sq(CONFIG.ageKeyFile)} ${sq(files.service)}) ${sq(plain)}`]);
  await pipeline(await variants.service.decrypt(readFile(files.age), keys.identity), new Writable({ write: (_c, _e, cb) => cb() }));

  const steps = {
    'encrypt library': () => timed(async () => pipeline(readFile(plain), await variants.library.encrypt(keys.recipient), devNull())),
    'encrypt service': () => timed(async () => pipeline(readFile(plain), await variants.service.encrypt(keys.recipient), devNull())),
    'encrypt age': () => timedShell(`age -r ${sq(keys.recipient)} -o /dev/null ${sq(plain)}`),
    'decrypt library': () => timed(async () => pipeline(await variants.library.decrypt(readFile(files.age), keys.identity), devNull())),
    'decrypt service': () => timed(async () => pipeline(await variants.service.decrypt(readFile(files.age), keys.identity), devNull())),
    'decrypt age': () => timedShell(`age -d -i ${sq(CONFIG.ageKeyFile)} -o /dev/null ${sq(files.age)}`),
  };
  const names = Object.keys(steps);
  const runs = Object.fromEntries(names.map((n) => [n, []]));
  for (let r = 0; r < CONFIG.repeat; r++) {
    log(`payload repeat ${r + 1}/${CONFIG.repeat}`);
    for (let i = 0; i < names.length; i++) {
      const name = names[(i + r) % names.length];
      runs[name].push(await steps[name]());
    }
  }
  const mibps = (ms) => round((AGE_MB * 1000) / ms, 0);
  const rows = names.map((name) => ({
    step: name,
    bestMiBps: mibps(Math.min(...runs[name].map((x) => x.ms))),
    medianMiBps: mibps(median(runs[name].map((x) => x.ms))),
    medianCpuMs: runs[name][0].cpuMs == null ? null : round(median(runs[name].map((x) => x.cpuMs)), 0),
  }));
  const ratio = (a, b) => round(median(runs[a].map((x, i) => runs[b][i].ms / x.ms)));
  const ratios = {
    'encrypt: service speed / library speed (median of repeats)': ratio('encrypt service', 'encrypt library'),
    'decrypt: service speed / library speed': ratio('decrypt service', 'decrypt library'),
    'encrypt: service speed / age speed': ratio('encrypt service', 'encrypt age'),
    'decrypt: service speed / age speed': ratio('decrypt service', 'decrypt age'),
  };
  return { mb: AGE_MB, rows, ratios, runs };
}

// ---------------------------------------------------------------------------------------------------------------
// 2. The artifact pipeline, encrypted vs plain

/** `tar -c` of the tree into ArtifactPipeline.store, written to `file`. @returns {sha256, storedBytes} */
async function storeTree(artifactPipeline, file, encryption) {
  const tar = spawn('tar', ['-cf', '-', '-C', CONFIG.treeDir, '.'], { stdio: ['ignore', 'pipe', 'inherit'] });
  const exited = new Promise((resolve, reject) => tar.once('close', (code) => (code === 0 ? resolve() : reject(new Error(`tar -c exited ${code}`)))));
  const stored = await artifactPipeline.store(tar.stdout, fs.createWriteStream(file), { encryption });
  await exited;
  return stored;
}

/** openRaw of `file` into `tar -x` in a fresh `dir`. */
async function restoreTree(artifactPipeline, file, stored, decryption, dir) {
  await fsp.rm(dir, { recursive: true, force: true });
  await fsp.mkdir(dir, { recursive: true });
  const raw = await artifactPipeline.openRaw(readFile(file), 'bench', stored.sha256, { decryption, expectedSize: stored.storedBytes });
  const tar = spawn('tar', ['-xf', '-', '-C', dir], { stdio: ['pipe', 'ignore', 'inherit'] });
  const exited = new Promise((resolve, reject) => tar.once('close', (code) => (code === 0 ? resolve() : reject(new Error(`tar -x exited ${code}`)))));
  await pipeline(raw, tar.stdin);
  await exited;
}

async function pipelineOverhead(keys) {
  const { ArtifactPipeline } = require(path.join(REPO, 'dist', 'pipeline', 'artifact-pipeline.js'));
  const artifactPipeline = new ArtifactPipeline({ zstdLevel: 3, zstdWorkers: Number(process.env.DR_ZSTD_WORKERS || 1) });
  const dir = (name) => path.join(CONFIG.benchDir, `age-${name}`);
  const plainFile = path.join(CONFIG.benchDir, 'age-tree.tar.zst');
  const encFile = path.join(CONFIG.benchDir, 'age-tree.tar.zst.age');
  const stdPlain = path.join(CONFIG.benchDir, 'age-std-tree.tar.zst');
  const stdEnc = path.join(CONFIG.benchDir, 'age-std-tree.tar.zst.age');
  const encryption = { recipients: [keys.recipient] };
  const decryption = { identities: [keys.identity], passphrases: [] };
  const stored = {};
  const pairs = { 'service backup': [], 'service restore': [], 'standard backup': [], 'standard restore': [] };
  const pair = async (name, r, plain, encrypted) => {
    const order = r % 2 === 0 ? ['plain', 'enc'] : ['enc', 'plain'];
    const result = {};
    for (const which of order) result[which] = await (which === 'plain' ? plain() : encrypted());
    pairs[name].push({ plainMs: round(result.plain.ms, 0), encMs: round(result.enc.ms, 0), plainCpuMs: round(result.plain.cpuMs, 0), encCpuMs: round(result.enc.cpuMs, 0), ratio: result.enc.ms / result.plain.ms });
    log(`  ${name}: plain ${round(result.plain.ms, 0)} ms, encrypted ${round(result.enc.ms, 0)} ms (${round(result.enc.ms / result.plain.ms)})`);
  };
  for (let r = 0; r < CONFIG.repeat; r++) {
    log(`pipeline repeat ${r + 1}/${CONFIG.repeat}`);
    await pair(
      'service backup',
      r,
      () => timed(async () => (stored.plain = await storeTree(artifactPipeline, plainFile, null))),
      () => timed(async () => (stored.enc = await storeTree(artifactPipeline, encFile, encryption))),
    );
    await pair(
      'standard backup',
      r,
      () => timedShell(`tar -cf - -C ${sq(CONFIG.treeDir)} . | zstd -3 -q -f -o ${sq(stdPlain)}`),
      () => timedShell(`tar -cf - -C ${sq(CONFIG.treeDir)} . | zstd -3 -q | age -r ${sq(keys.recipient)} -o ${sq(stdEnc)}`),
    );
    await pair(
      'service restore',
      r,
      () => timed(() => restoreTree(artifactPipeline, plainFile, stored.plain, null, dir('restore-plain'))),
      () => timed(() => restoreTree(artifactPipeline, encFile, stored.enc, decryption, dir('restore-enc'))),
    );
    await pair(
      'standard restore',
      r,
      () => timedShell(`rm -rf ${sq(dir('std-plain'))} && mkdir ${sq(dir('std-plain'))} && zstd -dc ${sq(stdPlain)} | tar -xf - -C ${sq(dir('std-plain'))}`),
      () => timedShell(`rm -rf ${sq(dir('std-enc'))} && mkdir ${sq(dir('std-enc'))} && age -d -i ${sq(CONFIG.ageKeyFile)} ${sq(stdEnc)} | zstd -dc | tar -xf - -C ${sq(dir('std-enc'))}`),
    );
  }
  const check = await run('diff', ['-r', '--no-dereference', CONFIG.treeDir, dir('restore-enc')], { allowFail: true });
  for (const name of ['restore-plain', 'restore-enc', 'std-plain', 'std-enc']) await fsp.rm(dir(name), { recursive: true, force: true });
  for (const file of [plainFile, encFile, stdPlain, stdEnc]) await fsp.rm(file, { force: true });
  const rows = Object.entries(pairs).map(([name, list]) => ({
    pipeline: name,
    medianPlainMs: median(list.map((p) => p.plainMs)),
    medianEncMs: median(list.map((p) => p.encMs)),
    pairRatios: list.map((p) => round(p.ratio)),
    medianRatio: round(median(list.map((p) => p.ratio))),
    medianCpuRatio: list[0].plainCpuMs == null ? null : round(median(list.map((p) => p.encCpuMs / p.plainCpuMs))),
  }));
  return { rows, pairs, encryptedRestoreDiff: check.code === 0 ? 'ok' : `mismatch: ${check.stdout.split('\n').slice(0, 3).join(' | ')}`, storedBytes: { plain: stored.plain?.storedBytes, encrypted: stored.enc?.storedBytes } };
}

// ---------------------------------------------------------------------------------------------------------------

function table(rows) {
  const keys = Object.keys(rows[0]);
  const cell = (v) => (Array.isArray(v) ? v.join(', ') : v == null ? '-' : String(v));
  return [`| ${keys.join(' | ')} |`, `|${keys.map(() => '---').join('|')}|`, ...rows.map((r) => `| ${keys.map((k) => cell(r[k])).join(' | ')} |`)].join('\n');
}

async function main() {
  if (!fs.existsSync(path.join(REPO, 'dist', 'pipeline', 'age-encryption.js'))) throw new Error('run `npm run build` first');
  await fsp.mkdir(CONFIG.benchDir, { recursive: true });
  const keyFile = CONFIG.ageKeyFile;
  if (!fs.existsSync(keyFile)) await run('age-keygen', ['-o', keyFile]);
  const keyText = await fsp.readFile(keyFile, 'utf8');
  const keys = { recipient: keyText.match(/public key: (age1[0-9a-z]+)/)[1], identity: keyText.split('\n').find((l) => l.startsWith('AGE-SECRET-KEY-1')) };
  const startedAt = new Date().toISOString();
  const load = fs.readFileSync('/proc/loadavg', 'utf8').split(' ').slice(0, 3).join(' ');
  const only = process.env.BENCH_AGE_ONLY; // 'payload' or 'pipeline'
  const payload = only === 'pipeline' ? null : await payloadThroughput(keys);
  let overhead = null;
  if (only !== 'payload') {
    const tree = await prepareTree();
    overhead = { tree, ...(await pipelineOverhead(keys)) };
  }
  const results = { startedAt, finishedAt: new Date().toISOString(), loadAverageAtStart: load, repeat: CONFIG.repeat, node: process.version, payload, overhead };
  await fsp.writeFile(path.join(CONFIG.benchDir, 'age-results.json'), `${JSON.stringify(results, null, 2)}\n`);
  const out = [`age bench, ${startedAt}, load average at start ${load}, ${CONFIG.repeat} repeats, Node ${process.version}`];
  if (payload) {
    out.push('', `Payload throughput (${AGE_MB} MiB, file in page cache → /dev/null):`, '', table(payload.rows), '');
    for (const [k, v] of Object.entries(payload.ratios)) out.push(`- ${k}: ${v}`);
  }
  if (overhead) {
    out.push('', `Encrypted / plain, back-to-back pairs (tree: ${overhead.tree.files ?? '?'} files, ${Math.round((overhead.tree.bytes ?? 0) / MiB)} MiB):`, '', table(overhead.rows), '');
    for (const row of overhead.rows.filter((r) => r.pipeline.startsWith('service'))) {
      out.push(`- ${row.pipeline}, encrypted / plain: ${row.medianRatio} (target <= ${TARGET_RATIO}: ${row.medianRatio != null && row.medianRatio <= TARGET_RATIO ? 'PASS' : 'MISS'})`);
    }
    out.push(`- encrypted restore diff -r: ${overhead.encryptedRestoreDiff}`);
  }
  process.stdout.write(`${out.join('\n')}\n`);
  if (overhead && overhead.encryptedRestoreDiff !== 'ok') process.exitCode = 1;
}

if (!process.execArgv.includes('--no-incremental-marking')) {
  // The service runs with this flag (see package.json `start`; V8 refuses it in NODE_OPTIONS), and so must the
  // pipeline measured here: without it, GC of the external buffers takes a share that is not the service's.
  const child = spawn(process.execPath, ['--no-incremental-marking', __filename, ...process.argv.slice(2)], { stdio: 'inherit' });
  child.once('close', (code, signal) => process.exit(code ?? (signal ? 1 : 0)));
} else {
  main().catch((error) => {
    process.stderr.write(`bench failed: ${error.stack ?? error.message}\n`);
    process.exit(1);
  });
}
