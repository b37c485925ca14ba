import { mkdirSync, mkdtempSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { API } from '../support/app';
import { call, startServerProcess } from '../support/server-process';
import { diffTrees } from '../support/trees';

/** The README's first command: no DATABASE_URL, the service runs on its embedded PostgreSQL (PGlite). */
describe('embedded default (no DATABASE_URL)', () => {
  it('boots, generates the first admin key in a 0600 file, backs up and restores, and survives kill -9', async () => {
    const dataDir = mkdtempSync(join(tmpdir(), 'dr-embedded-'));
    const source = join(dataDir, 'source');
    mkdirSync(join(source, 'nested'), { recursive: true });
    writeFileSync(join(source, 'nested', 'a.txt'), 'embedded\n');
    const env = { DR_DATA_DIR: dataDir, DR_JOB_LEASE_SECONDS: '2' };

    const first = await startServerProcess(env, 90_000);
    const keyFile = join(dataDir, 'admin-api-key');
    expect(statSync(keyFile).mode & 0o777).toBe(0o600);
    const key = readFileSync(keyFile, 'utf8').trim();
    expect(first.output()).toContain(key); // printed once, at generation

    const backup = await call(first, key, 'POST', `${API}/backups`, { engine: 'filesystem', source: { path: source } });
    expect(backup.status).toBe(202);
    let status = '';
    for (let i = 0; i < 100 && !['COMPLETED', 'FAILED'].includes(status); i++) {
      await new Promise((r) => setTimeout(r, 100));
      status = (await call(first, key, 'GET', `${API}/backups/${backup.body.id}`)).body.status;
    }
    expect(status).toBe('COMPLETED');
    const target = join(dataDir, 'restores', 'r1');
    const recovery = await call(first, key, 'POST', `${API}/recovery`, { backupId: backup.body.id, type: 'FULL', target: { path: target } });
    expect(recovery.status).toBe(202);
    for (
      let i = 0;
      i < 100 && !['COMPLETED', 'FAILED'].includes((status = (await call(first, key, 'GET', `${API}/recovery/${recovery.body.id}`)).body.status));
      i++
    ) {
      await new Promise((r) => setTimeout(r, 100));
    }
    expect(status).toBe('COMPLETED');
    expect(diffTrees(source, target)).toBe('');
    await first.kill9();

    // A stale socket is left behind by kill -9; the next start removes it and finds every record.
    const second = await startServerProcess(env, 90_000);
    try {
      expect(second.output()).not.toContain(key); // not printed again
      const listed = await call(second, key, 'GET', `${API}/backups`);
      expect(listed.status).toBe(200);
      expect(listed.body.items.map((b: { id: string }) => b.id)).toEqual([backup.body.id]);
    } finally {
      await second.stop();
    }
  });
});
