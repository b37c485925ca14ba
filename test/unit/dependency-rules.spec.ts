import { execFile } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { promisify } from 'node:util';

const ROOT = resolve(__dirname, '..', '..');
const DEPCRUISE = join(ROOT, 'node_modules', '.bin', 'depcruise');
const CONFIG = join(ROOT, '.dependency-cruiser.cjs');

/** Runs the real dependency-cruiser with the repository's rules in `cwd` on its `src/`. */
async function cruise(cwd: string): Promise<{ code: number; output: string }> {
  try {
    const { stdout, stderr } = await promisify(execFile)(DEPCRUISE, ['--config', CONFIG, 'src'], { cwd });
    return { code: 0, output: stdout + stderr };
  } catch (error) {
    const e = error as { code: number; stdout: string; stderr: string };
    return { code: e.code, output: e.stdout + e.stderr };
  }
}

/** A throw-away tree laid out like src/, with `files` (path → TypeScript source) and a tsconfig. */
function tree(files: Record<string, string>): string {
  const dir = mkdtempSync(join(tmpdir(), 'dr-depcruise-'));
  writeFileSync(join(dir, 'tsconfig.json'), JSON.stringify({ compilerOptions: { target: 'ES2022', module: 'commonjs', strict: true } }));
  for (const [path, source] of Object.entries(files)) {
    mkdirSync(dirname(join(dir, path)), { recursive: true });
    writeFileSync(join(dir, path), source);
  }
  return dir;
}

/** A compliant base: a feature with an entity and a service, an engine, a recovery that builds on backup. */
const BASE: Record<string, string> = {
  'src/backup/backup.entity.ts': 'export class BackupEntity { id = ""; }\n',
  'src/backup/backups.service.ts':
    "import { BackupEntity } from './backup.entity';\nexport class BackupsService { get(): BackupEntity { return new BackupEntity(); } }\n",
  'src/engines/engine.ts': 'export const ENGINE = "filesystem";\n',
  'src/recovery/recovery.service.ts':
    "import type { BackupEntity } from '../backup/backup.entity';\nimport { BackupsService } from '../backup/backups.service';\nimport { ENGINE } from '../engines/engine';\nexport const restore = (s: BackupsService): BackupEntity => (ENGINE ? s.get() : s.get());\n",
};

describe('dependency rules (npm run lint:deps, .dependency-cruiser.cjs)', () => {
  const dirs: string[] = [];
  const planted = (extra: Record<string, string>) => {
    const dir = tree({ ...BASE, ...extra });
    dirs.push(dir);
    return cruise(dir);
  };
  afterAll(() => dirs.forEach((d) => rmSync(d, { recursive: true, force: true })));

  it('pass on the repository src/', async () => {
    const { code, output } = await cruise(ROOT);
    expect(output).toContain('no dependency violations found');
    expect(code).toBe(0);
  });

  it('pass on a compliant tree (another feature uses an entity as a type only)', async () => {
    const { code, output } = await planted({});
    expect({ code, output }).toEqual({ code: 0, output: expect.stringContaining('no dependency violations found') });
  });

  it.each([
    [
      'no-circular',
      {
        'src/backup/backups.service.ts': "import { restore } from '../recovery/recovery.service';\nexport class BackupsService { get() { return restore; } }\n",
      },
    ],
    [
      'lower-layers-import-no-feature',
      { 'src/engines/engine.ts': "import { BackupsService } from '../backup/backups.service';\nexport const ENGINE = BackupsService.name;\n" },
    ],
    [
      'lower-layers-import-no-feature',
      { 'src/storage/drivers/s3.driver.ts': "import { BackupsService } from '../../backup/backups.service';\nexport const X = BackupsService;\n" },
    ],
    ['backup-never-imports-recovery', { 'src/backup/retention.ts': "import { restore } from '../recovery/recovery.service';\nexport const R = restore;\n" }],
    [
      'entities-only-through-their-feature',
      { 'src/metrics/gauges.ts': "import { BackupEntity } from '../backup/backup.entity';\nexport const rows = [BackupEntity];\n" },
    ],
  ])('fail on a planted %s violation', async (rule, extra) => {
    const { code, output } = await planted(extra);
    expect(output).toContain(`error ${rule}:`);
    expect(code).not.toBe(0);
  });
});
