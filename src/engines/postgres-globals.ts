import { createInterface } from 'node:readline';
import { Readable } from 'node:stream';

/**
 * What a PostgreSQL database needs from its server besides what `pg_dump` holds: the roles it references and
 * how to create them. pg_dump restores object owners and privileges by role name, so a database restored onto a
 * fresh server (the DR plan's "server failure") fails at the first `ALTER ... OWNER TO` of a missing role.
 *
 * A backup captures these "globals" with one catalog query ({@link GLOBALS_QUERY}, run by `psql` with the backup's
 * own connection) into a psql script, the backup's `globals.sql.zst[.age]` object (docs/artifact-format.md). The
 * script is what `pg_dumpall --globals-only` would give for these roles, restricted to them and made safe to
 * run on a server that has some of them already:
 * - each role is created only when missing (with the recorded attributes: LOGIN, INHERIT, CREATEDB, connection
 *   limit, ...; no password unless the backup was asked for the password hashes); an existing role is left as it is;
 * - memberships and role-wide settings (`ALTER ROLE ... SET`) are applied to the roles the script created;
 * - the database's owner, privileges (`GRANT CONNECT ...`), settings (`ALTER DATABASE ... SET`) and the roles'
 *   settings in the database (`ALTER ROLE ... IN DATABASE ... SET`) go to the database psql is connected to,
 *   unless psql is given `-v skip_database=1` (and the owner alone `-v skip_owner=1`, the privileges alone
 *   `-v skip_privileges=1`);
 * - each role it creates is printed as a JSON string on a line of its own (stdout, with `-At`).
 * Run it before pg_restore: `psql -X -q -At -v ON_ERROR_STOP=1 --single-transaction -d <db> -f globals.sql`.
 *
 * Which roles: the database's owner, every owner of an object in it (schemas, relations, functions, types,
 * operators, collations, conversions, operator classes and families, text search configurations and dictionaries,
 * extensions, large objects, languages, foreign data wrappers and servers, event triggers, publications, extended
 * statistics), every grantee and grantor of a privilege in it (also column privileges and default privileges),
 * every role a row-level security policy names, roles with user mappings or settings in it; then the roles these
 * are members of (transitively: their memberships need them) and the roles that are members of them (transitively:
 * the login roles that act through the group roles). Predefined roles (`pg_*`) exist on every server and are not
 * created (memberships in them are kept).
 */

/** One line of {@link GLOBALS_QUERY}'s output (JSON). */
export type GlobalsRecord =
  | {
      kind: 'role';
      name: string;
      /** A predefined role (`pg_read_all_data`...): never created. */
      predefined: boolean;
      superuser: boolean;
      inherit: boolean;
      createRole: boolean;
      createDb: boolean;
      login: boolean;
      replication: boolean;
      bypassRls: boolean;
      connectionLimit: number;
      /** `VALID UNTIL`, as PostgreSQL prints a timestamptz; null: forever. */
      validUntil: string | null;
      /** The password hash (SCRAM or md5), only when asked for; null otherwise or when the role has none. */
      passwordHash: string | null;
    }
  | { kind: 'membership'; role: string; member: string; adminOption: boolean }
  | { kind: 'role-setting'; role: string; setting: string }
  | { kind: 'database'; owner: string; acl: { grantee: string | null; privilege: string; grantable: boolean }[] | null }
  | { kind: 'database-setting'; role: string | null; setting: string };

/**
 * The catalog query whose rows (one JSON object each, in this order: roles, memberships, role settings, database,
 * database settings) describe the globals of the database it runs in. `:passwords` is replaced by `true` or
 * `false` (reading password hashes needs superuser: pg_authid). Works on PostgreSQL 12 and later.
 */
export function globalsQuery(passwords: boolean): string {
  return GLOBALS_QUERY.replace(':passwords', passwords ? 'true' : 'false');
}

