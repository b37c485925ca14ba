import { createWriteStream } from 'node:fs';
import { mkdir, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { Readable, Writable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { Injectable, Logger } from '@nestjs/common';
import { IsBoolean, IsIn, IsInt, IsOptional, IsString, Matches, Max, MaxLength, Min } from 'class-validator';
import { Client } from 'pg';
import { AppConfig } from '../config/app-config';
import { DrError } from '../errors/dr-error';
import { TargetReservationKey, BackupEngine, EngineBackupRun, EngineRestoreResult, EngineRunContext, RecordedContent, RestoreCheck } from './backup-engine';
import { addDataOffsets, UnsupportedArchiveError } from './pg-custom-archive';
import { customArchiveChunks } from './pg-directory-archive';
import { PgDumpDigestStream, TableDigest } from './pg-dump-digest';
import { PostgresGlobals } from './postgres-globals.service';
import { ProcessRunner } from './process-runner';
import { SECRET_REF_PATTERN, SecretResolver } from '../secrets/secret-resolver';
import { DatabaseAddress, IsDatabaseUrl, parseDatabaseUrlField, postgresClientConfig, postgresToolUrl } from './database-url';

/** A PostgreSQL server and database: a connection URL without password, and where the password comes from. */
export class PostgresConnection {
  /**
   * `postgresql://user@host:port/database`, optionally with `sslmode`, `sslrootcert`, `application_name`,
   * `connect_timeout`: no password, no other parameter ({@link parseDatabaseUrl}).
   */
  @IsString()
  @MaxLength(2000)
  @IsDatabaseUrl('postgres')
  url: string;

  @IsOptional()
  @IsString()
  @Matches(SECRET_REF_PATTERN, { message: 'passwordSecret must be env:NAME or file:/absolute/path' })
  passwordSecret?: string;
}

/** Largest `source.jobs` of a PostgreSQL backup (parallel pg_dump workers; each holds a connection to the source). */
export const PG_DUMP_MAX_JOBS = 16;

/** `source` of a PostgreSQL backup: a connection (see {@link PostgresConnection}) and what to capture besides the dump. */
export class PostgresSource extends PostgresConnection {
  /**
   * Also record the password hashes (SCRAM/md5) of the roles the database references in the backup's globals
   * object, so restored roles can log in as before. Needs a superuser (pg_authid); off by default: restored roles
   * then have no password until one is set.
   */
  @IsOptional()
  @IsBoolean()
  rolePasswords?: boolean;

  /**
   * Parallel dump: `pg_dump --format=directory --jobs=<jobs>` (1 to {@link PG_DUMP_MAX_JOBS}) into a scratch
   * directory, which is then streamed into the artifact as the custom-format archive a plain dump would have been
   * (same artifact, restored the same way, see {@link customArchiveChunks}). pg_dump opens `jobs` + 1
   * connections. Absent: `pg_dump --format=custom` streamed straight from pg_dump (no scratch space).
   */
  @IsOptional()
  @IsInt({ message: `jobs must be an integer from 1 to ${PG_DUMP_MAX_JOBS}` })
  @Min(1, { message: `jobs must be an integer from 1 to ${PG_DUMP_MAX_JOBS}` })
  @Max(PG_DUMP_MAX_JOBS, { message: `jobs must be an integer from 1 to ${PG_DUMP_MAX_JOBS}` })
  jobs?: number;
}

/** How a restore treats the roles the backup's globals object names. */
export const ROLE_MODES = ['create', 'none'] as const;
export type RoleMode = (typeof ROLE_MODES)[number];
/** Whether a restore applies the dump's privileges (GRANT/REVOKE) and the database's. */
export const PRIVILEGE_MODES = ['restore', 'skip'] as const;
export type PrivilegeMode = (typeof PRIVILEGE_MODES)[number];

/** A role name as PostgreSQL allows it (1-63 bytes checked by the server), without NUL, not starting with `-`. */
const ROLE_NAME = /^(?!-)[^\u0000]{1,63}$/u;

/** `target` of a PostgreSQL restore: the database to restore into. */
export class PostgresTarget extends PostgresConnection {
  /** Create the database when it does not exist. */
  @IsOptional()
  @IsBoolean()
  create?: boolean;

  /** Skip restoring object ownership (`pg_restore --no-owner`): objects belong to the connecting user. */
  @IsOptional()
  @IsBoolean()
  noOwner?: boolean;

  /**
   * `create` (the default): before pg_restore, create the roles the backup's globals object names that the
   * server lacks (with their memberships and settings; existing roles are left as they are), and give a database
   * the restore creates its recorded owner, privileges and settings. `none`: create no role (each role the dump
   * names must exist, unless `owner`/`noOwner` and `privileges: "skip"` keep the dump from naming any).
   */
  @IsOptional()
  @IsIn(ROLE_MODES, { message: `roles must be one of ${ROLE_MODES.join(', ')}` })
  roles?: RoleMode;

  /**
   * Map every owner to this role of the target server: the restored objects and a database the restore creates
   * belong to it (`pg_restore --no-owner --role=<owner>`; the connecting user must be a member of it).
   */
  @IsOptional()
  @IsString()
  @Matches(ROLE_NAME, { message: 'owner must be a role name (1-63 characters, not starting with "-")' })
  owner?: string;

  /** `restore` (the default): the dump's GRANTs and the database's; `skip`: none (`pg_restore --no-privileges`). */
  @IsOptional()
  @IsIn(PRIVILEGE_MODES, { message: `privileges must be one of ${PRIVILEGE_MODES.join(', ')}` })
  privileges?: PrivilegeMode;
}

interface ParsedUrl {
  /** The checked parts. */
  address: DatabaseAddress;
  /** The URL the libpq tools get, rebuilt from the checked parts ({@link postgresToolUrl}). */
  url: URL;
  database: string;
}

/**
 * PostgreSQL logical backups: `pg_dump --format=custom --compress=0` streamed out (the pipeline compresses with
 * zstd), or with `source.jobs` a parallel `pg_dump --format=directory --jobs=N` turned into the same custom-format
 * archive; restored with `pg_restore --jobs=N` from a scratch copy (parallel restore needs a seekable file).
 * Passwords reach the tools only through `PGPASSWORD` in their environment.
 */
@Injectable()
export class PostgresEngine implements BackupEngine<PostgresSource, PostgresTarget> {
  private readonly logger = new Logger(PostgresEngine.name);
  /** Targets built by {@link verifyRestore} on DR_VERIFY_PG_URL, whose password reference is the operator's. */
  private readonly operatorSecretTargets = new WeakSet<PostgresConnection>();
  readonly name = 'postgres' as const;
  readonly artifactExtension = 'pgdump';
  readonly contentType = 'application/vnd.postgresql.custom-dump';
  readonly indexInRecord = false;
  /** The dump is spooled to scratch to its end (and so proven) before pg_restore or CREATE DATABASE runs. */
  readonly restoreIsStaged = true;
  readonly sourceClass = PostgresSource;
  readonly targetClass = PostgresTarget;

  private readonly globals: PostgresGlobals;

  constructor(
    private readonly config: AppConfig,
    private readonly processes: ProcessRunner,
    private readonly secrets: SecretResolver,
  ) {
    this.globals = new PostgresGlobals(processes, this.tool('psql'));
  }

  private tool(name: 'pg_dump' | 'pg_restore' | 'psql'): string {
    return this.config.pgBinDir ? join(this.config.pgBinDir, name) : name;
  }

  async toolVersions(): Promise<Record<string, string>> {
    const [dump, restore, psql] = await Promise.all([
      this.processes.output(this.tool('pg_dump'), ['--version']),
      this.processes.output(this.tool('pg_restore'), ['--version']),
      this.processes.output(this.tool('psql'), ['--version']),
    ]);
    return { pg_dump: dump.trim(), pg_restore: restore.trim(), psql: psql.trim() };
  }

  async checkSource(source: PostgresSource): Promise<void> {
    parseUrl(source.url, 'source.url');
  }

  /**
   * Streams `pg_dump -Fc` of the database; once it has ended, captures the roles the database references into a
   * scratch file (the backup's globals object, {@link PostgresGlobals.capture}). Capturing after the dump makes the
   * globals a superset of what the dump names (a role granted something during the dump is included).
   */
  async backup(source: PostgresSource, context: EngineRunContext): Promise<EngineBackupRun> {
    const { url, database } = parseUrl(source.url, 'source.url');
    const env = await this.passwordEnv(source, 'source.passwordSecret');
    const dump = source.jobs ? this.parallelDump(url, env, source.jobs, context) : this.streamedDump(url, env, context);
    const digest = new PgDumpDigestStream();
    dump.stream.once('error', (error) => digest.destroy(error));
    const stream = dump.stream.pipe(digest);
    const digested = new Promise<void>((resolve, reject) => {
      digest.once('end', resolve);
      digest.once('error', reject);
    });
    digested.catch(() => undefined);
    const done = Promise.all([dump.done, digested]).then(async () => {
      await mkdir(context.scratchDir, { recursive: true, mode: 0o700 });
      const globalsPath = await this.globals.capture(
        { url: url.toString(), env },
        database,
        source.rolePasswords === true,
        context.scratchDir,
        context.runId,
        context.signal,
      );
      return {
        warnings: digest.problem ? [digest.problem] : [],
        tables: digest.problem ? undefined : digest.digests,
        globalsPath,
      };
    });
    return { stream, done };
  }

  /** `pg_dump --format=custom --compress=0` to a pipe: the archive as pg_dump writes it. */
  private streamedDump(url: URL, env: Record<string, string>, context: EngineRunContext): { stream: Readable; done: Promise<unknown> } {
    const proc = this.processes.spawn(this.tool('pg_dump'), ['--format=custom', '--compress=0', '--no-password', `--dbname=${url.toString()}`], {
      env,
      signal: context.signal,
    });
    proc.stdin.end();
    return { stream: proc.stdout, done: proc.done };
  }

  /**
   * `pg_dump --format=directory --jobs=N --compress=0` into the scratch directory `<runId>.pgdir` (scratch space:
   * the raw dump's size), then that directory streamed as the custom-format archive `pg_dump -Fc -Z0` would have
   * written ({@link customArchiveChunks}), so the artifact, its table digests and its restore are those of a
   * plain dump. The directory is removed when the stream ends or fails (and by the leftovers sweep after a crash).
   * Nothing flows while pg_dump runs: the backup's progress starts once the dump is complete.
   */
  private parallelDump(url: URL, env: Record<string, string>, jobs: number, context: EngineRunContext): { stream: Readable; done: Promise<unknown> } {
    const dir = join(context.scratchDir, `${context.runId}.pgdir`);
    const dumpTool = this.tool('pg_dump');
    const processes = this.processes;
    async function* chunks(): AsyncGenerator<Buffer> {
      try {
        await mkdir(context.scratchDir, { recursive: true, mode: 0o700 });
        await rm(dir, { recursive: true, force: true });
        const proc = processes.spawn(
          dumpTool,
          ['--format=directory', `--jobs=${jobs}`, '--compress=0', '--no-password', `--file=${dir}`, `--dbname=${url.toString()}`],
          { env, signal: context.signal },
        );
        proc.stdin.end();
        proc.stdout.resume();
        await proc.done;
        context.signal.throwIfAborted();
        yield* customArchiveChunks(dir);
      } finally {
        await rm(dir, { recursive: true, force: true });
      }
    }
    const stream = Readable.from(chunks(), { objectMode: false, highWaterMark: 1 << 20 });
    // the stream's end (or error) is its outcome: the digest stream it feeds reports both
    return { stream, done: Promise.resolve() };
  }

  async checkTarget(target: PostgresTarget, overwrite: boolean): Promise<void> {
    const { database } = parseUrl(target.url, 'target.url');
    if (target.owner && !(await this.roleExists(target, target.owner))) {
      throw DrError.validation([{ field: 'target.owner', message: `role "${target.owner}" does not exist on the target server` }]);
    }
    const exists = await this.databaseExists(target);
    if (exists && !overwrite) {
      throw new DrError('TARGET_EXISTS', `target database "${database}" exists; set "overwrite": true to restore into it`, [
        { field: 'target.url', message: 'database exists' },
      ]);
    }
    if (!exists && !target.create) {
      throw DrError.validation([{ field: 'target.create', message: `database "${database}" does not exist; set target.create to create it` }]);
    }
  }

  /**
   * Restores the dump into the target database: the dump is written to scratch (pg_restore --jobs needs a file),
   * the database created when missing (owned by `target.owner` when given), the backup's globals applied
   * (`target.roles`, default `create`: missing roles created in one transaction), then `pg_restore`. When anything
   * fails, a database this restore created is dropped and so are the roles it created: the server is left as it was.
   * @throws DrError for a refused target; Error with the failing tool's reason (and what could not be cleaned up).
   */
  async restore(
    target: PostgresTarget,
    input: Readable,
    overwrite: boolean,
    context: EngineRunContext,
    extraArgs: string[] = [],
  ): Promise<EngineRestoreResult> {
    const { url, database } = parseUrl(target.url, 'target.url');
    await this.checkTarget(target, overwrite);
    await mkdir(context.scratchDir, { recursive: true, mode: 0o700 });
    const scratch = join(context.scratchDir, `${context.runId}.pgdump`);
    const globalsScript = join(context.scratchDir, `${context.runId}.globals.sql`);
    const applyGlobals = context.openGlobals !== undefined && (target.roles ?? 'create') === 'create';
    let createdDatabase = false;
    let createdRoles: string[] = [];
    try {
      await pipeline(input, createWriteStream(scratch, { mode: 0o600, highWaterMark: 1 << 20 }), { signal: context.signal });
      // the globals are read whole (and their SHA-256 checked) before anything runs
      if (applyGlobals) await pipeline(await context.openGlobals!(), createWriteStream(globalsScript, { mode: 0o600 }), { signal: context.signal });
      const warnings: string[] = [];
      const jobs = await this.parallelJobsFor(scratch, warnings);
      const env = await this.passwordEnv(target, 'target.passwordSecret');
      if (!(await this.databaseExists(target))) {
        const owner = target.owner ? ` OWNER ${quoteIdent(target.owner)}` : '';
        await this.withMaintenanceClient(target, (c) => c.query(`CREATE DATABASE ${quoteIdent(database)}${owner}`));
        createdDatabase = true;
      }
      if (applyGlobals) {
        createdRoles = await this.globals.apply(
          { url: url.toString(), env },
          globalsScript,
          {
            skipDatabase: !createdDatabase,
            skipOwner: Boolean(target.owner || target.noOwner),
            skipPrivileges: target.privileges === 'skip',
          },
          context.signal,
        );
        if (createdRoles.length) this.logger.log(`restore ${context.runId}: created roles ${createdRoles.join(', ')}`);
      }
      const args = [`--dbname=${url.toString()}`, `--jobs=${jobs}`, '--exit-on-error', '--no-password'];
      if (overwrite) args.push('--clean', '--if-exists');
      if (target.noOwner || target.owner) args.push('--no-owner');
      if (target.owner) args.push(`--role=${target.owner}`);
      if (target.privileges === 'skip') args.push('--no-privileges');
      args.push(...extraArgs, scratch);
      const proc = this.processes.spawn(this.tool('pg_restore'), args, { env, signal: context.signal });
      proc.stdin.end();
      proc.stdout.resume();
      await proc.done;
      if (createdRoles.length)
        warnings.push(`created roles the database needs: ${createdRoles.join(', ')} (without passwords unless the backup recorded them)`);
      return { warnings };
    } catch (error) {
      const leftovers = createdDatabase ? await this.undoCreated(target, database, createdRoles) : [];
      if (!leftovers.length) throw error;
      throw new Error(`${(error as Error).message}; could not undo: ${leftovers.join('; ')}`);
    } finally {
      await rm(scratch, { force: true });
      await rm(globalsScript, { force: true });
    }
  }

  /**
   * After a failed restore into a database it created: drops that database, then the roles the restore created
   * (newest first). @returns what could not be removed (empty when all went)
   */
  private async undoCreated(target: PostgresTarget, database: string, roles: string[]): Promise<string[]> {
    const left: string[] = [];
    await this.withMaintenanceClient(target, async (c) => {
      await c.query(`DROP DATABASE IF EXISTS ${quoteIdent(database)} WITH (FORCE)`).catch((e: Error) => left.push(`database ${database}: ${e.message}`));
      for (const role of [...roles].reverse()) {
        await c.query(`DROP ROLE IF EXISTS ${quoteIdent(role)}`).catch((e: Error) => left.push(`role ${role}: ${e.message}`));
      }
    }).catch((e: Error) => left.push(e.message));
    for (const l of left) this.logger.warn(`could not undo a failed restore: ${l}`);
    return left;
  }

  /**
   * Prepares the scratch copy of a dump for `pg_restore --jobs`: a dump written to a pipe (as every backup is) lacks
   * its tables' data offsets, and without them each parallel worker skips through the data one chunk at a time
   * (measured: 8.5-12 s instead of 4.4 s for pgbench scale 30, 6,000,118 lseek calls instead of 54).
   * @returns `DR_PG_RESTORE_JOBS`, or 1 when the archive cannot be patched (then a warning says why).
   */
  private async parallelJobsFor(scratch: string, warnings: string[]): Promise<number> {
    if (this.config.pgRestoreJobs <= 1) return 1;
    try {
      const result = await addDataOffsets(scratch);
      this.logger.debug(`pg_dump archive ${result.archiveVersion}: ${result.patched} of ${result.tocEntries} TOC entries given data offsets`);
      return this.config.pgRestoreJobs;
    } catch (error) {
      if (!(error instanceof UnsupportedArchiveError)) throw error;
      const warning = `restored without --jobs: the dump's data offsets could not be added (${error.message})`;
      this.logger.warn(warning);
      warnings.push(warning);
      return 1;
    }
  }

  async reservationKey(target: PostgresTarget): Promise<TargetReservationKey> {
    const { url, database } = parseUrl(target.url, 'target.url');
    return { key: `postgresql://${url.hostname.toLowerCase()}:${url.port || '5432'}/${database}`, field: 'target.url' };
  }

  describeTarget(target: PostgresTarget): Record<string, unknown> {
    return { ...target };
  }

  /**
   * Deep verification: restores into a scratch database `dr_verify_<run>` (on `DR_VERIFY_PG_URL`, else on the
   * source's server; without owners and privileges, which the scratch server may not have), dumps its data again
   * with the same pg_dump (`--data-only -Fc -Z0`) through the same digester, and compares every table's rows and
   * SHA-256 with those recorded at backup time. The scratch database is dropped whatever happens. Digests match
   * when the restored server formats values as the source's did (same major version: always).
   */
  async verifyRestore(source: PostgresSource, input: Readable, recorded: RecordedContent, context: EngineRunContext): Promise<RestoreCheck> {
    if (!recorded.tables) throw new Error('this backup recorded no table digests to compare a restore with');
    const server = this.config.verifyPgUrl
      ? { url: this.config.verifyPgUrl, passwordSecret: this.config.verifyPgPasswordSecret }
      : { url: source.url, passwordSecret: source.passwordSecret };
    const database = `dr_verify_${context.runId
      .replace(/[^a-z0-9]/gi, '')
      .slice(0, 24)
      .toLowerCase()}`;
    const serverAddress = parseDatabaseUrlField(server.url, 'postgres', this.config.verifyPgUrl ? 'DR_VERIFY_PG_URL' : 'source.url', false);
    const scratchUrl = new URL(postgresToolUrl(serverAddress, database));
    const target = Object.assign(new PostgresTarget(), { url: scratchUrl.toString(), passwordSecret: server.passwordSecret, create: true, noOwner: true });
    // DR_VERIFY_PG_PASSWORD_SECRET is the operator's: resolved as configuration, not as a request's reference
    if (this.config.verifyPgUrl) this.operatorSecretTargets.add(target);
    const drop = () => this.withMaintenanceClient(target, (c) => c.query(`DROP DATABASE IF EXISTS ${quoteIdent(database)} WITH (FORCE)`));
    await drop();
    try {
      await this.restore(target, input, false, context, ['--no-privileges']);
      const restored = await this.digestData(target, context);
      return { ...compareTables(recorded.tables, restored), scratchTarget: `${scratchUrl.host}/${database}` };
    } finally {
      await drop().catch((error: Error) => this.logger.warn(`could not drop scratch database ${database}: ${error.message}`));
    }
  }

  /** Dumps the data of `target` (`--data-only -Fc -Z0`) through the digester and returns its per-table digests. */
  private async digestData(target: PostgresTarget, context: EngineRunContext): Promise<TableDigest[]> {
    const { url } = parseUrl(target.url, 'target.url');
    const proc = this.processes.spawn(this.tool('pg_dump'), ['--format=custom', '--compress=0', '--data-only', '--no-password', `--dbname=${url.toString()}`], {
      env: await this.passwordEnv(target, 'target.passwordSecret'),
      signal: context.signal,
    });
    proc.stdin.end();
    const digest = new PgDumpDigestStream();
    await pipeline(proc.stdout, digest, new Writable({ write: (_c, _e, cb) => cb() }));
    await proc.done;
    if (digest.problem) throw new Error(digest.problem);
    return digest.digests;
  }

  private async passwordEnv(conn: PostgresConnection, field: string): Promise<Record<string, string>> {
    const password = await this.passwordOf(conn, field);
    return password === undefined ? {} : { PGPASSWORD: password };
  }

  /** The password `conn.passwordSecret` names (a request's reference, or the operator's for verification servers). */
  private async passwordOf(conn: PostgresConnection, field: string): Promise<string | undefined> {
    if (!conn.passwordSecret) return undefined;
    return this.operatorSecretTargets.has(conn)
      ? this.secrets.resolveOperatorSecret(conn.passwordSecret, 'DR_VERIFY_PG_PASSWORD_SECRET')
      : this.secrets.resolve(conn.passwordSecret, field);
  }

  private async roleExists(target: PostgresTarget, role: string): Promise<boolean> {
    const result = await this.withMaintenanceClient(target, (c) => c.query('SELECT 1 FROM pg_roles WHERE rolname = $1', [role]));
    return (result.rowCount ?? 0) > 0;
  }

  private async databaseExists(target: PostgresTarget): Promise<boolean> {
    const { database } = parseUrl(target.url, 'target.url');
    const result = await this.withMaintenanceClient(target, (c) => c.query('SELECT 1 FROM pg_database WHERE datname = $1', [database]));
    return (result.rowCount ?? 0) > 0;
  }

  /**
   * Runs `fn` on a connection to the target server's `postgres` database, with the target's password (given field
   * by field: pg ignores a password given beside a connection string). @throws DrError when unreachable
   */
  private async withMaintenanceClient<T>(target: PostgresTarget, fn: (client: Client) => Promise<T>): Promise<T> {
    const { address } = parseUrl(target.url, 'target.url');
    const password = await this.passwordOf(target, 'target.passwordSecret');
    let client: Client;
    try {
      client = new Client(await postgresClientConfig(address, password, 'postgres'));
      await client.connect();
    } catch (error) {
      throw DrError.validation([{ field: 'target.url', message: `cannot connect to the target server: ${(error as Error).message}` }]);
    }
    try {
      return await fn(client);
    } finally {
      await client.end().catch(() => undefined);
    }
  }
}

/**
 * Parses a PostgreSQL URL with the one strict parser ({@link parseDatabaseUrl}): no password, no libpq parameter
 * that would override the checked parts (`dbname`, `user`, `host`, `port`), nothing outside the allowed list.
 * @throws DrError VALIDATION_FAILED naming `field`.
 */
export function parseUrl(raw: string, field: string): ParsedUrl {
  const address = parseDatabaseUrlField(raw, 'postgres', field);
  return { address, url: new URL(postgresToolUrl(address)), database: address.database };
}

/** Compares the digests recorded at backup time with those of a restored database, table by table. */
export function compareTables(recorded: TableDigest[], restored: TableDigest[]): { problems: string[]; checked: Record<string, number> } {
  const problems: string[] = [];
  const after = new Map(restored.map((d) => [d.name, d]));
  let rows = 0;
  for (const before of recorded) {
    const now = after.get(before.name);
    after.delete(before.name);
    if (!now) {
      problems.push(`${before.name}: missing after restore (recorded ${before.rows} rows)`);
      continue;
    }
    rows += now.rows;
    if (now.rows !== before.rows) problems.push(`${before.name}: ${now.rows} rows after restore, recorded ${before.rows}`);
    else if (now.sha256 !== before.sha256) problems.push(`${before.name}: content sha256 ${now.sha256} after restore, recorded ${before.sha256}`);
  }
  for (const extra of after.values()) problems.push(`${extra.name}: restored, but not recorded at backup time`);
  return { problems, checked: { tables: recorded.length, rows } };
}

function quoteIdent(name: string): string {
  return `"${name.replace(/"/g, '""')}"`;
}
