import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { load } from 'js-yaml';

const ROOT = resolve(__dirname, '..', '..');
const SCRIPT = join(ROOT, 'scripts', 'generate-openapi.js');
const COMMITTED = join(ROOT, 'api-docs', 'openapi.yaml');

/** Runs the generator the way CI does (`npm run openapi:check`). */
function check(...args: string[]) {
  const run = spawnSync(process.execPath, [SCRIPT, '--check', ...args], { cwd: ROOT, encoding: 'utf8', timeout: 120_000 });
  return { status: run.status, output: `${run.stdout}${run.stderr}` };
}

/** The committed OpenAPI document must be what the code produces (regenerate with `npm run openapi:generate`). */
describe('api-docs/openapi.yaml', () => {
  it('is what the code generates (no drift)', () => {
    const run = check();
    expect(run.output).toContain('is up to date');
    expect(run.status).toBe(0);
  });

  it('fails the check with a diff when the file differs from the code', () => {
    const tampered = join(mkdtempSync(join(tmpdir(), 'dr-openapi-test-')), 'openapi.yaml');
    writeFileSync(tampered, readFileSync(COMMITTED, 'utf8').replace('summary: List backup plans', 'summary: Something else'));
    const run = check('--file', tampered);
    expect(run.status).toBe(1);
    expect(run.output).toContain('-      summary: Something else');
    expect(run.output).toContain('+      summary: List backup plans');
  });

  it('lists the roles of every API route and the error shape of its errors', () => {
    const document = load(readFileSync(COMMITTED, 'utf8')) as {
      paths: Record<string, Record<string, { 'x-roles': string[]; summary: string; security?: unknown[]; responses: Record<string, any> }>>;
    };
    const operations = Object.entries(document.paths).flatMap(([path, ops]) => Object.entries(ops).map(([method, op]) => ({ path, method, op })));
    expect(operations.length).toBeGreaterThanOrEqual(24);
    for (const { path, method, op } of operations) {
      expect({ path, method, summary: typeof op.summary === 'string' && op.summary.length > 0 }).toEqual({ path, method, summary: true });
      if (path.startsWith('/actuator/')) {
        expect(op['x-roles']).toEqual([]);
        expect({ path, security: op.security }).toEqual({ path, security: [] }); // public: no credentials
        continue;
      }
      expect({ path, method, admin: op['x-roles'][0] }).toEqual({ path, method, admin: 'ADMIN' });
      expect(op.security).toEqual([{ 'api-key': [] }, { bearer: [] }]);
      expect(op.responses['401'].content['application/json'].schema).toEqual({ $ref: '#/components/schemas/ErrorResponse' });
    }
    const createPlan = document.paths['/api/v1/disaster-recovery/backup-plans'].post;
    expect(createPlan['x-roles']).toEqual(['ADMIN', 'BACKUP_ADMIN']);
  });
});