const GLOBALS_QUERY = `
WITH RECURSIVE
db AS (SELECT oid, datdba, datacl FROM pg_database WHERE datname = current_database()),
owners(oid) AS (
  SELECT datdba FROM db
  UNION SELECT nspowner FROM pg_namespace UNION SELECT relowner FROM pg_class UNION SELECT proowner FROM pg_proc
  UNION SELECT typowner FROM pg_type UNION SELECT oprowner FROM pg_operator UNION SELECT collowner FROM pg_collation
  UNION SELECT conowner FROM pg_conversion UNION SELECT opcowner FROM pg_opclass UNION SELECT opfowner FROM pg_opfamily
  UNION SELECT cfgowner FROM pg_ts_config UNION SELECT dictowner FROM pg_ts_dict UNION SELECT extowner FROM pg_extension
  UNION SELECT lomowner FROM pg_largeobject_metadata UNION SELECT lanowner FROM pg_language
  UNION SELECT fdwowner FROM pg_foreign_data_wrapper UNION SELECT srvowner FROM pg_foreign_server
  UNION SELECT evtowner FROM pg_event_trigger UNION SELECT pubowner FROM pg_publication UNION SELECT stxowner FROM pg_statistic_ext
  UNION SELECT defaclrole FROM pg_default_acl UNION SELECT umuser FROM pg_user_mappings
  UNION SELECT unnest(polroles) FROM pg_policy
  UNION SELECT setrole FROM pg_db_role_setting WHERE setdatabase = (SELECT oid FROM db)
),
acls(acl) AS (
  SELECT relacl FROM pg_class UNION ALL SELECT nspacl FROM pg_namespace UNION ALL SELECT proacl FROM pg_proc
  UNION ALL SELECT typacl FROM pg_type UNION ALL SELECT datacl FROM db UNION ALL SELECT lomacl FROM pg_largeobject_metadata
  UNION ALL SELECT lanacl FROM pg_language UNION ALL SELECT fdwacl FROM pg_foreign_data_wrapper
  UNION ALL SELECT srvacl FROM pg_foreign_server UNION ALL SELECT defaclacl FROM pg_default_acl
  UNION ALL SELECT attacl FROM pg_attribute WHERE attacl IS NOT NULL
),
acl_roles(oid) AS (
  SELECT (aclexplode(acl)).grantee FROM acls WHERE acl IS NOT NULL
  UNION SELECT (aclexplode(acl)).grantor FROM acls WHERE acl IS NOT NULL
),
referenced(oid) AS (SELECT oid FROM owners WHERE oid <> 0 UNION SELECT oid FROM acl_roles WHERE oid <> 0),
up(oid) AS (SELECT oid FROM referenced UNION SELECT m.roleid FROM pg_auth_members m JOIN up ON m.member = up.oid),
down(oid) AS (SELECT oid FROM referenced UNION SELECT m.member FROM pg_auth_members m JOIN down ON m.roleid = down.oid),
wanted AS (
  SELECT r.* FROM pg_roles r WHERE r.oid IN (SELECT oid FROM up UNION SELECT oid FROM down)
)
SELECT line FROM (
  SELECT 1 AS part, w.rolname::text AS sort, json_build_object(
    'kind', 'role', 'name', w.rolname, 'predefined', w.rolname ~ '^pg_' AND w.oid < 16384,
    'superuser', w.rolsuper, 'inherit', w.rolinherit, 'createRole', w.rolcreaterole, 'createDb', w.rolcreatedb,
    'login', w.rolcanlogin, 'replication', w.rolreplication, 'bypassRls', w.rolbypassrls,
    'connectionLimit', w.rolconnlimit, 'validUntil', w.rolvaliduntil,
    'passwordHash', CASE WHEN :passwords THEN (SELECT a.rolpassword FROM pg_authid a WHERE a.oid = w.oid) END
  )::text AS line FROM wanted w
  UNION ALL
  SELECT 2, r.rolname || '/' || m.rolname, json_build_object('kind', 'membership', 'role', r.rolname, 'member', m.rolname, 'adminOption', am.admin_option)::text
    FROM pg_auth_members am JOIN wanted r ON r.oid = am.roleid JOIN wanted m ON m.oid = am.member
  UNION ALL
  SELECT 3, w.rolname, json_build_object('kind', 'role-setting', 'role', w.rolname, 'setting', s.setting)::text
    FROM pg_db_role_setting d JOIN wanted w ON w.oid = d.setrole, unnest(d.setconfig) s(setting) WHERE d.setdatabase = 0
  UNION ALL
  SELECT 4, '', json_build_object('kind', 'database', 'owner', pg_get_userbyid(db.datdba), 'acl',
    (SELECT json_agg(json_build_object('grantee', CASE WHEN e.grantee = 0 THEN NULL ELSE pg_get_userbyid(e.grantee) END,
                                       'privilege', e.privilege_type, 'grantable', e.is_grantable))
       FROM aclexplode(db.datacl) e WHERE e.grantee <> db.datdba))::text
    FROM db
  UNION ALL
  SELECT 5, coalesce(pg_get_userbyid(NULLIF(d.setrole, 0)), ''), json_build_object('kind', 'database-setting',
    'role', CASE WHEN d.setrole = 0 THEN NULL ELSE pg_get_userbyid(d.setrole) END, 'setting', s.setting)::text
    FROM pg_db_role_setting d, db, unnest(d.setconfig) s(setting) WHERE d.setdatabase = db.oid
) lines ORDER BY part, sort, line`;

