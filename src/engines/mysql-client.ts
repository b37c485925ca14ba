import { access, constants } from 'node:fs/promises';
import { delimiter, join } from 'node:path';
import { Injectable } from '@nestjs/common';
import { Connection, createConnection, RowDataPacket } from 'mysql2/promise';
import { parseDatabaseUrlField } from './database-url';
import { scrubSecrets } from '../logging/secret-scrubber';
import { ProcessRunner, RunningProcess } from './process-runner';

const CONNECT_TIMEOUT_SECONDS = 10;
/** Largest statement the tools accept (the server's own `max_allowed_packet` still applies). */
const MAX_ALLOWED_PACKET = '1073741824';

/** The parts of a `mysql://user@host:port/database` URL. */
export interface MysqlAddress {
  host: string;
  port: number;
  user: string;
  database: string;
  /** The URL's `connect_timeout` (seconds); undefined: 10 s. */
  connectTimeoutSeconds?: number;
}

/**
 * Parses a `mysql://user@host[:port]/database[?connect_timeout=S]` URL (scheme `mariadb://` too; port 3306 by
 * default) with the one strict parser of database URLs ({@link parseDatabaseUrl}): no embedded password (it would be
 * stored in records), a user, a host and a database required, no other query parameter (no TLS options yet).
 * @throws DrError VALIDATION_FAILED naming `field`.
 */
export function parseMysqlUrl(raw: string, field: string): MysqlAddress {
  const address = parseDatabaseUrlField(raw, 'mysql', field);
  return {
    host: address.host,
    port: address.port,
    user: address.user!,
    database: address.database,
    connectTimeoutSeconds: address.params.connect_timeout ? Number(address.params.connect_timeout) : undefined,
  };
}

/** `name` quoted as a MySQL identifier (backticks doubled). */
export function quoteIdent(name: string): string {
  return `\`${name.replace(/`/g, '``')}\``;
}

/**
 * An error of a tool or the driver made safe for records: `prefix` + its message, with the password (if any) and
 * anything secret-looking ({@link scrubSecrets}) masked.
 */
