import { readFile, stat } from 'node:fs/promises';
import { posix } from 'node:path';
import type { ClientConfig } from 'pg';
import { ValidateBy, ValidationOptions } from 'class-validator';
import { DrError } from '../errors/dr-error';

/** The database engines whose sources and targets are URLs. */
export type DatabaseUrlKind = 'postgres' | 'mysql';

/**
 * Query parameters a URL may carry, per kind, with a check of each value (null: fine, else why not). Everything
 * else is refused: libpq reads `dbname`, `user`, `host`, `port` from the query too (overriding the checked parts of
 * the URL: `…/newdb?dbname=victim` restored into `victim`), `password` would be stored in records, and `service`,
 * `passfile`, `sslkey`, `options`... make libpq read files or set server options on the service's behalf.
 * libpq's parameters: https://www.postgresql.org/docs/current/libpq-connect.html#LIBPQ-PARAMKEYWORDS
 */
const ALLOWED_PARAMS: Record<DatabaseUrlKind, Record<string, (value: string) => string | null>> = {
  postgres: {
    sslmode: (v) =>
      ['disable', 'allow', 'prefer', 'require', 'verify-ca', 'verify-full'].includes(v)
        ? null
        : 'sslmode must be disable, allow, prefer, require, verify-ca or verify-full',
    sslrootcert: (v) =>
      v === 'system' || isPlainAbsolutePath(v) ? null : 'sslrootcert must be "system" or an absolute path (no "..", not under /proc, /sys or /dev)',
    application_name: (v) => (/^[\x20-\x7e]{1,63}$/.test(v) ? null : 'application_name must be 1-63 printable ASCII characters'),
    connect_timeout: (v) => timeoutProblem(v),
  },
  mysql: {
    connect_timeout: (v) => timeoutProblem(v),
  },
};

/** Parameters refused with a reason of their own (the rest: "not supported"). */
const REFUSED_PARAMS: Record<string, string> = {
  password: 'must not hold a password; name it with passwordSecret instead',
  dbname: "must not hold dbname: the database is the URL's path",
  user: "must not hold user: the user is the URL's user part",
  host: "must not hold host: the host is the URL's host part",
  hostaddr: "must not hold hostaddr: the host is the URL's host part",
  port: "must not hold port: the port is the URL's port part",
  service: "must not hold service: it reads connection settings from a file on the service's host",
  passfile: "must not hold passfile: it reads a file on the service's host; use passwordSecret",
};

const SCHEMES: Record<DatabaseUrlKind, string[]> = { postgres: ['postgres:', 'postgresql:'], mysql: ['mysql:', 'mariadb:'] };
const DEFAULT_PORTS: Record<DatabaseUrlKind, number> = { postgres: 5432, mysql: 3306 };
/** Longest database and user names: PostgreSQL's NAMEDATALEN - 1 (63 bytes; longer names are silently truncated), MySQL's 64 characters. */
const NAME_BYTES: Record<DatabaseUrlKind, number> = { postgres: 63, mysql: 64 };
/**
 * A host name (letters, digits, `-`, `_` as container names have, dot-separated), an IPv4 address, or a bracketed
 * IPv6 address. Not a socket path (`%2Fvar%2Frun`, which libpq would decode), not several hosts (`h1,h2`).
 */
const HOST = /^[A-Za-z0-9_]([A-Za-z0-9_-]*[A-Za-z0-9_])?(\.[A-Za-z0-9_]([A-Za-z0-9_-]*[A-Za-z0-9_])?)*$|^\[[0-9A-Fa-f:.]+\]$/;

/** The checked parts of a database URL. */
export interface DatabaseAddress {
  kind: DatabaseUrlKind;
  /** Host name or address, without IPv6 brackets. */
  host: string;
  port: number;
  /** Percent-decoded; undefined when the URL names none (PostgreSQL then uses the OS user's name). */
  user?: string;
  /** Percent-decoded; '' when the URL names none (allowed only where no database is needed). */
  database: string;
  /** The allowed query parameters it carries, checked. */
  params: Record<string, string>;
}

/** Why a URL is refused, without the URL (which may hold a password). */
export class DatabaseUrlError extends Error {}