/** `name` as an SQL identifier: always double-quoted, inner quotes doubled. */
export function quoteIdent(name: string): string {
  return `"${name.replace(/"/g, '""')}"`;
}

/** `value` as an SQL string literal (standard_conforming_strings on: only quotes are doubled). */
export function quoteLiteral(value: string): string {
  return `'${value.replace(/'/g, "''")}'`;
}

/** Settings whose value PostgreSQL stores as a list of (quoted when needed) identifiers (pg_dumpall's list). */
const LIST_SETTINGS = new Set([
  'local_preload_libraries',
  'search_path',
  'session_preload_libraries',
  'shared_preload_libraries',
  'temp_tablespaces',
  'unix_socket_directories',
]);
const SETTING_NAME = /^[A-Za-z_][A-Za-z0-9_$]*(\.[A-Za-z_][A-Za-z0-9_$]*)*$/;
/** A list value as PostgreSQL stores it: elements that are plain lower-case names or double-quoted identifiers. */
const IDENTIFIER_LIST = /^\s*(?:[a-z_][a-z0-9_$]*|"(?:[^"]|"")*")(?:\s*,\s*(?:[a-z_][a-z0-9_$]*|"(?:[^"]|"")*"))*\s*$/;

/**
 * `name TO value` for `ALTER ROLE/DATABASE ... SET`, from a stored `name=value` (pg_db_role_setting.setconfig).
 * List settings (search_path...) keep their stored identifier list when it has the canonical form; any other value
 * becomes one string literal. @returns null for a setting whose name is not a valid setting name (skipped).
 */
export function settingClause(setting: string): string | null {
  const eq = setting.indexOf('=');
  if (eq <= 0) return null;
  const name = setting.slice(0, eq);
  const value = setting.slice(eq + 1);
  if (!SETTING_NAME.test(name)) return null;
  if (LIST_SETTINGS.has(name.toLowerCase()) && IDENTIFIER_LIST.test(value)) return `${name} TO ${value.trim()}`;
  return `${name} TO ${quoteLiteral(value)}`;
}

/** The privileges a database ACL may hold (aclexplode's names). */
const DATABASE_PRIVILEGES = new Set(['CREATE', 'CONNECT', 'TEMPORARY']);

/**
 * The psql script of a database's globals, line by line, from {@link GLOBALS_QUERY}'s records (in its order).
 * Memory: one entry per role (name → number), for the memberships and settings of created roles.
 * @throws Error when the records are not in the query's order or of an unknown kind.
 */
