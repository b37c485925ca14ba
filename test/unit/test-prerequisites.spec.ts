import { spawnSync } from 'node:child_process';
import { mkdtempSync, symlinkSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

const SCRIPT = join(__dirname, '..', '..', 'scripts', 'check-test-prerequisites.js');

/** A port that refuses connections (bound, then closed). */
function closedPort(): Promise<number> {
  return new Promise((resolve) => {
    const server = createServer().listen(0, '127.0.0.1', () => {
      const { port } = server.address() as { port: number };
      server.close(() => resolve(port));
    });
  });
}

/** `npm test` starts with this check: on a machine that lacks tools or services it says so at once. */
describe('the pre-test check (scripts/check-test-prerequisites.js)', () => {
  it('names every missing tool and the one command that installs them, within seconds, and exits 1', async () => {
    const bin = mkdtempSync(join(tmpdir(), 'dr-prereq-'));
    symlinkSync(process.execPath, join(bin, 'node')); // a PATH with node only: no age, restic, pg_dump, ...
    const port = await closedPort();
    const started = Date.now();
    const run = spawnSync(process.execPath, [SCRIPT], {
      encoding: 'utf8',
      env: { PATH: bin, TEST_PG_URL: `postgresql://postgres@127.0.0.1:${port}/postgres`, TEST_MYSQL_PORT: String(port) },
      timeout: 30_000,
    });
    const elapsedMs = Date.now() - started;
    expect(run.status).toBe(1);
    expect(elapsedMs).toBeLessThan(10_000); // "in its first second": ~1 s here, generous for a loaded machine
    const missing = /missing tools: (.*)/.exec(run.stderr)?.[1] ?? '';
    for (const tool of ['pg_dump', 'pg_restore', 'psql', 'age', 'age-keygen', 'restic', 'zstd', 'openssl', 'shellcheck', 'jq', 'mariadb-dump or mysqldump']) {
      expect(missing.split(/; |, /)).toContain(tool);
    }
    const install = /apt-get update && apt-get install -y (.*)/.exec(run.stderr)?.[1]?.split(' ') ?? [];
    expect(install).toEqual(expect.arrayContaining(['postgresql-client', 'age', 'restic', 'zstd', 'mariadb-client', 'shellcheck']));
    expect(run.stderr).toContain(`PostgreSQL at postgresql://postgres@127.0.0.1:${port}/postgres does not accept the tests' connection: connect ECONNREFUSED`);
    expect(run.stderr).toContain(`MariaDB at root@127.0.0.1:${port} (no password) does not accept the tests' connection: connect ECONNREFUSED`);
    expect(run.stderr).toContain('bash .ci/run');
  });

  it('passes (exit 0, silent) when told to skip', () => {
    const run = spawnSync(process.execPath, [SCRIPT], { encoding: 'utf8', env: { PATH: '/nonexistent', DR_TEST_SKIP_PREREQUISITES: '1' } });
    expect({ status: run.status, stderr: run.stderr }).toEqual({ status: 0, stderr: '' });
  });
});
