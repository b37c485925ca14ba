import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ADMIN_KEY, API, backupAndWait, recoverAndWait, startService, TestService } from '../support/app';

/**
 * The restore-roots guard (src/engines/restore-directory.ts) against a sibling that shares the root's name as a
 * prefix: with DR_RESTORE_ROOTS=/x/restores, /x/restores-evil is outside, although a bare
 * `path.startsWith(root)` says it is inside. For filesystem and configuration restores, through the API.
 */
describe("restore roots: a sibling sharing the root's name as a prefix is outside", () => {
  let service: TestService;
  let root: string;
  let restores: string;
  let evil: string;
  const backups: Record<string, string> = {};

  beforeAll(async () => {
    root = mkdtempSync(join(tmpdir(), 'dr-roots-'));
    restores = join(root, 'restores');
    evil = join(root, 'restores-evil');
    for (const dir of [restores, evil, join(root, 'src')]) mkdirSync(dir);
    writeFileSync(join(root, 'src', 'app.conf'), 'setting = 1\n');
    // a link inside the root that leads to the sibling: resolved before the check, so refused as well
    symlinkSync(evil, join(restores, 'link-to-evil'));
    writeFileSync(join(restores, 'file.txt'), 'a file, not a directory\n');
    symlinkSync('loop-b', join(restores, 'loop-a'));
    symlinkSync('loop-a', join(restores, 'loop-b'));
    service = await startService({ DR_RESTORE_ROOTS: restores });
    backups.filesystem = (await backupAndWait(service, { engine: 'filesystem', source: { path: join(root, 'src') } })).id;
    backups.configuration = (await backupAndWait(service, { engine: 'configuration', source: { paths: [join(root, 'src', '*.conf')] } })).id;
  });

  afterAll(async () => {
    await service?.close();
    rmSync(root, { recursive: true, force: true });
  });

  it.each(['filesystem', 'configuration'])(
    'refuses a %s restore into the sibling, its subdirectories and a link to it (403), writing nothing there',
    async (engine) => {
      for (const path of [evil, join(evil, 'r1'), join(restores, 'link-to-evil'), join(restores, 'link-to-evil', 'r2'), `${restores}-evil/x/../r3`]) {
        const res = await service
          .http()
          .post(`${API}/recovery`)
          .set('X-API-Key', ADMIN_KEY)
          .send({ backupId: backups[engine], type: 'FULL', target: { path } });
        expect({ path, status: res.status, code: res.body.code, details: res.body.details }).toEqual({
          path,
          status: 403,
          code: 'TARGET_NOT_ALLOWED',
          details: [{ field: 'target.path', message: 'outside the allowed restore roots' }],
        });
      }
      expect(readdirSync(evil)).toEqual([]);
      // the root itself still takes restores
      const ok = await recoverAndWait(service, { backupId: backups[engine], type: 'FULL', target: { path: join(restores, `ok-${engine}`) } });
      expect({ status: ok.status, error: ok.error }).toEqual({ status: 'COMPLETED', error: null });
      expect(existsSync(join(restores, `ok-${engine}`))).toBe(true);
    },
  );

  it.each(['filesystem', 'configuration'])(
    'answers 400 naming target.path for a %s restore through a file or a symlink loop, leaving the file as it was',
    async (engine) => {
      for (const [path, message] of [
        [join(restores, 'file.txt'), 'target.path is not a directory'],
        [join(restores, 'file.txt', 'x'), 'target.path is not a directory'],
        [join(restores, 'loop-a', 'x'), 'target.path passes through a symlink loop'],
      ]) {
        const res = await service
          .http()
          .post(`${API}/recovery`)
          .set('X-API-Key', ADMIN_KEY)
          .send({ backupId: backups[engine], type: 'FULL', target: { path }, overwrite: true });
        expect({ path, status: res.status, code: res.body.code, details: res.body.details }).toEqual({
          path,
          status: 400,
          code: 'VALIDATION_FAILED',
          details: [{ field: 'target.path', message }],
        });
      }
      expect(readFileSync(join(restores, 'file.txt'), 'utf8')).toBe('a file, not a directory\n');
    },
  );
});