/**
 * The one strict parser of database URLs, for sources and targets of both engines (and DR_VERIFY_PG_URL):
 * `postgresql://user@host:port/database?sslmode=…` (scheme `postgres` too) and `mysql://user@host:port/database`
 * (scheme `mariadb` too). Refuses a password in the URL, a missing or odd host (socket paths, several hosts), a
 * database name PostgreSQL would truncate or libpq would read as a connection string (`=`), a fragment, repeated
 * parameters, and every query parameter not in the allowed list: PostgreSQL `sslmode`, `sslrootcert`,
 * `application_name`, `connect_timeout`; MySQL `connect_timeout`.
 * @param requireDatabase false where the URL names a server only (a replication connection, DR_VERIFY_PG_URL).
 * @throws DatabaseUrlError saying why, never echoing the URL.
 */
export function parseDatabaseUrl(raw: string, kind: DatabaseUrlKind, requireDatabase = true): DatabaseAddress {
  let url: URL;
  try {
    url = new URL(raw);
  } catch {
    throw new DatabaseUrlError('not a valid URL');
  }
  const example = kind === 'postgres' ? 'postgresql://user@host:5432/dbname' : 'mysql://user@host:3306/dbname';
  if (!SCHEMES[kind].includes(url.protocol))
    throw new DatabaseUrlError(kind === 'postgres' ? 'must be a postgresql:// URL' : 'must be a mysql:// (or mariadb://) URL');
  if (url.password) throw new DatabaseUrlError('must not contain a password; name it with passwordSecret instead');
  if (url.hash) throw new DatabaseUrlError('must not have a fragment');
  if (!url.hostname) throw new DatabaseUrlError(`must name a host, e.g. ${example}`);
  if (url.hostname.length > 255 || !HOST.test(url.hostname))
    throw new DatabaseUrlError('the host must be a DNS name, an IPv4 address or a bracketed IPv6 address');
  const port = url.port ? Number(url.port) : DEFAULT_PORTS[kind];
  if (!(port >= 1 && port <= 65535)) throw new DatabaseUrlError('the port must be 1-65535');
  const user = decodePart(url.username, 'user');
  if (kind === 'mysql' && !user) throw new DatabaseUrlError(`must name a user, e.g. ${example}`);
  if (user !== undefined && (Buffer.byteLength(user) > NAME_BYTES[kind] || user.includes('\u0000'))) {
    throw new DatabaseUrlError(`the user name must be 1-${NAME_BYTES[kind]} bytes`);
  }
  const database = decodePart(url.pathname.replace(/^\//, ''), 'database name') ?? '';
  const badDatabase =
    database.includes('/') ||
    database.includes('\u0000') ||
    Buffer.byteLength(database) > NAME_BYTES[kind] ||
    (kind === 'mysql' && database.startsWith('-')) ||
    // libpq reads a database name holding "=" or starting with a URI prefix as a connection string
    (kind === 'postgres' && (database.includes('=') || /^postgres(ql)?:\/\//.test(database)));
  if (badDatabase || (requireDatabase && !database)) {
    throw new DatabaseUrlError(
      `must name a database (1-${NAME_BYTES[kind]} bytes, no "/"${kind === 'postgres' ? ' or "="' : ', not starting with "-"'}), e.g. ${example}`,
    );
  }
  const params: Record<string, string> = {};
  for (const [name, value] of url.searchParams) {
    const check = ALLOWED_PARAMS[kind][name];
    if (!check) {
      const allowed = Object.keys(ALLOWED_PARAMS[kind]).join(', ');
      throw new DatabaseUrlError(
        REFUSED_PARAMS[name] ?? `query parameter ${/^[A-Za-z_][A-Za-z0-9_-]{0,39}$/.test(name) ? `"${name}" ` : ''}is not supported (allowed: ${allowed})`,
      );
    }
    if (name in params) throw new DatabaseUrlError(`query parameter "${name}" is given more than once`);
    const problem = check(value);
    if (problem) throw new DatabaseUrlError(problem);
    params[name] = value;
  }
  return { kind, host: url.hostname.replace(/^\[(.*)\]$/, '$1'), port, user, database, params };
}

/**
 * {@link parseDatabaseUrl} for a request field.
 * @throws DrError VALIDATION_FAILED naming `field`.
 */
export function parseDatabaseUrlField(raw: string, kind: DatabaseUrlKind, field: string, requireDatabase = true): DatabaseAddress {
  try {
    return parseDatabaseUrl(raw, kind, requireDatabase);
  } catch (error) {
    if (error instanceof DatabaseUrlError) throw DrError.validation([{ field, message: error.message }]);
    throw error;
  }
}

/**
 * class-validator decorator: the property is a database URL of `kind` that {@link parseDatabaseUrl} accepts; the
 * message says why not (`url must not hold dbname: ...`).
 */
export function IsDatabaseUrl(kind: DatabaseUrlKind, requireDatabase = true, options?: ValidationOptions): PropertyDecorator {
  const problem = (value: unknown): string | null => {
    if (typeof value !== 'string') return 'must be a string';
    try {
      parseDatabaseUrl(value, kind, requireDatabase);
      return null;
    } catch (error) {
      return error instanceof DatabaseUrlError ? error.message : 'is not valid';
    }
  };
  return ValidateBy(
    {
      name: 'isDatabaseUrl',
      validator: {
        validate: (value: unknown) => problem(value) === null,
        defaultMessage: (args) => `${args?.property} ${problem(args?.value)}`,
      },
    },
    options,
  );
}

/**
 * The URL libpq tools (`pg_dump`, `pg_restore`, `pg_basebackup`) are given: rebuilt from the checked parts only,
 * so nothing the parser did not check reaches libpq.
 * @param database another database on the same server (the maintenance database, a scratch database).
 */
export function postgresToolUrl(address: DatabaseAddress, database = address.database): string {
  const host = address.host.includes(':') ? `[${address.host}]` : address.host;
  const user = address.user !== undefined ? `${encodeURIComponent(address.user)}@` : '';
  const query = new URLSearchParams(address.params).toString();
  return `postgresql://${user}${host}:${address.port}/${encodeURIComponent(database)}${query ? `?${query}` : ''}`;
}

/**
 * The node-postgres settings of a connection to `database` on the server of `address`, given field by field (pg
 * ignores a `password` given beside a `connectionString`: the bug that made restores fail on password-protected
 * servers). TLS follows `sslmode`: `require` encrypts without checking the certificate, `verify-ca` checks it
 * against `sslrootcert` (else the system's CAs), `verify-full` also checks the host name; `disable`, `allow`,
 * `prefer` and no sslmode connect without TLS (node-postgres cannot fall back from TLS as libpq's `prefer` does).
 * @param connectTimeoutMs used when the URL has no `connect_timeout` (seconds).
 * @throws Error when `sslrootcert` cannot be read (not a regular file of at most 1 MiB).
 */
export async function postgresClientConfig(
  address: DatabaseAddress,
  password: string | undefined,
  database: string,
  connectTimeoutMs = 10_000,
): Promise<ClientConfig> {
  const mode = address.params.sslmode;
  let ssl: ClientConfig['ssl'] = false;
  if (mode === 'require') ssl = { rejectUnauthorized: false };
  if (mode === 'verify-ca' || mode === 'verify-full') {
    const file = address.params.sslrootcert;
    const ca = file && file !== 'system' ? await readSmallFile(file, 'sslrootcert') : undefined;
    ssl = { rejectUnauthorized: true, ...(ca ? { ca } : {}), ...(mode === 'verify-ca' ? { checkServerIdentity: () => undefined } : {}) };
  }
  return {
    host: address.host,
    port: address.port,
    user: address.user,
    password,
    database,
    ssl,
    application_name: address.params.application_name,
    connectionTimeoutMillis: address.params.connect_timeout ? Number(address.params.connect_timeout) * 1000 : connectTimeoutMs,
  };
}

/** The `connect_timeout` of a URL in seconds, else `fallback`. */
export function connectTimeoutSeconds(address: DatabaseAddress, fallback: number): number {
  return address.params.connect_timeout ? Number(address.params.connect_timeout) : fallback;
}

function timeoutProblem(value: string): string | null {
  return /^[1-9][0-9]{0,3}$/.test(value) && Number(value) <= 3600 ? null : 'connect_timeout must be a whole number of seconds from 1 to 3600';
}

/** An absolute, normalized path (no `.`/`..` segments, no `//`) outside the kernel's pseudo file systems. */
function isPlainAbsolutePath(path: string): boolean {
  return path.length <= 4096 && path.startsWith('/') && posix.normalize(path) === path && !path.includes('\u0000') && !/^\/(proc|sys|dev)(\/|$)/.test(path);
}

function decodePart(part: string, what: string): string | undefined {
  if (!part) return undefined;
  try {
    return decodeURIComponent(part);
  } catch {
    throw new DatabaseUrlError(`the ${what} is not valid percent-encoding`);
  }
}

async function readSmallFile(path: string, what: string): Promise<string> {
  const info = await stat(path).catch(() => null);
  if (!info || !info.isFile() || info.size > 1 << 20) throw new Error(`${what} ${path} is not a readable file of at most 1 MiB`);
  return readFile(path, 'utf8');
}
