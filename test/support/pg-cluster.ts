import { spawnSync } from 'node:child_process';
import { appendFileSync, chmodSync, chownSync, existsSync, mkdirSync, readdirSync } from 'node:fs';
import { createServer } from 'node:net';
import { join } from 'node:path';
import { Client } from 'pg';

/** The OS user PostgreSQL runs as when the tests run as root (PostgreSQL refuses root). */
export const PG_OS_USER = process.env.DR_PG_OS_USER ?? 'postgres';

/**
 * Directory of initdb/pg_ctl when they are not on PATH (Debian keeps them in /usr/lib/postgresql/<major>/bin):
 * the newest major there. Undefined: PATH has them. Give it to the service as DR_PG_BIN_DIR.
 */
export const PG_BIN_DIR: string | undefined = (() => {
  if (spawnSync('sh', ['-c', 'command -v initdb && command -v pg_ctl'], { stdio: 'ignore' }).status === 0) return undefined;
  const root = '/usr/lib/postgresql';
  const majors = existsSync(root)
    ? readdirSync(root)
        .filter((d) => /^\d+$/.test(d))
        .sort((a, b) => Number(b) - Number(a))
    : [];
  return majors.length ? join(root, majors[0], 'bin') : undefined;
})();

/** A PostgreSQL tool by name, in {@link PG_BIN_DIR} when set. */
export function pgTool(name: string): string {
  return PG_BIN_DIR ? join(PG_BIN_DIR, name) : name;
}

/** uid/gid of {@link PG_OS_USER} when running as root; null otherwise (servers then run as the current user). */
export function pgIdentity(): { uid: number; gid: number } | null {
  if (process.getuid?.() !== 0) return null;
  const uid = Number(spawnSync('id', ['-u', PG_OS_USER], { encoding: 'utf8' }).stdout.trim());
  const gid = Number(spawnSync('id', ['-g', PG_OS_USER], { encoding: 'utf8' }).stdout.trim());
  return { uid, gid };
}

/** Hands a path to the PostgreSQL OS user (when running as root). */
export function giveToPg(path: string): void {
  const id = pgIdentity();
  if (id) chownSync(path, id.uid, id.gid);
}

/** A port nobody listens on right now. */
export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const port = (server.address() as { port: number }).port;
      server.close(() => resolve(port));
    });
  });
}

/** Runs a PostgreSQL tool as the PostgreSQL OS user. @throws with its output when it fails */
export function runPgTool(command: string, args: string[]): string {
  const id = pgIdentity();
  const result = spawnSync(command, args, {
    encoding: 'utf8',
    cwd: '/tmp',
    env: { PATH: process.env.PATH, LANG: 'C.UTF-8', HOME: '/tmp' },
    ...(id ? { uid: id.uid, gid: id.gid } : {}),
  });
  if (result.status !== 0) throw new Error(`${command} ${args.join(' ')} failed (${result.status}): ${result.stdout}${result.stderr}`);
  return result.stdout;
}

/** A throw-away PostgreSQL cluster of the test: its own data directory and port. */
export interface TestCluster {
  dataDir: string;
  port: number;
  query<T = Record<string, any>>(text: string, params?: unknown[]): Promise<T[]>;
  stop(): void;
}

/**
 * initdb (as the PostgreSQL OS user) into `root/<name>`, `extraConfig` appended to postgresql.conf, started on a
 * free port with its socket and log in `root/<name>-run`. `root` must be traversable by that user.
 */
export async function startCluster(root: string, name: string, extraConfig: string[]): Promise<TestCluster> {
  const dataDir = join(root, name);
  mkdirSync(dataDir, { mode: 0o700 });
  giveToPg(dataDir);
  runPgTool(pgTool('initdb'), ['-D', dataDir, '-A', 'trust', '-U', 'postgres', '--no-sync', '-E', 'UTF8', '--locale=C']);
  const run = join(root, `${name}-run`); // socket and log, writable by the server's user
  mkdirSync(run, { mode: 0o755 });
  giveToPg(run);
  const port = await freePort();
  appendFileSync(
    join(dataDir, 'postgresql.conf'),
    [`port = ${port}`, `listen_addresses = '127.0.0.1'`, `unix_socket_directories = '${run}'`, 'fsync = off', ...extraConfig, ''].join('\n'),
  );
  runPgTool(pgTool('pg_ctl'), ['start', '-D', dataDir, '-l', join(run, 'server.log'), '-w', '-t', '60']);
  return {
    dataDir,
    port,
    query: async <T>(text: string, params: unknown[] = []) => {
      const client = new Client({ host: '127.0.0.1', port, user: 'postgres', database: 'postgres' });
      await client.connect();
      try {
        return (await client.query(text, params)).rows as T[];
      } finally {
        await client.end();
      }
    },
    stop: () => stopServer(dataDir),
  };
}

/** `pg_ctl stop -m immediate` on a data directory; quiet when no server runs there. */
export function stopServer(dataDir: string): void {
  try {
    runPgTool(pgTool('pg_ctl'), ['stop', '-D', dataDir, '-m', 'immediate', '-w', '-t', '30']);
  } catch {
    // not running
  }
}

/** Makes a directory (and mode) traversable by the PostgreSQL OS user. */
export function openDir(path: string): void {
  chmodSync(path, 0o755);
}
