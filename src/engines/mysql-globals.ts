import { Connection } from 'mysql2/promise';
import { quoteIdent, rows } from './mysql-client';

/**
 * What a MySQL/MariaDB database needs from its server besides what the dump holds: the user accounts that have
 * privileges on it or define its views, routines, triggers and events. A database restored onto a fresh server
 * (the DR plan's "server failure") otherwise comes back without any of its grants, and its views and routines
 * name definers that do not exist.
 *
 * A backup captures them (the `mysql` schema's grant tables and SHOW GRANTS; the definers from information_schema)
 * into an SQL script for the
 * `mariadb`/`mysql` client, the backup's `globals.sql.zst[.age]` object (docs/artifact-format.md):
 * - each account is created only when missing, **locked** (`ACCOUNT LOCK`) and without a password: password hashes
 *   are not captured, and an account without password and unlocked would let anyone in. Set a password and unlock
 *   it after the restore (`ALTER USER ... IDENTIFIED BY ... ACCOUNT UNLOCK`);
 * - its privileges are granted on the database the client uses (`ON *`, `ON \`table\``: the default database), so
 *   the script restores into a database of any name: `mariadb newdb < globals.sql`;
 * - each account it creates is printed as `HEX(user)<TAB>HEX(host)`, one a line (with `--skip-column-names`).
 * Run it after the dump (table grants need the tables; a view or trigger whose definer is missing is created with
 * a warning and works once the account exists).
 * Not captured: global privileges (`ON *.*`), grants through wildcard database names (`db\_%`) and MariaDB roles.
 * Capturing needs SELECT on the `mysql` schema; without it the backup records a warning and no globals object.
 */

/** An account: `'user'@'host'`. */
export interface MysqlAccount {
  user: string;
  host: string;
}

/** Parses a DEFINER (`user@host`, split at the last `@`). @returns null when it has no `@` */
export function parseDefiner(definer: string): MysqlAccount | null {
  const at = definer.lastIndexOf('@');
  return at > 0 ? { user: definer.slice(0, at), host: definer.slice(at + 1) } : null;
}

/** A string literal for MySQL/MariaDB (quotes and backslashes escaped, valid with and without NO_BACKSLASH_ESCAPES). */
function literal(value: string): string {
  return `'${value
    .replace(/\\/g, '\\\\')
    .replace(/'/g, "''")
    .replace(/\n/g, '\\n')
    .replace(/\r/g, '\\r')
    .replace(/\u0000/g, '\\0')}'`;
}

function account(a: MysqlAccount): string {
  return `${literal(a.user)}@${literal(a.host)}`;
}

/** `name` as SHOW GRANTS prints a database name, `_` and `%` possibly escaped (`db\_name`). */
function grantTargets(database: string): string[] {
  const plain = quoteIdent(database);
  const escaped = quoteIdent(database.replace(/[_%]/g, (c) => `\\${c}`));
  return plain === escaped ? [plain] : [plain, escaped];
}

/**
 * The grants of one account (SHOW GRANTS lines, as the server prints them) that are on `database`, its tables,
 * columns or routines, rewritten to name the client's default database instead (`ON *`, `ON \`table\``,
 * `ON PROCEDURE \`p\``). Grants on other databases and global ones (`ON *.*`, which may carry a password hash)
 * are left out.
 */
export function grantsOnDatabase(lines: string[], database: string): string[] {
  const out: string[] = [];
  for (const line of lines) {
    for (const target of grantTargets(database)) {
      const at = line.indexOf(` ON `);
      const prefixes = ['', 'PROCEDURE ', 'FUNCTION ', 'PACKAGE ', 'PACKAGE BODY '].map((k) => ` ON ${k}${target}.`);
      const hit = prefixes.find((p) => line.indexOf(p) === at && at > 0);
      if (!line.startsWith('GRANT ') || !hit) continue;
      out.push(`${line.slice(0, at)}${hit.slice(0, -(target.length + 1))}${line.slice(at + hit.length)};`);
      break;
    }
  }
  return out;
}

