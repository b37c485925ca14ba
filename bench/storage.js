#!/usr/bin/env node
'use strict';
/**
 * Upload and download throughput of each storage driver against the emulators that run on this machine (s3rver,
 * Azurite, the firebase-tools storage emulator when test/emulators/gcs is installed), with the local driver as the
 * reference. Each run streams BENCH_STORAGE_MB MiB of random bytes through a staged upload (published), then reads
 * it back; both directions are hashed, and the round trip must match. Best and median of BENCH_REPEAT runs.
 *
 * The emulators are the bottleneck (they are single-process Node servers that copy parts and blocks around), so
 * these figures say how the drivers behave, not what S3, Azure or GCS would give.
 *
 * Run after `npm run build`:  node bench/storage.js
 */
const { spawn } = require('node:child_process');
const { createHash, randomFillSync } = require('node:crypto');
const fs = require('node:fs');
const net = require('node:net');
const os = require('node:os');
const path = require('node:path');
const { Readable } = require('node:stream');
const { pipeline } = require('node:stream/promises');

const REPO = path.resolve(__dirname, '..');
const MiB = 1 << 20;
const SIZE_MB = Number(process.env.BENCH_STORAGE_MB || 256);
const REPEAT = Number(process.env.BENCH_REPEAT || 3);
const AZURITE_ACCOUNT = 'devstoreaccount1';
const AZURITE_KEY = 'Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw==';

const log = (m) => process.stderr.write(`[storage bench] ${m}\n`);
const dist = (p) => require(path.join(REPO, 'dist', p));

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

/** Spawns a server process and waits until `ready()` resolves true. @returns {{stop(): Promise<void>}} */
async function startProcess(name, args, env, ready) {
  const child = spawn(process.execPath, args, { env: { PATH: process.env.PATH, HOME: process.env.HOME, ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
  let output = '';
  child.stdout.on('data', (d) => (output += d));
  child.stderr.on('data', (d) => (output += d));
  const deadline = Date.now() + 60_000;
  while (!(await ready().catch(() => false))) {
    if (child.exitCode !== null) throw new Error(`${name} exited: ${output.slice(-2000)}`);
    if (Date.now() > deadline) throw new Error(`${name} not ready: ${output.slice(-2000)}`);
    await new Promise((r) => setTimeout(r, 200));
  }
  return {
    stop: async () => {
      if (child.exitCode !== null) return;
      const exited = new Promise((r) => child.once('exit', r));
      child.kill('SIGKILL');
      await exited;
    },
  };
}

async function startS3() {
  const port = await freePort();
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'dr-bench-s3-'));
  const server = await startProcess('s3rver', [path.join(REPO, 'test', 'support', 's3rver-process.js'), String(port), dir, 'bench'],
    { NODE_OPTIONS: '--openssl-legacy-provider' }, async () => (await fetch(`http://127.0.0.1:${port}/bench`)).status < 500);
  process.env.DR_BENCH_S3_KEY = 'S3RVER';
  const { S3StorageDriver } = dist('storage/drivers/s3.driver');
  const settings = { bucket: 'bench', endpoint: `http://127.0.0.1:${port}`, forcePathStyle: true, region: 'us-east-1',
    accessKeyIdSecret: 'env:DR_BENCH_S3_KEY', secretAccessKeySecret: 'env:DR_BENCH_S3_KEY', partSizeBytes: 16 * MiB, queueSize: 4 };
  return { name: 's3 (s3rver 3.7.1)', detail: 'parts 16 MiB x 4', driver: new S3StorageDriver(settings, secrets()), stop: async () => { await server.stop(); fs.rmSync(dir, { recursive: true, force: true }); } };
}

async function startAzure() {
  const port = await freePort();
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'dr-bench-azurite-'));
  const main = require.resolve('azurite/dist/src/blob/main.js', { paths: [REPO] });
  const accountUrl = `http://127.0.0.1:${port}/${AZURITE_ACCOUNT}`;
  const server = await startProcess('azurite', [main, '--blobHost', '127.0.0.1', '--blobPort', String(port), '--location', dir, '--skipApiVersionCheck', '--loose', '--silent', '--disableTelemetry'],
    {}, async () => { await fetch(`${accountUrl}?comp=list`); return true; });
  const { BlobServiceClient, StorageSharedKeyCredential } = require(require.resolve('@azure/storage-blob', { paths: [REPO] }));
  await new BlobServiceClient(accountUrl, new StorageSharedKeyCredential(AZURITE_ACCOUNT, AZURITE_KEY)).getContainerClient('bench').createIfNotExists();
  process.env.DR_BENCH_AZURE_KEY = AZURITE_KEY;
  const { AzureBlobStorageDriver } = dist('storage/drivers/azure-blob.driver');
  const settings = { container: 'bench', accountUrl, accountName: AZURITE_ACCOUNT, accountKeySecret: 'env:DR_BENCH_AZURE_KEY', blockSizeBytes: 8 * MiB, concurrency: 4 };
  return { name: 'azure-blob (Azurite 3.35)', detail: 'blocks 8 MiB x 4', driver: new AzureBlobStorageDriver(settings, secrets()), stop: async () => { await server.stop(); fs.rmSync(dir, { recursive: true, force: true }); } };
}

