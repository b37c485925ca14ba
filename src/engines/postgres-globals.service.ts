import { createWriteStream } from 'node:fs';
import { rm } from 'node:fs/promises';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { createdRoles, globalsQuery, globalsRecords, globalsScript } from './postgres-globals';
import { ProcessRunner } from './process-runner';

/** A psql connection: the URL (no password) and the environment holding `PGPASSWORD` when there is one. */
export interface PsqlConnection {
  url: string;
  env: Record<string, string>;
}

/** What {@link PostgresGlobals.apply} leaves out. */
export interface GlobalsApplyOptions {
  /** Leave the database's owner, privileges and settings alone (it existed before the restore). */
  skipDatabase: boolean;
  /** Leave the database's owner alone (owners are mapped, or not restored). */
  skipOwner: boolean;
  /** Leave the database's privileges alone (`privileges: "skip"`). */
  skipPrivileges: boolean;
}

/**
 * Captures a PostgreSQL database's globals into a psql script and applies such a script, both through `psql`
 * (the client the by-hand recipe uses, with the same connection and `PGPASSWORD` as pg_dump). What the script
 * holds and why: src/engines/postgres-globals.ts.
 */
export class PostgresGlobals {
  constructor(
    private readonly processes: ProcessRunner,
    private readonly psql: string,
  ) {}

  /**
   * Runs the globals query in `database` and writes the script to `<scratchDir>/<runId>.globals.sql`
   * (streamed: the query's rows are turned into script lines as they arrive).
   * @returns the scratch file's path (the caller removes it).
   * @throws Error naming psql's reason (e.g. "permission denied for table pg_authid" when password hashes were
   *   asked for without superuser); the scratch file is removed then.
   */
  async capture(connection: PsqlConnection, database: string, passwords: boolean, scratchDir: string, runId: string, signal: AbortSignal): Promise<string> {
    const path = join(scratchDir, `${runId}.globals.sql`);
    const proc = this.processes.spawn(this.psql, ['-X', '-q', '-At', '-v', 'ON_ERROR_STOP=1', '-c', globalsQuery(passwords), `--dbname=${connection.url}`], {
      env: { ...connection.env, PGCLIENTENCODING: 'UTF8' },
      signal,
    });
    proc.stdin.end();
    const script = Readable.from(
      (async function* () {
        for await (const line of globalsScript(globalsRecords(proc.stdout), database)) yield `${line}\n`;
      })(),
    );
    try {
      await Promise.all([pipeline(script, createWriteStream(path, { mode: 0o600 }), { signal }), proc.done]);
    } catch (error) {
      proc.child.kill('SIGKILL');
      await rm(path, { force: true });
      throw new Error(`cannot capture the roles the database needs (globals): ${(error as Error).message}`);
    }
    return path;
  }

  /**
   * Runs the globals script `scriptPath` in one transaction on `connection`'s database (psql `--single-transaction`,
   * stopping at the first error: either every missing role is created or none).
   * @returns the roles it created.
   * @throws Error with psql's reason.
   */
  async apply(connection: PsqlConnection, scriptPath: string, options: GlobalsApplyOptions, signal: AbortSignal): Promise<string[]> {
    const vars = [
      ...(options.skipDatabase ? ['-v', 'skip_database=1'] : []),
      ...(options.skipOwner ? ['-v', 'skip_owner=1'] : []),
      ...(options.skipPrivileges ? ['-v', 'skip_privileges=1'] : []),
    ];
    const proc = this.processes.spawn(
      this.psql,
      ['-X', '-q', '-At', '-v', 'ON_ERROR_STOP=1', '--single-transaction', ...vars, '-f', scriptPath, `--dbname=${connection.url}`],
      { env: { ...connection.env, PGCLIENTENCODING: 'UTF8' }, signal },
    );
    proc.stdin.end();
    const chunks: Buffer[] = [];
    proc.stdout.on('data', (c: Buffer) => chunks.push(c));
    try {
      await proc.done;
    } catch (error) {
      throw new Error(`the roles the database needs could not be created (globals): ${(error as Error).message}`);
    }
    return createdRoles(Buffer.concat(chunks).toString('utf8'));
  }
}
