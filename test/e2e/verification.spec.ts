import { execFileSync } from 'node:child_process';
import {
  closeSync,
  copyFileSync,
  existsSync,
  mkdtempSync,
  openSync,
  readdirSync,
  readFileSync,
  readSync,
  renameSync,
  rmSync,
  statSync,
  writeFileSync,
  writeSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ADMIN_KEY, API, backupAndWait, startService, TestService } from '../support/app';
import { createDatabase, databaseUrl, dropDatabase, sql } from '../support/database';
import { makeTree } from '../support/trees';

function flipByte(file: string, position: number): void {
  const fd = openSync(file, 'r+');
  const byte = Buffer.alloc(1);
  readSync(fd, byte, 0, 1, position);
  byte[0] ^= 0x01;
  writeSync(fd, byte, 0, 1, position);
  closeSync(fd);
}

/** Integrity of stored backups: the signed manifest, every object's SHA-256, and restores into scratch targets. */
describe('verification (real storage, real pg_dump / pg_restore / tar)', () => {
  let service: TestService;
  const work = mkdtempSync(join(tmpdir(), 'dr-verify-'));
  const source = join(work, 'tree');
  let scratch: string;

  beforeAll(async () => {
    makeTree(source, 400);
    scratch = join(work, 'scratch');
    service = await startService({ DR_SCRATCH_DIR: scratch });
  }, 60_000);

  afterAll(async () => {
    await service?.close();
    rmSync(work, { recursive: true, force: true });
  });

  const stored = (key: string) => join(service.dataDir, 'backups', key);
  const verify = async (id: string, body: object = {}) =>
    (await service.http().post(`${API}/backups/${id}/verify`).set('X-API-Key', ADMIN_KEY).send(body)).body;

  it('fails on any changed byte of any object, the manifest or its signature, naming what is wrong', async () => {
    const backup = await backupAndWait(service, { engine: 'filesystem', source: { path: join(source, 'd3') } });
    expect(await verify(backup.id)).toMatchObject({ ok: true, problems: [] });
    const targets: [string, RegExp][] = [
      ...backup.objects.map(
        (o: { key: string; role: string }) => [o.key, new RegExp(`${o.key} \\(${o.role}\\) has sha256 [0-9a-f]{64}, recorded`)] as [string, RegExp],
      ),
      [backup.manifestKey, new RegExp(`manifest ${backup.manifestKey}: signature not valid: the signature by key [0-9a-f]{16} does not match`)],
      [backup.manifestKey.replace('manifest.json', 'manifest.sig'), /signature not valid/],
    ];
    for (const [key, expected] of targets) {
      const size = statSync(stored(key)).size;
      for (const position of [0, size >> 1, size - 1]) {
        const original = readFileSync(stored(key));
        flipByte(stored(key), position);
        const result = await verify(backup.id);
        writeFileSync(stored(key), original);
        expect({ key, position, ok: result.ok }).toEqual({ key, position, ok: false });
        expect(result.problems.join('\n')).toMatch(expected);
      }
    }
    expect(await verify(backup.id)).toMatchObject({ ok: true });
  });

  it('fails on a missing or swapped object, naming it', async () => {
    const a = await backupAndWait(service, { engine: 'filesystem', source: { path: join(source, 'd4') } });
    const b = await backupAndWait(service, { engine: 'filesystem', source: { path: join(source, 'd5') } });
    for (const key of [a.artifactKey, `${a.id}/details.jsonl.zst`, a.manifestKey, `${a.id}/manifest.sig`]) {
      renameSync(stored(key), `${stored(key)}.aside`);
      const result = await verify(a.id);
      renameSync(`${stored(key)}.aside`, stored(key));
      expect(result.ok).toBe(false);
      expect(result.problems.join('\n')).toContain(key);
    }
    // b's artifact put in a's place: a complete, valid artifact, but not a's
    copyFileSync(stored(a.artifactKey), `${stored(a.artifactKey)}.orig`);
    copyFileSync(stored(b.artifactKey), stored(a.artifactKey));
    const swapped = await verify(a.id);
    renameSync(`${stored(a.artifactKey)}.orig`, stored(a.artifactKey));
    expect(swapped.ok).toBe(false);
    expect(swapped.problems.join('\n')).toContain(
      b.storedBytes === a.storedBytes
        ? `${a.artifactKey} (artifact) has sha256 ${b.sha256}, recorded ${a.sha256}`
        : `${a.artifactKey} (artifact) holds ${b.storedBytes} bytes, recorded ${a.storedBytes}`,
    );
    // a's manifest and signature put in b's place: the signature is valid, but the manifest is a's
    for (const name of ['manifest.json', 'manifest.sig']) copyFileSync(stored(`${a.id}/${name}`), stored(`${b.id}/${name}`));
    const foreign = await verify(b.id);
    expect(foreign.ok).toBe(false);
    expect(foreign.problems.join('\n')).toContain(`manifest ${b.manifestKey} belongs to backup ${a.id}`);
  });

  it('restores a tree into scratch and compares every file with the index; a difference is named; scratch removed', async () => {
    const backup = await backupAndWait(service, { engine: 'filesystem', source: { path: source } });
    const ok = await verify(backup.id, { mode: 'restore' });
    expect(ok).toMatchObject({ status: 'COMPLETED', mode: 'restore', ok: true, problems: [] });
    expect(ok.details.restore).toMatchObject({ files: expect.any(Number), symlinks: 3 });
    expect(ok.details.restore.files).toBeGreaterThan(390);
    expect(readdirSync(scratch).filter((n) => n.startsWith('verify-'))).toEqual([]);

    // Simulate an artifact that lost a file: rewrite the details object with an index naming one more file, and
    // record the new object's hash, as a backup whose archive missed a file would look.
    const detailsKey = `${backup.id}/details.jsonl.zst`;
    const lines = execFileSync('zstd', ['-dc', stored(detailsKey)], { maxBuffer: 64 << 20 })
      .toString()
      .trimEnd()
      .split('\n');
    const ghost = { ...JSON.parse(lines.find((l) => l.includes('"type":"file"'))!), path: 'd0/ghost.dat' };
    writeFileSync(join(work, 'details.jsonl'), [...lines, JSON.stringify(ghost)].join('\n') + '\n');
    execFileSync('zstd', ['-q', '-f', join(work, 'details.jsonl'), '-o', stored(detailsKey)]);
    const sha = execFileSync('sha256sum', [stored(detailsKey)])
      .toString()
      .split(' ')[0];
    const objects = backup.objects.map((o: { role: string }) =>
      o.role === 'details' ? { ...o, sha256: sha, sizeBytes: statSync(stored(detailsKey)).size } : o,
    );
    await sql(service.database, 'UPDATE backups SET objects = $1 WHERE id = $2', [JSON.stringify(objects), backup.id]);
    const bad = await verify(backup.id, { mode: 'restore' });
    expect(bad.ok).toBe(false);
    expect(bad.problems).toContain('d0/ghost.dat: missing after restore');
    expect(readdirSync(scratch).filter((n) => n.startsWith('verify-'))).toEqual([]);
  });

  describe('postgres', () => {
    let db: string;
    beforeAll(async () => {
      db = await createDatabase('drt_vsrc');
      await sql(db, `CREATE TABLE accounts (id int PRIMARY KEY, owner text, balance numeric(12,2), opened date)`);
      await sql(db, `INSERT INTO accounts SELECT g, 'owner ' || g, g * 1.25, date '2020-01-01' + g % 1000 FROM generate_series(1, 20000) g`);
      await sql(db, `CREATE TABLE notes (id serial PRIMARY KEY, body text, tags text[])`);
      await sql(db, `INSERT INTO notes (body, tags) VALUES ('tab\there', '{a,b}'), (E'line\\nbreak', NULL), ('\\\\backslash', '{}')`);
      await sql(db, `CREATE TABLE empty_one (x int)`);
    });
    afterAll(async () => dropDatabase(db));

    it('records per-table rows and digests, restores into a scratch database that matches, and drops it', async () => {
      const backup = await backupAndWait(service, { engine: 'postgres', source: { url: databaseUrl(db) } });
      expect(backup.status).toBe('COMPLETED');
      const byName = Object.fromEntries(backup.tables.map((t: { name: string }) => [t.name, t]));
      expect(byName['public.accounts']).toMatchObject({ rows: 20000, sha256: expect.stringMatching(/^[0-9a-f]{64}$/) });
      expect(byName['public.notes'].rows).toBe(3);
      expect(byName['public.empty_one'].rows).toBe(0);

      const ok = await verify(backup.id, { mode: 'restore', waitSeconds: 120 });
      expect(ok).toMatchObject({ status: 'COMPLETED', ok: true, problems: [] });
      expect(ok.details.restore).toMatchObject({ tables: 3, rows: 20003 }); // accounts, notes, empty_one
      const leftover = await sql('postgres', `SELECT datname FROM pg_database WHERE datname LIKE 'dr_verify_%'`);
      expect(leftover).toEqual([]);

      // the record says one more row than the dump holds: deep verification names the table and both counts
      const tables = backup.tables.map((t: { name: string; rows: number }) => (t.name === 'public.notes' ? { ...t, rows: 4 } : t));
      await sql(service.database, 'UPDATE backups SET tables = $1 WHERE id = $2', [JSON.stringify(tables), backup.id]);
      const bad = await verify(backup.id, { mode: 'restore', waitSeconds: 120 });
      expect(bad.ok).toBe(false);
      expect(bad.problems).toEqual(['public.notes: 3 rows after restore, recorded 4']);
      expect(await sql('postgres', `SELECT datname FROM pg_database WHERE datname LIKE 'dr_verify_%'`)).toEqual([]);
    });
  });

  it('answers 202 at once with waitSeconds 0, and the verification can be polled to its end', async () => {
    const backup = await backupAndWait(service, { engine: 'filesystem', source: { path: join(source, 'd6') } });
    const started = await service.http().post(`${API}/backups/${backup.id}/verify`).set('X-API-Key', ADMIN_KEY).send({ mode: 'restore', waitSeconds: 0 });
    expect(started.status).toBe(202);
    expect(['PENDING', 'RUNNING']).toContain(started.body.status);
    let polled = started.body;
    for (let i = 0; i < 100 && !['COMPLETED', 'FAILED'].includes(polled.status); i++) {
      await new Promise((r) => setTimeout(r, 100));
      polled = (await service.http().get(`${API}/verifications/${started.body.id}`).set('X-API-Key', ADMIN_KEY)).body;
    }
    expect(polled).toMatchObject({ status: 'COMPLETED', ok: true });
    const list = await service.http().get(`${API}/backups/${backup.id}/verifications`).set('X-API-Key', ADMIN_KEY);
    expect(list.body.map((v: { id: string }) => v.id)).toContain(started.body.id);
    expect(existsSync(join(scratch, `verify-${started.body.id}`))).toBe(false);
  });
});
