#!/usr/bin/env node
'use strict';
/**
 * Benchmark of incremental filesystem backups against `restic backup`, in the same run, on the same tree.
 *
 * A copy of bench/run.js's ~1 GB tree (BENCH_TREE_MB) is backed up FULL through the service (HTTP API) and by
 * restic into two fresh repositories: one made by a plain `restic init` (restic's default; in restic 0.14 that is
 * repository format 2, zstd compression `auto`) and one by `restic init --repository-version 1` (the old format,
 * no compression). The format of each is read back from `restic cat config` and reported. Then BENCH_REPEAT times: about 1 % of the files change
 * (appended to, rewritten, added, deleted, renamed), and the service's INCREMENTAL backup and restic's next
 * snapshot of each repository run back to back (the order rotating), each timed. Stored bytes are the growth of
 * what each keeps on disk (`du -sb` of the backup's directory for the service: artifact, details, deletion and move lists,
 * manifest, signature; of the repository for restic). The last state is restored from the service's chain and
 * compared with the tree (`diff -r`).
 *
 * Run after `npm run build`:  node bench/incremental.js   (knobs: see bench/README.md)
 */
const fsp = require('node:fs/promises');
const path = require('node:path');
const bench = require('./run');

const { CONFIG, log, msSince, mb, run } = bench;
const INC = {
  tree: path.join(CONFIG.benchDir, 'inc-tree'),
  resticDefault: path.join(CONFIG.benchDir, 'restic-default'),
  resticV1: path.join(CONFIG.benchDir, 'restic-v1'),
  resticCache: path.join(CONFIG.benchDir, 'restic-cache'),
  restore: path.join(CONFIG.restoreRoot, 'inc-restore'),
  results: path.join(CONFIG.benchDir, 'incremental-results.json'),
  changePercent: Number(process.env.BENCH_CHANGE_PERCENT || 1),
};
const RESTIC_ENV = { ...process.env, RESTIC_PASSWORD: 'dr-bench-restic-password', RESTIC_CACHE_DIR: INC.resticCache };
const TARGETS = { timeRatio: 1.0, bytesRatio: 1.2 };

/** `du -sb` of a path, bytes. */
async function du(target) {
  return Number((await run('du', ['-sb', target])).stdout.split('\t')[0]);
}

/** Every regular file below `root`, relative, sorted (deterministic choice of what changes). */
async function listFiles(root) {
  const out = (await run('find', ['.', '-type', 'f', '-printf', '%P\\n'], { cwd: root })).stdout.trim().split('\n');
  return out.filter(Boolean).sort();
}

/**
 * Changes about `percent` % of the files, as a day of use would: 40 % appended to (16..256 KiB of the tree's mixed content),
 * 20 % rewritten (same size, new content), 20 % added (new files of the tree's size mix), 10 % deleted,
 * 10 % renamed within the tree. @returns the counts
 */
async function changeTree(root, seed, percent) {
  const random = bench.prng(seed);
  const pool = bench.buildTextPool(random);
  const files = await listFiles(root);
  const n = Math.max(10, Math.round((files.length * percent) / 100));
  const pick = new Set();
  while (pick.size < Math.min(n, files.length)) pick.add(files[Math.floor(random() * files.length)]);
  const chosen = [...pick];
  const counts = { appended: 0, rewritten: 0, added: 0, deleted: 0, renamed: 0, bytesWritten: 0 };
  for (const [i, rel] of chosen.entries()) {
    const file = path.join(root, rel);
    const kind = i % 10;
    if (kind < 4) {
      const extra = bench.fileContent(16384 + Math.floor(random() * 245760), random, pool);
      await fsp.appendFile(file, extra);
      counts.appended++;
      counts.bytesWritten += extra.length;
    } else if (kind < 6) {
      const size = (await fsp.stat(file)).size;
      await fsp.writeFile(file, bench.fileContent(size, random, pool));
      counts.rewritten++;
      counts.bytesWritten += size;
    } else if (kind < 8) {
      const size = bench.randomFileSize(random);
      await fsp.writeFile(path.join(path.dirname(file), `new-${seed}-${i}.dat`), bench.fileContent(size, random, pool));
      counts.added++;
      counts.bytesWritten += size;
    } else if (kind < 9) {
      await fsp.rm(file);
      counts.deleted++;
    } else {
      await fsp.rename(file, path.join(root, path.dirname(rel), `renamed-${seed}-${i}-${path.basename(rel)}`));
      counts.renamed++;
    }
  }
  return { files: files.length, changed: chosen.length, ...counts };
}