export function scrubbedError(error: unknown, password: string | undefined, prefix = ''): Error {
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

/** The client programs found on PATH. */
export interface MysqlTools {
  dump: string;
  client: string;
  /** `--version` lines, by program name (`mariadb-dump`, `mariadb`...). */
  versions: Record<string, string>;
  /** The dump program is MySQL's mysqldump, not MariaDB's: it needs `--set-gtid-purged=OFF`. */
  oracleMysqldump: boolean;
  /** The client is MariaDB's: it knows `--skip-print-query-on-error` (which keeps row data out of error reasons). */
  mariadbClient: boolean;
}

/** Which parts of the database a dump holds besides tables and views. */
export interface DumpOptions {
  /** Routines, triggers and (when `events`) events: for backups; a re-dump for digests needs only the rows. */
  code: boolean;
  events: boolean;
  /** Only these tables (and views); all when absent. */
  tables?: string[];
}

/**
 * The MySQL/MariaDB client side: `mariadb-dump` (else `mysqldump`) and `mariadb` (else `mysql`) found on PATH and
 * run through {@link ProcessRunner}, and short queries through the mysql2 driver (a pinned, maintained driver:
 * parameterized queries and typed errors rather than parsing the client's text output). Every tool runs with
 * `--no-defaults` (option files such as `~/.my.cnf` do not change what is dumped or where it goes), over TCP, with
 * the password only in `MYSQL_PWD`.
 */
@Injectable()
export class MysqlClient {
  private tools?: Promise<MysqlTools>;

  constructor(private readonly processes: ProcessRunner) {}

  /** The programs and their versions (looked up once). @throws Error when they are not installed */
  findTools(): Promise<MysqlTools> {
    this.tools ??= (async () => {
      const dump = await findOnPath(['mariadb-dump', 'mysqldump']);
      const client = await findOnPath(['mariadb', 'mysql']);
      if (!dump || !client) {
        throw new Error('the MySQL/MariaDB client tools are not installed: need mariadb-dump (or mysqldump) and mariadb (or mysql) on PATH');
      }
      const [dumpVersion, clientVersion] = await Promise.all([this.processes.output(dump, ['--version']), this.processes.output(client, ['--version'])]);
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

  /**
   * Starts a dump of `address.database` to stdout: one `--single-transaction` snapshot (consistent for InnoDB), no
   * table locks, rows streamed (`--quick`), blobs in hex, utf8mb4, no `CREATE DATABASE` / `USE` (the database is
   * named as an argument, not with `--databases`), no dump date (two dumps of the same data are equal).
   * Format of the output: see {@link MysqlDumpParser}.
   */
  async dump(address: MysqlAddress, password: string | undefined, options: DumpOptions, signal: AbortSignal): Promise<RunningProcess> {
    const tools = await this.findTools();
    const args = [
      ...connectionArgs(address),
      '--single-transaction',
      '--skip-lock-tables',
      '--skip-add-locks',
      '--quick',
      ...(options.code ? ['--routines', '--triggers'] : ['--skip-routines', '--skip-triggers']),
      options.code && options.events ? '--events' : '--skip-events',
      '--hex-blob',
      '--default-character-set=utf8mb4',
      '--no-tablespaces',
      '--skip-dump-date',
      `--max-allowed-packet=${MAX_ALLOWED_PACKET}`,
      ...(tools.oracleMysqldump ? ['--set-gtid-purged=OFF'] : []),
      '--',
      address.database,
      ...(options.tables ?? []),
    ];
    const proc = this.processes.spawn(tools.dump, args, { env: passwordEnv(password), signal });
    proc.stdin.end();
    return proc;
  }

  /**
   * Starts the client on `address.database`, reading SQL from its stdin and stopping at the first error.
   * `extraArgs` go before the database (e.g. `--skip-column-names`).
   */
  async client(address: MysqlAddress, password: string | undefined, signal: AbortSignal, extraArgs: string[] = []): Promise<RunningProcess> {
    const tools = await this.findTools();
    const args = [
      ...connectionArgs(address),
      `--connect-timeout=${address.connectTimeoutSeconds ?? CONNECT_TIMEOUT_SECONDS}`,
      '--default-character-set=utf8mb4',
      `--max-allowed-packet=${MAX_ALLOWED_PACKET}`,
      ...(tools.mariadbClient ? ['--skip-print-query-on-error'] : []),
      ...extraArgs,
      `--database=${address.database}`,
    ];
    return this.processes.spawn(tools.client, args, { env: passwordEnv(password), signal });
  }

  /** Runs `fn` on a driver connection to the server (to `database`, or to none), closed afterwards. */
  async withConnection<T>(address: MysqlAddress, password: string | undefined, database: string | undefined, fn: (c: Connection) => Promise<T>): Promise<T> {
    const connection = await createConnection({
      host: address.host,
      port: address.port,
      user: address.user,
      password,
      database,
      charset: 'utf8mb4',
      connectTimeout: (address.connectTimeoutSeconds ?? CONNECT_TIMEOUT_SECONDS) * 1000,
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

/** Rows of a driver query, typed. */
export async function rows<T>(connection: Connection, sql: string, params: unknown[] = []): Promise<T[]> {
  const [result] = await connection.query<RowDataPacket[]>(sql, params);
  return result as unknown as T[];
}

/**
 * Arguments every program gets: no option files (must come first), TCP to host:port as user. (mariadb-dump has no
 * `--connect-timeout`; the driver's probe before each dump has one.)
 */
function connectionArgs(address: MysqlAddress): string[] {
  return ['--no-defaults', `--host=${address.host}`, `--port=${address.port}`, '--protocol=TCP', `--user=${address.user}`];
}

function passwordEnv(password: string | undefined): Record<string, string> {
  return password === undefined ? {} : { MYSQL_PWD: password };
}
