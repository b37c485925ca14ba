import { chmodSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ADMIN_KEY, API, backupAndWait, recoverAndWait, startService, TestService } from '../support/app';
import { sha256Hex } from '../support/hash';

describe('configuration snapshots', () => {
  let service: TestService;
  let etc: string;

  beforeAll(async () => {
    service = await startService();
    etc = mkdtempSync(join(tmpdir(), 'dr-etc-'));
    mkdirSync(join(etc, 'app', 'conf.d'), { recursive: true });
    writeFileSync(join(etc, 'app', 'app.yml'), 'port: 8080\nmode: primary\n');
    writeFileSync(join(etc, 'app', 'db.yml'), 'url: postgresql://db/app\n');
    writeFileSync(join(etc, 'app', 'conf.d', 'cache.yml'), 'ttl: 60\n');
    writeFileSync(join(etc, 'app', 'notes.txt'), 'not matched by the globs\n');
    chmodSync(join(etc, 'app', 'db.yml'), 0o600);
  });

  afterAll(async () => {
    await service?.close();
    rmSync(etc, { recursive: true, force: true });
  });

  it('indexes every file with its SHA-256, diffs two snapshots, and restores the files under their original paths', async () => {
    const paths = [`${etc}/app/*.yml`, `${etc}/app/conf.d/*.yml`];
    const first = await backupAndWait(service, { engine: 'configuration', source: { paths } });
    expect(first).toMatchObject({ status: 'COMPLETED', fileCount: 3 });
    const index = (await service.http().get(`${API}/backups/${first.id}/files`).set('X-API-Key', ADMIN_KEY)).body;
    expect(index).toMatchObject({ total: 3, page: 1 });
    const appYml = index.items.find((f: { path: string }) => f.path.endsWith('app/app.yml'));
    expect(appYml).toMatchObject({ type: 'file', sha256: sha256Hex('port: 8080\nmode: primary\n'), mode: '0644' });
    expect(index.items.find((f: { path: string }) => f.path.endsWith('db.yml')).mode).toBe('0600');
    const conf = await service
      .http()
      .get(`${API}/backups/${first.id}/files`)
      .query({ prefix: appYml.path.replace('app.yml', 'conf.d/') })
      .set('X-API-Key', ADMIN_KEY);
    expect(conf.body.items.map((f: { path: string }) => f.path.split('/').pop())).toEqual(['cache.yml']);

    writeFileSync(join(etc, 'app', 'app.yml'), 'port: 9090\nmode: standby\n');
    rmSync(join(etc, 'app', 'db.yml'));
    writeFileSync(join(etc, 'app', 'conf.d', 'queue.yml'), 'size: 10\n');
    const second = await backupAndWait(service, { engine: 'configuration', source: { paths } });
    expect(second.status).toBe('COMPLETED');

    const diff = await service.http().get(`${API}/backups/${first.id}/diff/${second.id}`).set('X-API-Key', ADMIN_KEY);
    expect(diff.status).toBe(200);
    const rel = (p: string) => p.replace(etc.replace(/^\//, '') + '/', '');
    expect(diff.body.added.map(rel)).toEqual(['app/conf.d/queue.yml']);
    expect(diff.body.removed.map(rel)).toEqual(['app/db.yml']);
    expect(diff.body.changed.map((c: { path: string }) => rel(c.path))).toEqual(['app/app.yml']);
    expect(diff.body.changed[0].after.sha256).toBe(sha256Hex('port: 9090\nmode: standby\n'));
    expect(diff.body.unchanged).toBe(1);

    const target = join(service.restoreRoot, 'config');
    const recovery = await recoverAndWait(service, { backupId: first.id, type: 'FULL', target: { path: target } });
    expect(recovery.status).toBe('COMPLETED');
    expect(readFileSync(join(target, etc, 'app', 'app.yml'), 'utf8')).toBe('port: 8080\nmode: primary\n');
    expect(readFileSync(join(target, etc, 'app', 'db.yml'), 'utf8')).toBe('url: postgresql://db/app\n');
  });

  it('refuses globs that match nothing and diffs of backups without a file index', async () => {
    const none = await service
      .http()
      .post(`${API}/backups`)
      .set('X-API-Key', ADMIN_KEY)
      .send({ engine: 'configuration', source: { paths: [`${etc}/nothing/*.conf`] } });
    expect(none.status).toBe(400);
    expect(none.body.details).toEqual([expect.objectContaining({ field: 'source.paths' })]);

    const relative = await service
      .http()
      .post(`${API}/backups`)
      .set('X-API-Key', ADMIN_KEY)
      .send({ engine: 'configuration', source: { paths: ['etc/*.yml'] } });
    expect(relative.status).toBe(400);
    expect(relative.body.details[0].field).toBe('source.paths');

    const config = await backupAndWait(service, { engine: 'configuration', source: { paths: [`${etc}/app/*.yml`] } });
    const fs = await backupAndWait(service, { engine: 'filesystem', source: { path: join(etc, 'app') } });
    const diff = await service.http().get(`${API}/backups/${config.id}/diff/${fs.id}`).set('X-API-Key', ADMIN_KEY);
    expect(diff.status).toBe(400);
    expect(diff.body.details[0].field).toBe('otherId');
  });
});