/**
 * Reads the accounts of `database` through the driver: those with privileges on it (mysql.db, tables_priv,
 * columns_priv, procs_priv) and the definers of its views, routines, triggers and events; then each one's
 * grants on the database (SHOW GRANTS). Needs SELECT on the `mysql` schema.
 * @throws the driver's error (e.g. access denied to mysql.db).
 */
export async function captureMysqlGlobals(c: Connection, database: string): Promise<{ accounts: MysqlAccount[]; grants: string[] }> {
  const unescaped = "REPLACE(REPLACE(Db, '\\\\_', '_'), '\\\\%', '%')";
  const granted = await rows<{ user: string; host: string }>(
    c,
    `SELECT User AS user, Host AS host FROM mysql.db WHERE ${unescaped} = ?
     UNION SELECT User, Host FROM mysql.tables_priv WHERE ${unescaped} = ?
     UNION SELECT User, Host FROM mysql.columns_priv WHERE ${unescaped} = ?
     UNION SELECT User, Host FROM mysql.procs_priv WHERE ${unescaped} = ?`,
    [database, database, database, database],
  );
  const definers = await rows<{ definer: string }>(
    c,
    `SELECT DEFINER AS definer FROM information_schema.VIEWS WHERE TABLE_SCHEMA = ?
     UNION SELECT DEFINER FROM information_schema.ROUTINES WHERE ROUTINE_SCHEMA = ?
     UNION SELECT DEFINER FROM information_schema.TRIGGERS WHERE TRIGGER_SCHEMA = ?
     UNION SELECT DEFINER FROM information_schema.EVENTS WHERE EVENT_SCHEMA = ?`,
    [database, database, database, database],
  );
  const accounts = new Map<string, MysqlAccount>();
  for (const a of [...granted, ...definers.map((d) => parseDefiner(d.definer)).filter((a): a is MysqlAccount => a !== null)]) {
    if (a.user) accounts.set(`${a.user}\u0000${a.host}`, { user: a.user, host: a.host });
  }
  const sorted = [...accounts.values()].sort((a, b) => (a.user + a.host < b.user + b.host ? -1 : 1));
  const grants: string[] = [];
  for (const a of granted.filter((g) => g.user)) {
    const shown = await rows<Record<string, string>>(c, 'SHOW GRANTS FOR ?@?', [a.user, a.host]);
    grants.push(
      ...grantsOnDatabase(
        shown.map((r) => Object.values(r)[0]),
        database,
      ),
    );
  }
  return { accounts: sorted, grants };
}

/** The script's lines (see the module comment). */
export function mysqlGlobalsScript(accounts: MysqlAccount[], grants: string[]): string[] {
  const lines = [
    '-- dr-backup globals (MySQL/MariaDB): the accounts the database needs, created when missing (locked, no password),',
    '-- and their privileges on the database the client uses. Run after the dump, on the target database:',
    '--   mariadb --skip-column-names newdb < globals.sql      (prints HEX(user) TAB HEX(host) of each account it creates)',
    '-- Then set each created account a password and unlock it: ALTER USER ... IDENTIFIED BY ... ACCOUNT UNLOCK.',
  ];
  for (const a of accounts) {
    lines.push(
      `SELECT COUNT(*) INTO @dr_exists FROM mysql.user WHERE User = ${literal(a.user)} AND Host = ${literal(a.host)};`,
      `CREATE USER IF NOT EXISTS ${account(a)} ACCOUNT LOCK;`,
      `SELECT HEX(${literal(a.user)}), HEX(${literal(a.host)}) FROM DUAL WHERE @dr_exists = 0;`,
    );
  }
  lines.push(...grants);
  return lines;
}

/** The accounts a run of the script created, from the client's output (`HEX(user)\tHEX(host)` lines). */
export function createdAccounts(stdout: string): MysqlAccount[] {
  return stdout
    .split('\n')
    .map((l) => /^([0-9A-F]*)\t([0-9A-F]*)$/.exec(l.trim()))
    .filter((m): m is RegExpExecArray => m !== null)
    .map((m) => ({ user: Buffer.from(m[1], 'hex').toString('utf8'), host: Buffer.from(m[2], 'hex').toString('utf8') }));
}