/** Times `restic backup` of the tree into `repo`. @returns {ms, addedBytes (repo growth), snapshot output} */
async function resticBackup(repo) {
  const before = await du(repo);
  const start = process.hrtime.bigint();
  const result = await run('restic', ['-r', repo, 'backup', '--quiet', '--json', INC.tree], { env: RESTIC_ENV });
  const ms = msSince(start);
  const summary = result.stdout.trim().split('\n').map((l) => { try { return JSON.parse(l); } catch { return null; } }).find((l) => l?.message_type === 'summary');
  return { ms, storedBytes: (await du(repo)) - before, dataAdded: summary?.data_added ?? null };
}

/** Runs a service backup of the plan (type FULL or INCREMENTAL). @returns {ms, jobMs, storedBytes, record} */
async function serviceBackup(service, planId, type) {
  const { ms, record } = await bench.runServiceJob(service, 'backups', { planId, type });
  if (record.status !== 'COMPLETED') throw new Error(`service ${type} backup ${record.id} ${record.status}: ${record.error}`);
  const jobMs = new Date(record.finishedAt).getTime() - new Date(record.createdAt).getTime();
  const storedBytes = await du(path.join(CONFIG.serviceDataDir, 'backups', record.id));
  return { ms, jobMs, storedBytes, record };
}

const ratio = (a, b) => (a != null && b ? Math.round((a / b) * 100) / 100 : null);
const median = (xs) => {
  const s = xs.filter((x) => x != null).sort((a, b) => a - b);
  return s.length ? (s.length % 2 ? s[(s.length - 1) / 2] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2) : null;
};

