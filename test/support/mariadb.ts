import { execFileSync } from 'node:child_process';
import { Connection, createConnection } from 'mysql2/promise';

/** The local MariaDB (or MySQL) server the MySQL engine tests run against: root without password on 127.0.0.1:3306. */
export const MYSQL_ADMIN = {
  host: process.env.TEST_MYSQL_HOST ?? '127.0.0.1',
  port: Number(process.env.TEST_MYSQL_PORT ?? 3306),
  user: process.env.TEST_MYSQL_USER ?? 'root',
};

/** Whether the test server answers (checked synchronously, so a spec can decide to run at load time). */
export function mysqlAvailable(): boolean {
  try {
    execFileSync(
      'mariadb',
      ['--no-defaults', `--host=${MYSQL_ADMIN.host}`, `--port=${MYSQL_ADMIN.port}`, '--protocol=TCP', `--user=${MYSQL_ADMIN.user}`, '-e', 'SELECT 1'],
      {
        stdio: 'ignore',
        timeout: 10_000,
      },
    );
    return true;
  } catch {
    return false;
  }
}

/** `mysql://user@host:port/database` of the test server, as the engine takes it. */
export function mysqlUrl(database: string, user = MYSQL_ADMIN.user, port = MYSQL_ADMIN.port): string {
  return `mysql://${encodeURIComponent(user)}@${MYSQL_ADMIN.host}:${port}/${encodeURIComponent(database)}`;
}

/** Runs `fn` on an administrator connection, or as `login` (multiple statements allowed), closed afterwards. */
export async function withMysql<T>(fn: (c: Connection) => Promise<T>, database?: string, login?: { user: string; password: string }): Promise<T> {
  const connection = await createConnection({ ...MYSQL_ADMIN, ...login, database, multipleStatements: true, charset: 'utf8mb4' });
  try {
    return await fn(connection);
  } finally {
    await connection.end();
  }
}

/** Runs SQL as the administrator and returns the rows. */
export async function mysqlQuery<T = Record<string, any>>(text: string, params: unknown[] = [], database?: string): Promise<T[]> {
  return withMysql(async (c) => (await c.query(text, params))[0] as T[], database);
}

/**
 * Per base table of `database`: row count and `CHECKSUM TABLE` (the server's checksum over every column of every
 * row, blobs included), for comparing a restored database with its source.
 */
export async function mysqlTableChecksums(database: string): Promise<Record<string, { rows: number; checksum: string }>> {
  return withMysql(async (c) => {
    const [tables] = await c.query<any[]>(
      `SELECT TABLE_NAME AS name FROM information_schema.TABLES WHERE TABLE_SCHEMA = ? AND TABLE_TYPE = 'BASE TABLE' ORDER BY TABLE_NAME`,
      [database],
    );
    const result: Record<string, { rows: number; checksum: string }> = {};
    for (const { name } of tables) {
      const ident = `\`${database}\`.\`${name}\``;
      const [[count]] = await c.query<any[]>(`SELECT COUNT(*) AS n FROM ${ident}`);
      const [[sum]] = await c.query<any[]>(`CHECKSUM TABLE ${ident} EXTENDED`);
      result[name] = { rows: Number(count.n), checksum: String(sum.Checksum) };
    }
    return result;
  });
}

/** Drops databases and a user if they exist (cleanup that must not fail the suite). */
export async function dropMysqlObjects(databases: string[], user?: string): Promise<void> {
  await withMysql(async (c) => {
    for (const db of databases) await c.query(`DROP DATABASE IF EXISTS \`${db}\``);
    if (user) await c.query(`DROP USER IF EXISTS ?@'%'`, [user]);
  }).catch(() => undefined);
}
