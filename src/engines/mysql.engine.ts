import { access, constants } from 'node:fs/promises';
import { delimiter, join } from 'node:path';
import { Readable, Writable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { Injectable, Logger } from '@nestjs/common';
import { ArrayMaxSize, ArrayNotEmpty, IsArray, IsBoolean, IsOptional, IsString, Matches, MaxLength } from 'class-validator';
import { Connection, createConnection } from 'mysql2/promise';
import { DrError } from '../errors/dr-error';
import { scrubSecrets } from '../logging/secret-scrubber';
import { SECRET_REF_PATTERN, SecretResolver } from '../secrets/secret-resolver';
import { BackupEngine, EngineBackupRun, EngineRestoreResult, EngineRunContext, RecordedContent, RestoreCheck } from './backup-engine';
import { MysqlDumpDigestStream } from './mysql-dump-digest';
import { TableDigest } from './pg-dump-digest';
import { compareTables } from './postgres.engine';
import { ProcessRunner } from './process-runner';

const MYSQL_URL = /^(mysql|mariadb):\/\//;
/** A table name as MySQL allows it (1-64 characters, no NUL), not starting with `-` (it is passed in argv). */
const TABLE_NAME = /^(?!-)[^\u0000]{1,64}$/u;
const CONNECT_TIMEOUT_SECONDS = 10;
/** Largest statement the tools accept (the server's own `max_allowed_packet` still applies). */
const MAX_ALLOWED_PACKET = '1073741824';

/** A MySQL or MariaDB server and database: a URL without password, and where the password comes from. */
export class MysqlConnection {
  @IsString() @Matches(MYSQL_URL, { message: 'url must be a mysql:// (or mariadb://) URL' }) @MaxLength(2000)
  url: string;

  @IsOptional() @IsString() @Matches(SECRET_REF_PATTERN, { message: 'passwordSecret must be env:NAME or file:/absolute/path' })
  passwordSecret?: string;
}

/** `source` of a MySQL/MariaDB backup: `mysql://user@host:port/database`, its password, and optionally which tables. */
export class MysqlSource extends MysqlConnection {
  /** Only these tables (and the database's views, routines, events); all tables when absent. */
  @IsOptional() @IsArray() @ArrayNotEmpty() @ArrayMaxSize(10_000)
  @IsString({ each: true }) @Matches(TABLE_NAME, { each: true, message: 'tables must hold table names (1-64 characters, not starting with "-")' })
  tables?: string[];
}

/** `target` of a MySQL/MariaDB restore: the database to restore into. */
export class MysqlTarget extends MysqlConnection {
  /** Create the database when it does not exist. */
  @IsOptional() @IsBoolean()
  create?: boolean;
}

/** The parts of a `mysql://user@host:port/database` URL. */
export interface MysqlAddress {
  host: string;
  port: number;
  user: string;
  database: string;
}

/**
 * Parses a `mysql://user@host[:port]/database` URL (scheme `mariadb://` too; port 3306 by default). Refuses an
 * embedded password (it would be stored in records), a missing user or database, and query parameters (none are
 * supported: TCP without TLS options).
 * @throws DrError VALIDATION_FAILED naming `field`.
 */
export function parseMysqlUrl(raw: string, field: string): MysqlAddress {
  let url: URL;
  try {
    url = new URL(raw);
  } catch {
    throw DrError.validation([{ field, message: 'not a valid URL' }]);
  }
  const problem = (message: string) => DrError.validation([{ field, message }]);
  if (!MYSQL_URL.test(raw)) throw problem('must be a mysql:// (or mariadb://) URL');
  if (url.password) throw problem('must not contain a password; name it with passwordSecret instead');
  if (!url.username) throw problem('must name a user, e.g. mysql://backup@host:3306/dbname');
  if (!url.hostname) throw problem('must name a host, e.g. mysql://backup@host:3306/dbname');
  if (url.search || url.hash) throw problem('must not have query parameters or a fragment');
  let database: string;
  try {
    database = decodeURIComponent(url.pathname.replace(/^\//, ''));
  } catch {
    throw problem('the database name is not valid percent-encoding');
  }
  if (!database || database.includes('/') || database.length > 64 || database.startsWith('-') || database.includes('\u0000')) {
    throw problem('must name a database (1-64 characters), e.g. mysql://backup@host:3306/dbname');
  }
  return {
    host: url.hostname.replace(/^\[(.*)\]$/, '$1'),
    port: url.port ? Number(url.port) : 3306,
    user: decodeURIComponent(url.username),
    database,
  };
}

/** `name` quoted as a MySQL identifier (backticks doubled). */
function quoteIdent(name: string): string {
  return `\`${name.replace(/`/g, '``')}\``;
}

/** Errors of the tools and the driver, with the password (if any) and anything secret-looking masked. */
function scrubbed(error: unknown, password: string | undefined, prefix = ''): Error {
  const message = error instanceof Error ? error.message : String(error);
  let text = scrubSecrets(`${prefix}${message}`);
  if (password) text = text.split(password).join('***');
  return new Error(text);
}

/** The first of `names` found as an executable on PATH. @returns its path, or undefined */
async function findOnPath(names: string[]): Promise<string | undefined> {
  const dirs = (process.env.PATH ?? '').split(delimiter).filter(Boolean);
  for (const name of names) {
    for (const dir of dirs) {
      const candidate = join(dir, name);
      try {
        await access(candidate, constants.X_OK);
        return candidate;
      } catch {
        // not here
      }
    }
  }
  return undefined;
}

interface Tools {
  dump: string;
  client: string;
  /** `--version` lines, by tool name. */
  versions: Record<string, string>;
  /** The dump tool is MySQL's mysqldump (not MariaDB's): it needs `--set-gtid-purged=OFF`. */
  oracleMysqldump: boolean;
  /** The client is MariaDB's: it knows `--skip-print-query-on-error` (which keeps row data out of error reasons). */
  mariadbClient: boolean;
}

/**
 * MySQL and MariaDB logical backups: `mariadb-dump` (or `mysqldump` where MariaDB's is not installed) with
 * `--single-transaction` (one consistent InnoDB snapshot, no table locks) writes SQL that is streamed through
 * {@link MysqlDumpDigestStream} (per-table row counts and SHA-256) into the pipeline; `mariadb` (or `mysql`) reads it
 * back into a target database. The dump names no database (no `CREATE DATABASE`, no `USE`), so it restores into a
 * database of any name. Passwords reach the tools only through `MYSQL_PWD` in their environment, and the driver
 * (mysql2, for the few queries: versions, table engines, existence checks) in memory; `--no-defaults` keeps option
 * files (`~/.my.cnf`) from changing what is dumped.
 *
 * Tables of other engines than InnoDB (MyISAM, Aria...) are not covered by the snapshot: the backup records a
 * warning naming them. Events are dumped when the user may read them (EVENT privilege), else a warning says so.
 */
@Injectable()
export class MysqlEngine implements BackupEngine<MysqlSource, MysqlTarget> {
  private readonly logger = new Logger(MysqlEngine.name);
  readonly name = 'mysql' as const;
  readonly artifactExtension = 'sql';
  readonly contentType = 'application/sql';
  readonly indexInRecord = false;
  readonly sourceClass = MysqlSource;
  readonly targetClass = MysqlTarget;
  private tools?: Promise<Tools>;

  constructor(
    private readonly processes: ProcessRunner,
    private readonly secrets: SecretResolver,
  ) {}

  /** The dump and client tools found on PATH, with their versions (looked up once). @throws Error when missing */
  private findTools(): Promise<Tools> {
    this.tools ??= (async () => {
      const dump = await findOnPath(['mariadb-dump', 'mysqldump']);
      const client = await findOnPath(['mariadb', 'mysql']);
      if (!dump || !client) {
        throw new Error('the MySQL/MariaDB client tools are not installed: need mariadb-dump (or mysqldump) and mariadb (or mysql) on PATH');
      }
      const [dumpVersion, clientVersion] = await Promise.all([
        this.processes.output(dump, ['--version']),
        this.processes.output(client, ['--version']),
      ]);
      return {
        dump,
        client,
        versions: { [dump.split('/').pop()!]: dumpVersion.trim(), [client.split('/').pop()!]: clientVersion.trim() },
        oracleMysqldump: !/mariadb/i.test(dumpVersion),
        mariadbClient: /mariadb/i.test(clientVersion),
      };
    })();
    this.tools.catch(() => (this.tools = undefined));
    return this.tools;
  }

  async toolVersions(): Promise<Record<string, string>> {
    return (await this.findTools()).versions;
  }

  async checkSource(source: MysqlSource): Promise<void> {
    parseMysqlUrl(source.url, 'source.url');
  }

  async backup(source: MysqlSource, context: EngineRunContext): Promise<EngineBackupRun> {
    const address = parseMysqlUrl(source.url, 'source.url');
    const password = await this.password(source, 'source.passwordSecret');
    const tools = await this.findTools();
    const warnings: string[] = [];
    const probe = await this.withConnection(address, password, address.database, async (c) => {
      const [[version]] = await c.query<any[]>('SELECT VERSION() AS version, @@version_comment AS comment');
      const [others] = await c.query<any[]>(
        `SELECT TABLE_NAME AS name, ENGINE AS engine FROM information_schema.TABLES
          WHERE TABLE_SCHEMA = ? AND TABLE_TYPE = 'BASE TABLE' AND (ENGINE IS NULL OR ENGINE <> 'InnoDB') ORDER BY TABLE_NAME`,
        [address.database],
      );
      let events = true;
      try {
        await c.query(`SHOW EVENTS FROM ${quoteIdent(address.database)}`);
      } catch (error) {
        events = false;
        warnings.push(`events not dumped: ${scrubbed(error, password).message}`);
      }
      return { server: `${version.version} (${version.comment})`, others: others as { name: string; engine: string | null }[], events };
    }).catch((error: Error) => {
      throw scrubbed(error, password, `cannot connect to ${address.host}:${address.port}/${address.database} as ${address.user}: `);
    });
    const wanted = source.tables ? new Set(source.tables) : undefined;
    const inconsistent = probe.others.filter((t) => !wanted || wanted.has(t.name));
    if (inconsistent.length) {
      const shown = inconsistent.slice(0, 20).map((t) => `${t.name} (${t.engine ?? 'unknown engine'})`).join(', ');
      warnings.push(
        `not covered by the consistent snapshot (--single-transaction covers InnoDB tables only), dumped as they were read: ${shown}` +
          (inconsistent.length > 20 ? ` and ${inconsistent.length - 20} more` : ''),
      );
    }
    for (const w of warnings) this.logger.warn(`backup ${context.runId}: ${w}`);

    const args = [
      ...this.connectionArgs(address),
      '--single-transaction',
      '--skip-lock-tables',
      '--skip-add-locks',
      '--quick',
      '--routines',
      '--triggers',
      probe.events ? '--events' : '--skip-events',
      '--hex-blob',
      '--default-character-set=utf8mb4',
      '--no-tablespaces',
      '--skip-dump-date',
      `--max-allowed-packet=${MAX_ALLOWED_PACKET}`,
      ...(tools.oracleMysqldump ? ['--set-gtid-purged=OFF'] : []),
      '--',
      address.database,
      ...(source.tables ?? []),
    ];
    const proc = this.processes.spawn(tools.dump, args, { env: this.passwordEnv(password), signal: context.signal });
    proc.stdin.end();
    const digest = new MysqlDumpDigestStream();
    proc.stdout.once('error', (error) => digest.destroy(error));
    const stream = proc.stdout.pipe(digest);
    const digested = new Promise<void>((resolve, reject) => {
      digest.once('end', resolve);
      digest.once('error', reject);
    });
    digested.catch(() => undefined);
    const done = Promise.all([proc.done, digested]).then(
      () => ({
        warnings: digest.problem ? [...warnings, digest.problem] : warnings,
        tables: digest.problem ? undefined : digest.digests,
        tools: { 'mysql-server': probe.server },
      }),
      (error: unknown) => {
        throw scrubbed(error, password);
      },
    );
    return { stream, done };
  }

  /**
   * Refuses a target database that exists and holds tables (TARGET_EXISTS) unless `overwrite`, and a missing one
   * unless `target.create` (VALIDATION_FAILED on `target.create`). An unreachable server is VALIDATION_FAILED on
   * `target.url`. @throws DrError
   */
  async checkTarget(target: MysqlTarget, overwrite: boolean): Promise<void> {
    await this.assessTarget(target, overwrite);
  }

  /** {@link checkTarget}. @returns whether the database exists */
  private async assessTarget(target: MysqlTarget, overwrite: boolean): Promise<boolean> {
    const address = parseMysqlUrl(target.url, 'target.url');
    const { exists, tables } = await this.targetState(target, address);
    if (exists && tables > 0 && !overwrite) {
      throw new DrError('TARGET_EXISTS', `target database "${address.database}" exists and holds ${tables} tables; set "overwrite": true to restore into it`, [
        { field: 'target.url', message: 'database exists and is not empty' },
      ]);
    }
    if (!exists && !target.create) {
      throw DrError.validation([
        { field: 'target.create', message: `database "${address.database}" does not exist; set target.create to create it` },
      ]);
    }
    return exists;
  }

  /**
   * Runs the dump through `mariadb` (or `mysql`) into the target database, creating it first when asked. The
   * dump's `DROP TABLE IF EXISTS` replaces the tables it holds (with `overwrite`); other tables stay. The client
   * stops at the first failing statement; its stderr is the recorded reason. When the input fails (a checksum
   * mismatch), the client is killed so that it never runs a truncated statement.
   */
  async restore(target: MysqlTarget, input: Readable, overwrite: boolean, context: EngineRunContext): Promise<EngineRestoreResult> {
    const address = parseMysqlUrl(target.url, 'target.url');
    const exists = await this.assessTarget(target, overwrite);
    const password = await this.password(target, 'target.passwordSecret');
    const tools = await this.findTools();
    if (!exists) {
      await this.withConnection(address, password, undefined, (c) =>
        c.query(`CREATE DATABASE IF NOT EXISTS ${quoteIdent(address.database)} CHARACTER SET utf8mb4`),
      ).catch((error: Error) => {
        throw scrubbed(error, password, `cannot create database ${address.database}: `);
      });
    }
    const proc = this.processes.spawn(
      tools.client,
      [...this.connectionArgs(address), `--connect-timeout=${CONNECT_TIMEOUT_SECONDS}`, '--default-character-set=utf8mb4', `--max-allowed-packet=${MAX_ALLOWED_PACKET}`,
        ...(tools.mariadbClient ? ['--skip-print-query-on-error'] : []), `--database=${address.database}`],
      { env: this.passwordEnv(password), signal: context.signal },
    );
    proc.stdout.resume();
    // Not pipeline(): on an input error it would close the client's stdin, and the client runs what it has read
    // so far at end of input (a truncated INSERT can still be valid SQL). The client is killed first instead.
    let inputError: unknown;
    const fed = new Promise<void>((resolve) => {
      input.once('end', () => {
        proc.stdin.end();
        resolve();
      });
      input.once('error', (error) => {
        inputError = error;
        proc.child.kill('SIGKILL');
        resolve();
      });
    });
    input.pipe(proc.stdin, { end: false });
    try {
      await proc.done;
    } catch (error) {
      if (inputError) throw inputError;
      throw scrubbed(error, password);
    }
    if (!inputError && !input.readableEnded) {
      input.destroy();
      throw new Error(`${tools.client.split('/').pop()} exited before it had read the whole dump`);
    }
    await fed;
    if (inputError) throw inputError;
    return { warnings: [] };
  }

  describeTarget(target: MysqlTarget): Record<string, unknown> {
    return { ...target };
  }

  /**
   * Deep verification: restores into a scratch database `dr_verify_<run>` on the source's server (the source's
   * user needs CREATE and DROP there), dumps it again with the same tool and options through the same parser, and
   * compares every table's rows and SHA-256 with those recorded at backup time. The scratch database is dropped
   * whatever happens.
   */
  async verifyRestore(source: MysqlSource, input: Readable, recorded: RecordedContent, context: EngineRunContext): Promise<RestoreCheck> {
    if (!recorded.tables) throw new Error('this backup recorded no table digests to compare a restore with');
    const address = parseMysqlUrl(source.url, 'source.url');
    const database = `dr_verify_${context.runId.replace(/[^a-z0-9]/gi, '').slice(0, 24).toLowerCase()}`;
    const url = new URL(source.url);
    url.pathname = `/${database}`;
    const target = Object.assign(new MysqlTarget(), { url: url.toString(), passwordSecret: source.passwordSecret, create: true });
    const scratch = { ...address, database };
    const password = await this.password(source, 'source.passwordSecret');
    const drop = () => this.withConnection(scratch, password, undefined, (c) => c.query(`DROP DATABASE IF EXISTS ${quoteIdent(database)}`));
    await drop().catch((error: Error) => {
      throw scrubbed(error, password, `cannot prepare scratch database ${database}: `);
    });
    try {
      await this.restore(target, input, false, context);
      const restored = await this.digestDatabase(scratch, password, context);
      return { ...compareTables(recorded.tables, restored), scratchTarget: `${address.host}:${address.port}/${database}` };
    } finally {
      await drop().catch((error: Error) => this.logger.warn(`could not drop scratch database ${database}: ${scrubbed(error, password).message}`));
    }
  }

  /** Dumps the rows of `address` (no routines, triggers, events) through the parser. @returns per-table digests */
  private async digestDatabase(address: MysqlAddress, password: string | undefined, context: EngineRunContext): Promise<TableDigest[]> {
    const tools = await this.findTools();
    const proc = this.processes.spawn(
      tools.dump,
      [
        ...this.connectionArgs(address),
        '--single-transaction', '--skip-lock-tables', '--skip-add-locks', '--quick', '--skip-routines', '--skip-triggers',
        '--skip-events', '--hex-blob', '--default-character-set=utf8mb4', '--no-tablespaces', '--skip-dump-date',
        `--max-allowed-packet=${MAX_ALLOWED_PACKET}`, ...(tools.oracleMysqldump ? ['--set-gtid-purged=OFF'] : []),
        '--', address.database,
      ],
      { env: this.passwordEnv(password), signal: context.signal },
    );
    proc.stdin.end();
    const digest = new MysqlDumpDigestStream();
    try {
      await pipeline(proc.stdout, digest, new Writable({ write: (_c, _e, cb) => cb() }));
      await proc.done;
    } catch (error) {
      throw scrubbed(error, password);
    }
    if (digest.problem) throw new Error(digest.problem);
    return digest.digests;
  }

  /**
   * Arguments every tool gets: no option files (must come first), TCP to host:port as user. (mariadb-dump has no
   * `--connect-timeout`; the driver's probe before each dump has one.)
   */
  private connectionArgs(address: MysqlAddress): string[] {
    return [
      '--no-defaults',
      `--host=${address.host}`,
      `--port=${address.port}`,
      '--protocol=TCP',
      `--user=${address.user}`,
    ];
  }

  private passwordEnv(password: string | undefined): Record<string, string> {
    return password === undefined ? {} : { MYSQL_PWD: password };
  }

  private async password(conn: MysqlConnection, field: string): Promise<string | undefined> {
    return conn.passwordSecret ? this.secrets.resolve(conn.passwordSecret, field) : undefined;
  }

  /** Whether the target database exists and how many tables (and views) it holds. @throws DrError when unreachable */
  private async targetState(target: MysqlTarget, address: MysqlAddress): Promise<{ exists: boolean; tables: number }> {
    const password = await this.password(target, 'target.passwordSecret');
    try {
      return await this.withConnection(address, password, undefined, async (c) => {
        const [schemata] = await c.query<any[]>('SELECT 1 FROM information_schema.SCHEMATA WHERE SCHEMA_NAME = ?', [address.database]);
        const [[count]] = await c.query<any[]>('SELECT COUNT(*) AS n FROM information_schema.TABLES WHERE TABLE_SCHEMA = ?', [address.database]);
        return { exists: schemata.length > 0, tables: Number(count.n) };
      });
    } catch (error) {
      throw DrError.validation([
        { field: 'target.url', message: `cannot connect to the target server: ${scrubbed(error, password).message}` },
      ]);
    }
  }

  /** Runs `fn` on a connection (to `database`, or to none), closed afterwards. */
  private async withConnection<T>(address: MysqlAddress, password: string | undefined, database: string | undefined, fn: (c: Connection) => Promise<T>): Promise<T> {
    const connection = await createConnection({
      host: address.host,
      port: address.port,
      user: address.user,
      password,
      database,
      charset: 'utf8mb4',
      connectTimeout: CONNECT_TIMEOUT_SECONDS * 1000,
      supportBigNumbers: true,
      bigNumberStrings: true,
    });
    try {
      return await fn(connection);
    } finally {
      await connection.end().catch(() => connection.destroy());
    }
  }
}