export async function* globalsScript(records: AsyncIterable<GlobalsRecord>, database: string): AsyncIterable<string> {
  yield '-- dr-backup globals: the roles the database references, created on the server when missing.';
  yield `-- Captured from database ${JSON.stringify(database).replace(/\n/g, '\\n')}. Run before pg_restore, connected to the target database:`;
  yield '--   psql -X -q -At -v ON_ERROR_STOP=1 --single-transaction -d <target database> -f globals.sql';
  yield "-- Existing roles are left as they are. -v skip_database=1 leaves the database's owner, privileges and settings";
  yield '-- alone (-v skip_owner=1 the owner, -v skip_privileges=1 its privileges). Prints each role it creates (JSON).';
  yield "SET client_encoding = 'UTF8';";
  yield 'SET standard_conforming_strings = on;';
  const roles = new Map<string, number>();
  const created = (role: string) => (roles.has(role) ? `dr_created_${roles.get(role)}` : null);
  let part = 0;
  const enter = (next: number, kind: string) => {
    if (next < part) throw new Error(`globals: a ${kind} record after later records`);
    part = next;
  };
  let databaseOpen = false;
  for await (const record of records) {
    switch (record.kind) {
      case 'role': {
        enter(1, record.kind);
        if (record.predefined) break;
        const n = roles.size + 1;
        roles.set(record.name, n);
        const options = [
          record.superuser ? 'SUPERUSER' : 'NOSUPERUSER',
          record.inherit ? 'INHERIT' : 'NOINHERIT',
          record.createRole ? 'CREATEROLE' : 'NOCREATEROLE',
          record.createDb ? 'CREATEDB' : 'NOCREATEDB',
          record.login ? 'LOGIN' : 'NOLOGIN',
          record.replication ? 'REPLICATION' : 'NOREPLICATION',
          record.bypassRls ? 'BYPASSRLS' : 'NOBYPASSRLS',
          `CONNECTION LIMIT ${Number(record.connectionLimit)}`,
          ...(record.passwordHash ? [`PASSWORD ${quoteLiteral(record.passwordHash)}`] : []),
          ...(record.validUntil ? [`VALID UNTIL ${quoteLiteral(record.validUntil)}`] : []),
        ];
        yield `SELECT NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = ${quoteLiteral(record.name)}) AS dr_created_${n} \\gset`;
        yield `\\if :dr_created_${n}`;
        yield `CREATE ROLE ${quoteIdent(record.name)} WITH ${options.join(' ')};`;
        yield `SELECT to_json(${quoteLiteral(record.name)}::text);`;
        yield '\\endif';
        break;
      }
      case 'membership': {
        enter(2, record.kind);
        const flag = created(record.member);
        if (!flag) break; // a predefined role as member: nothing to create
        yield `\\if :${flag}`;
        yield `GRANT ${quoteIdent(record.role)} TO ${quoteIdent(record.member)}${record.adminOption ? ' WITH ADMIN OPTION' : ''};`;
        yield '\\endif';
        break;
      }
      case 'role-setting': {
        enter(3, record.kind);
        const flag = created(record.role);
        const clause = settingClause(record.setting);
        if (!flag || !clause) break;
        yield `\\if :${flag}`;
        yield `ALTER ROLE ${quoteIdent(record.role)} SET ${clause};`;
        yield '\\endif';
        break;
      }
      case 'database': {
        enter(4, record.kind);
        databaseOpen = true;
        yield '\\if :{?skip_database}';
        yield '\\else';
        yield 'SELECT current_database() AS dr_database \\gset';
        yield '\\if :{?skip_owner}';
        yield '\\else';
        yield `ALTER DATABASE :"dr_database" OWNER TO ${quoteIdent(record.owner)};`;
        yield '\\endif';
        if (record.acl) {
          yield '\\if :{?skip_privileges}';
          yield '\\else';
          yield 'REVOKE ALL ON DATABASE :"dr_database" FROM PUBLIC;';
          for (const item of record.acl) {
            if (!DATABASE_PRIVILEGES.has(item.privilege)) continue;
            const grantee = item.grantee === null ? 'PUBLIC' : quoteIdent(item.grantee);
            yield `GRANT ${item.privilege} ON DATABASE :"dr_database" TO ${grantee}${item.grantable ? ' WITH GRANT OPTION' : ''};`;
          }
          yield '\\endif';
        }
        break;
      }
      case 'database-setting': {
        enter(5, record.kind);
        const clause = settingClause(record.setting);
        if (!clause || !databaseOpen) break;
        yield record.role === null
          ? `ALTER DATABASE :"dr_database" SET ${clause};`
          : `ALTER ROLE ${quoteIdent(record.role)} IN DATABASE :"dr_database" SET ${clause};`;
        break;
      }
      default:
        throw new Error(`globals: unknown record ${JSON.stringify(record)}`);
    }
  }
  if (databaseOpen) yield '\\endif';
}

/** Parses the query's output (one JSON object a line) into records. */
export async function* globalsRecords(lines: Readable): AsyncIterable<GlobalsRecord> {
  for await (const line of createInterface({ input: lines, crlfDelay: Infinity })) {
    if (line) yield JSON.parse(line) as GlobalsRecord;
  }
}

/**
 * The roles a run of the globals script created, from its stdout (`psql -At`: one JSON string a line).
 * @throws Error on a line that is not a JSON string.
 */
export function createdRoles(stdout: string): string[] {
  return stdout
    .split('\n')
    .filter((l) => l.trim())
    .map((l) => {
      let name: unknown;
      try {
        name = JSON.parse(l);
      } catch {
        name = undefined;
      }
      if (typeof name !== 'string') throw new Error(`unexpected output of the globals script: ${l.slice(0, 200)}`);
      return name;
    });
}
