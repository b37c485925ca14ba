import { spawn } from 'node:child_process';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';

/** uid/gid a server runs as; null when the service does not run as root (the server then runs as the service's user). */
export type OsIdentity = { uid: number; gid: number; name: string } | null;

/**
 * The identity PostgreSQL servers are run as: PostgreSQL refuses to run as root, so when the service is root the
 * server (and its restore_command) runs as `user` (DR_PG_OS_USER, default `postgres`), looked up in /etc/passwd.
 * @throws Error when the service is root and the user does not exist.
 */
export async function serverIdentity(user: string): Promise<OsIdentity> {
  if (process.getuid?.() !== 0) return null;
  const passwd = await readFile('/etc/passwd', 'utf8');
  for (const line of passwd.split('\n')) {
    const [name, , uid, gid] = line.split(':');
    if (name === user) return { name, uid: Number(uid), gid: Number(gid) };
  }
  throw new Error(`the service runs as root and PostgreSQL refuses root: OS user ${user} (DR_PG_OS_USER) does not exist`);
}

/** Outcome of {@link runAs}. */
export interface RunResult {
  code: number | null;
  stdout: string;
  stderr: string;
}

/**
 * Runs a command to completion as `identity` (spawn's uid/gid), with `env` added to PATH/LANG, output captured
 * (small outputs only: pg_ctl, chown). Never rejects on a failure exit code; the caller reads `code`.
 */
export function runAs(identity: OsIdentity, command: string, args: string[], env: Record<string, string> = {}, cwd?: string): Promise<RunResult> {
  return new Promise((resolve, reject) => {
    const child = spawn(command, args, {
      cwd,
      env: { PATH: process.env.PATH, LANG: 'C.UTF-8', LC_ALL: 'C.UTF-8', ...(identity ? { HOME: '/tmp' } : { HOME: process.env.HOME }), ...env },
      stdio: ['ignore', 'pipe', 'pipe'],
      ...(identity ? { uid: identity.uid, gid: identity.gid } : {}),
    });
    let stdout = '';
    let stderr = '';
    child.stdout.setEncoding('utf8').on('data', (c: string) => (stdout = (stdout + c).slice(-8192)));
    child.stderr.setEncoding('utf8').on('data', (c: string) => (stderr = (stderr + c).slice(-8192)));
    child.once('error', reject);
    child.once('close', (code) => resolve({ code, stdout, stderr }));
  });
}

/** `pg_ctl` (in `binDir` when given, else from PATH). */
export function pgCtl(binDir: string | undefined): string {
  return binDir ? join(binDir, 'pg_ctl') : 'pg_ctl';
}

/** Last lines of a server log that say why recovery stopped or failed (FATAL, PANIC, ERROR and recovery LOG lines). */
export async function logReasons(logFile: string, maxLines = 8): Promise<string[]> {
  const text = await readFile(logFile, 'utf8').catch(() => '');
  return text
    .split('\n')
    .filter((l) => /FATAL|PANIC|ERROR|recovery|restore/.test(l))
    .slice(-maxLines)
    .map((l) => l.trim());
}