async function main() {
  await bench.checkPrerequisites();
  const { code } = await run('bash', ['-c', 'command -v restic'], { allowFail: true });
  if (code !== 0) throw new Error('restic is not on PATH');
  const resticVersion = (await run('restic', ['version'])).stdout.trim();
  const tree = await bench.prepareTree();
  await bench.resetServiceState();
  for (const dir of [INC.tree, INC.resticDefault, INC.resticV1, INC.resticCache]) await fsp.rm(dir, { recursive: true, force: true });
  log(`copying the tree to ${INC.tree}`);
  await run('cp', ['-a', CONFIG.treeDir, INC.tree]);
  await run('restic', ['init', '-r', INC.resticDefault], { env: RESTIC_ENV });
  await run('restic', ['init', '--repository-version', '1', '-r', INC.resticV1], { env: RESTIC_ENV });
  const formatOf = async (repo) => JSON.parse((await run('restic', ['-r', repo, 'cat', 'config'], { env: RESTIC_ENV })).stdout).version;
  const formats = { resticDefault: await formatOf(INC.resticDefault), resticV1: await formatOf(INC.resticV1) };
  await run('sync', []);

  let service;
  const results = { startedAt: new Date().toISOString(), machine: await bench.machineInfo(), restic: resticVersion, resticRepositoryFormats: formats, tree: { files: tree.files, bytes: tree.bytes }, full: {}, incrementals: [] };
  try {
    service = await bench.startService();
    const plan = await bench.api(service, 'POST', '/backup-plans', { name: `bench-incremental-${Date.now()}`, engine: 'filesystem', source: { path: INC.tree }, incrementalsPerFull: 1000 });
    log(`full backups: service, restic default (repository format ${formats.resticDefault}), restic --repository-version 1`);
    const svcFull = await serviceBackup(service, plan.id, 'FULL');
    const defaultFull = await resticBackup(INC.resticDefault);
    const v1Full = await resticBackup(INC.resticV1);
    results.full = {
      service: { ms: Math.round(svcFull.ms), jobMs: svcFull.jobMs, storedBytes: svcFull.storedBytes, files: svcFull.record.fileCount },
      resticDefault: { ms: Math.round(defaultFull.ms), storedBytes: defaultFull.storedBytes },
      resticV1: { ms: Math.round(v1Full.ms), storedBytes: v1Full.storedBytes },
    };
    log(`full: service ${Math.round(svcFull.ms)} ms ${mb(svcFull.storedBytes)} MB; restic default ${Math.round(defaultFull.ms)} ms ${mb(defaultFull.storedBytes)} MB; restic v1 ${Math.round(v1Full.ms)} ms ${mb(v1Full.storedBytes)} MB`);
    let last;
    for (let r = 0; r < CONFIG.repeat; r++) {
      const change = await changeTree(INC.tree, 1000 + r, INC.changePercent);
      await run('sync', []);
      log(`repeat ${r + 1}: changed ${change.changed} of ${change.files} files (${JSON.stringify(change)})`);
      const runs = {};
      const order = [['service', () => serviceBackup(service, plan.id, 'INCREMENTAL')], ['resticDefault', () => resticBackup(INC.resticDefault)], ['resticV1', () => resticBackup(INC.resticV1)]];
      for (let k = 0; k < order.length; k++) {
        const [name, fn] = order[(k + r) % order.length];
        runs[name] = await fn();
      }
      last = runs.service.record;
      if (last.type !== 'INCREMENTAL') throw new Error(`the service took a ${last.type} backup: ${JSON.stringify(last.warnings)}`);
      const row = {
        change,
        service: { ms: Math.round(runs.service.ms), jobMs: runs.service.jobMs, storedBytes: runs.service.storedBytes, rawBytes: last.sizeBytes },
        resticDefault: { ms: Math.round(runs.resticDefault.ms), storedBytes: runs.resticDefault.storedBytes, dataAdded: runs.resticDefault.dataAdded },
        resticV1: { ms: Math.round(runs.resticV1.ms), storedBytes: runs.resticV1.storedBytes, dataAdded: runs.resticV1.dataAdded },
      };
      row.ratios = {
        timeVsDefault: ratio(runs.service.ms, runs.resticDefault.ms),
        timeVsV1: ratio(runs.service.ms, runs.resticV1.ms),
        bytesVsDefault: ratio(runs.service.storedBytes, runs.resticDefault.storedBytes),
        bytesVsV1: ratio(runs.service.storedBytes, runs.resticV1.storedBytes),
      };
      results.incrementals.push(row);
      log(`repeat ${r + 1}: ${JSON.stringify(row.service)} restic default ${JSON.stringify(row.resticDefault)} restic v1 ${JSON.stringify(row.resticV1)} ratios ${JSON.stringify(row.ratios)}`);
    }
    log('restoring the last incremental from its chain and comparing with the tree');
    await fsp.rm(INC.restore, { recursive: true, force: true });
    const { record: recovery } = await bench.runServiceJob(service, 'recovery', { backupId: last.id, type: 'FULL', target: { path: INC.restore } });
    const diff = await run('diff', ['-r', '--no-dereference', INC.tree, INC.restore], { allowFail: true });
    results.restoreCheck = recovery.status === 'COMPLETED' && diff.code === 0 ? 'ok' : `${recovery.status} ${recovery.error ?? ''} ${diff.stdout.slice(0, 2000)}`;
    results.restoreMs = recovery.durationMs;
  } finally {
    await bench.stopService(service).catch(() => undefined);
  }
  const med = (key) => median(results.incrementals.map((r) => r.ratios[key]));
  results.summary = {
    medianTimeVsResticDefault: med('timeVsDefault'),
    medianTimeVsResticV1: med('timeVsV1'),
    medianBytesVsResticDefault: med('bytesVsDefault'),
    medianBytesVsResticV1: med('bytesVsV1'),
    targets: `time <= ${TARGETS.timeRatio} x restic, stored bytes <= ${TARGETS.bytesRatio} x restic`,
  };
  results.finishedAt = new Date().toISOString();
  await fsp.writeFile(INC.results, `${JSON.stringify(results, null, 2)}\n`);
  const line = (name, s) => `| ${name} | ${s.service.ms} ms (job ${s.service.jobMs} ms) | ${mb(s.service.storedBytes)} MB | ${s.resticDefault.ms} ms | ${mb(s.resticDefault.storedBytes)} MB | ${s.resticV1.ms} ms | ${mb(s.resticV1.storedBytes)} MB |`;
  const rows = [line('full', results.full), ...results.incrementals.map((r, i) => `${line(`incremental ${i + 1}`, r)} ${r.ratios.timeVsDefault} / ${r.ratios.timeVsV1} | ${r.ratios.bytesVsDefault} / ${r.ratios.bytesVsV1} |`)];
  process.stdout.write([
    `tree: ${tree.files} files, ${mb(tree.bytes)} MB; ${INC.changePercent} % of the files changed per incremental; ${results.restic}`,
    `| backup | service wall | service stored | restic default (format ${formats.resticDefault}) wall | stored | restic format 1 wall | stored | time ratio default / v1 | bytes ratio default / v1 |`,
    '|---|---|---|---|---|---|---|---|---|',
    ...rows,
    `median ratios: time ${results.summary.medianTimeVsResticDefault} (default) / ${results.summary.medianTimeVsResticV1} (format 1); bytes ${results.summary.medianBytesVsResticDefault} (default) / ${results.summary.medianBytesVsResticV1} (format 1); targets ${results.summary.targets}`,
    `restore of the last incremental's chain: ${results.restoreCheck} (${results.restoreMs} ms)`,
    `results: ${INC.results}`,
  ].join('\n') + '\n');
  if (!process.env.BENCH_KEEP_TREES) {
    for (const dir of [INC.tree, INC.restore, INC.resticDefault, INC.resticV1, INC.resticCache]) await fsp.rm(dir, { recursive: true, force: true });
  }
  process.exitCode = results.restoreCheck === 'ok' ? 0 : 1;
}

if (require.main === module) main().catch((error) => {
  process.stderr.write(`bench failed: ${error.stack ?? error.message}\n`);
  process.exit(1);
});