async function startGcs() {
  if (!fs.existsSync(path.join(REPO, 'test', 'emulators', 'gcs', 'node_modules', 'firebase-tools'))) {
    log('GCS emulator not installed (npm ci --prefix test/emulators/gcs): skipped');
    return null;
  }
  const port = await freePort();
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'dr-bench-gcs-'));
  const server = await startProcess('gcs emulator', [path.join(REPO, 'test', 'support', 'gcs-emulator-server.js'), String(port), dir], {},
    async () => (await fetch(`http://127.0.0.1:${port}/storage/v1/b/bench/o`)).status < 500);
  const { GcsStorageDriver } = dist('storage/drivers/gcs.driver');
  const settings = { bucket: 'bench', apiEndpoint: `http://127.0.0.1:${port}`, anonymous: true, projectId: 'bench', chunkSizeBytes: 16 * MiB };
  return { name: 'gcs (firebase-tools 15.34.2 emulator)', detail: 'chunks 16 MiB', driver: new GcsStorageDriver(settings, secrets()), stop: async () => { await server.stop(); fs.rmSync(dir, { recursive: true, force: true }); } };
}

function startLocal() {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'dr-bench-local-'));
  const { LocalStorageDriver } = dist('storage/drivers/local.driver');
  return { name: 'local (reference, fsync on publish)', detail: 'tmp dir', driver: new LocalStorageDriver(dir), stop: async () => fs.rmSync(dir, { recursive: true, force: true }) };
}

function secrets() {
  const { SecretResolver } = dist('secrets/secret-resolver');
  return SecretResolver.trustingEveryReference(); // the bench's own references, not a request's
}

/** One round trip: upload (staged + publish) and read back, both hashed. */
async function roundTrip(driver, key) {
  const total = SIZE_MB * MiB;
  const up = createHash('sha256');
  let sent = 0;
  const source = new Readable({
    highWaterMark: MiB,
    read() {
      if (sent >= total) return void this.push(null);
      const chunk = randomFillSync(Buffer.allocUnsafe(Math.min(MiB, total - sent)));
      sent += chunk.length;
      up.update(chunk);
      this.push(chunk);
    },
  });
  const rssBefore = process.memoryUsage().rss;
  let rssPeak = rssBefore;
  const sampler = setInterval(() => (rssPeak = Math.max(rssPeak, process.memoryUsage().rss)), 100);
  const t0 = process.hrtime.bigint();
  const upload = await driver.createUpload(key);
  await pipeline(source, upload.stream);
  await upload.publish();
  const uploadMs = Number(process.hrtime.bigint() - t0) / 1e6;
  const down = createHash('sha256');
  const t1 = process.hrtime.bigint();
  for await (const chunk of await driver.read(key)) down.update(chunk);
  const downloadMs = Number(process.hrtime.bigint() - t1) / 1e6;
  clearInterval(sampler);
  if (down.digest('hex') !== up.digest('hex')) throw new Error(`${key}: the bytes read back differ from those written`);
  await driver.delete(key);
  return { upload: SIZE_MB / (uploadMs / 1000), download: SIZE_MB / (downloadMs / 1000), rssGrowthMb: (rssPeak - rssBefore) / MiB };
}

const median = (xs) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];
const r1 = (x) => Math.round(x * 10) / 10;

async function main() {
  if (!fs.existsSync(path.join(REPO, 'dist', 'storage', 's3.driver.js'))) throw new Error('run `npm run build` first');
  const stores = [startLocal(), await startS3(), await startAzure(), await startGcs()].filter(Boolean);
  const rows = [];
  try {
    for (const store of stores) {
      const runs = [];
      for (let i = 0; i < REPEAT; i++) {
        const run = await roundTrip(store.driver, `bench/run-${i}.bin`);
        log(`${store.name}: up ${r1(run.upload)} MiB/s, down ${r1(run.download)} MiB/s, rss +${r1(run.rssGrowthMb)} MB`);
        runs.push(run);
      }
      rows.push([store.name, store.detail,
        `${r1(Math.max(...runs.map((r) => r.upload)))} / ${r1(median(runs.map((r) => r.upload)))}`,
        `${r1(Math.max(...runs.map((r) => r.download)))} / ${r1(median(runs.map((r) => r.download)))}`,
        r1(Math.max(...runs.map((r) => r.rssGrowthMb)))]);
    }
  } finally {
    for (const store of stores) await store.stop().catch(() => undefined);
  }
  const headers = ['store', 'settings', 'upload MiB/s best / median', 'download+sha256 MiB/s best / median', 'max RSS growth MB'];
  const widths = headers.map((h, i) => Math.max(h.length, ...rows.map((r) => String(r[i]).length)));
  const line = (cells) => cells.map((c, i) => String(c).padEnd(widths[i])).join('  ');
  process.stdout.write(`Storage drivers against local emulators — ${new Date().toISOString()}; ${SIZE_MB} MiB per run, ${REPEAT} runs, ${os.cpus().length} CPUs\n`);
  process.stdout.write(`${[line(headers), widths.map((w) => '-'.repeat(w)).join('  '), ...rows.map(line)].join('\n')}\n`);
  process.stdout.write('Every run hashed both ways and matched. The emulators bound these figures; they do not predict cloud throughput.\n');
}

main().catch((error) => {
  process.stderr.write(`storage bench failed: ${error.stack ?? error.message}\n`);
  process.exit(1);
});
