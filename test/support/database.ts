import { randomBytes } from 'node:crypto';
import { Client } from 'pg';

/** The local PostgreSQL server the tests run against (CI and developer machines have it; trust auth). */
export const PG_ADMIN_URL = process.env.TEST_PG_URL ?? 'postgresql://postgres@127.0.0.1:5432/postgres';

/** URL of database `name` on the test server. */
export function databaseUrl(name: string): string {
  const url = new URL(PG_ADMIN_URL);
  url.pathname = `/${name}`;
  return url.toString();
}

/** Runs SQL on a database of the test server and returns the rows. */
export async function sql<T = Record<string, unknown>>(database: string, text: string, params: unknown[] = []): Promise<T[]> {
  const client = new Client({ connectionString: databaseUrl(database) });
  await client.connect();
  try {
    return (await client.query(text, params)).rows as T[];
  } finally {
    await client.end();
  }
}

/** Creates a fresh, uniquely named database. @returns its name */
export async function createDatabase(prefix: string): Promise<string> {
  const name = `${prefix}_${randomBytes(4).toString('hex')}`;
  await sql('postgres', `CREATE DATABASE ${name}`);
  return name;
}

/** Drops a database, ending its connections first. */
export async function dropDatabase(name: string): Promise<void> {
  await sql('postgres', `DROP DATABASE IF EXISTS ${name} WITH (FORCE)`);
}

/** Per-table row count and content checksum, for comparing a restored database with its source. */
export async function tableChecksums(database: string): Promise<Record<string, { rows: number; md5: string }>> {
  const tables = await sql<{ schemaname: string; tablename: string }>(
    database,
    `SELECT schemaname, tablename FROM pg_tables WHERE schemaname NOT IN ('pg_catalog','information_schema') ORDER BY 1, 2`,
  );
  const result: Record<string, { rows: number; md5: string }> = {};
  for (const { schemaname, tablename } of tables) {
    const [row] = await sql<{ rows: string; md5: string | null }>(
      database,
      `SELECT count(*) AS rows, md5(coalesce(string_agg(md5(t::text), '' ORDER BY md5(t::text)), '')) AS md5
         FROM "${schemaname}"."${tablename}" t`,
    );
    result[`${schemaname}.${tablename}`] = { rows: Number(row.rows), md5: row.md5 ?? '' };
  }
  return result;
}
