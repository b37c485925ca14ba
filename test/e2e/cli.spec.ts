import { spawnSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createDatabase, databaseUrl, dropDatabase } from '../support/database';
import { diffTrees } from '../support/trees';

const DR = join(__dirname, '..', '..', 'bin', 'dr');

/** The `dr` command, run as a user runs it (not on a terminal, so progress comes as plain lines). */
describe('dr CLI', () => {
  let meta: string;
  const dataDir = mkdtempSync(join(tmpdir(), 'dr-cli-'));
  const restoreRoot = mkdtempSync(join(tmpdir(), 'dr-cli-restores-'));
  const source = join(dataDir, 'src');

  const dr = (...args: string[]) => {
    const result = spawnSync(DR, args, {
      env: { PATH: process.env.PATH, HOME: process.env.HOME, DATABASE_URL: databaseUrl(meta), DR_DATA_DIR: dataDir, DR_RESTORE_ROOTS: restoreRoot },
      encoding: 'utf8',
      timeout: 60_000,
    });
    return { code: result.status, stdout: result.stdout, stderr: result.stderr };
  };

  beforeAll(async () => {
    meta = await createDatabase('drt_cli');
    mkdirSync(join(source, 'deep', 'er'), { recursive: true });
    writeFileSync(join(source, 'deep', 'er', 'file.txt'), 'from the cli\n');
  });
  afterAll(() => dropDatabase(meta));

  it('backs up, lists, verifies and restores; refuses a non-empty target with exit code 2', () => {
    const backup = dr('backup', '--engine', 'filesystem', '--path', source);
    expect(backup.code).toBe(0);
    const id = /([0-9a-f-]{36})/.exec(backup.stdout)?.[1];
    expect(id).toMatch(/^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/);
    expect(backup.stdout).toContain('COMPLETED');

    const list = dr('list');
    expect(list.code).toBe(0);
    expect(list.stdout).toContain(id);

    const verify = dr('verify', id!);
    expect(verify.code).toBe(0);

    const target = join(restoreRoot, 'restored');
    const restore = dr('restore', id!, '--path', target);
    expect(restore.code).toBe(0);
    expect(diffTrees(source, target)).toBe('');

    const again = dr('restore', id!, '--path', target);
    expect(again.code).toBe(2);
    expect(again.stderr).toContain('TARGET_NOT_EMPTY');
    expect(again.stderr).not.toMatch(/\n\s+at /); // no stack trace

    const failed = dr('backup', '--engine', 'postgres', '--url', databaseUrl('drt_cli_no_such_db'));
    expect(failed.code).toBe(1);
    expect(failed.stderr).toContain('drt_cli_no_such_db');
  });

  it('lists every command in dr --help, and each command has a --help that documents it (exit 0, no config needed)', () => {
    const top = dr('--help');
    expect(top.code).toBe(0);
    const commands = [...top.stdout.matchAll(/^ {2}([a-z][a-z-]*)(?:\|[a-z]+)? /gm)].map((m) => m[1]).filter((c) => c !== 'help');
    expect(commands).toEqual(['backup', 'restore', 'verify', 'list', 'wal-push', 'wal-fetch']);
    for (const command of commands) {
      const help = dr(command, '--help');
      expect({ command, code: help.code }).toEqual({ command, code: 0 });
      expect(help.stdout).toContain(`Usage: dr ${command}`);
      expect(help.stdout).toMatch(/--[a-z]/); // its options are listed
    }
    // wal-push / wal-fetch run without the service (bin/dr sends them to the light entry): their help says how
    // PostgreSQL calls them, what the config is, and what each exit code means.
    const push = dr('wal-push', '--help');
    expect(push.stdout).toContain("archive_command = 'dr wal-push %p --config");
    expect(push.stdout).toContain('DR_WAL_CONFIG');
    expect(push.stdout).toMatch(/Exit codes: 0 archived.*2 failed[\s\S]*64 bad usage/);
    const fetch = dr('wal-fetch', '-h');
    expect(fetch.code).toBe(0);
    expect(fetch.stdout).toContain("restore_command = 'dr wal-fetch %f %p --config");
    expect(fetch.stdout).toMatch(/1 not archived/);
    expect(fetch.stderr).toBe('');
  });
});
