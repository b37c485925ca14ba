import { DataSource, DataSourceOptions } from 'typeorm';
import { ENTITIES, MIGRATIONS } from './entities';

/**
 * TypeORM options of the metadata store's schema: the entities and migrations the service runs (the same as
 * `typeOrmOptions` in database.module.ts, without pool or retry settings), on the PostgreSQL at `url`.
 */
export function schemaDataSourceOptions(url: string): DataSourceOptions {
  return {
    type: 'postgres',
    url,
    entities: ENTITIES,
    migrations: MIGRATIONS,
    migrationsTransactionMode: 'each',
    synchronize: false,
    uuidExtension: 'pgcrypto',
    installExtensions: false,
    logging: ['error'],
  };
}

/**
 * The data source of the TypeORM CLI (`npm run migration:generate -- src/database/migrations/<Name>`, which reads
 * the compiled `dist/database/data-source.js`): the schema of {@link schemaDataSourceOptions} on `DATABASE_URL`
 * (a PostgreSQL database migrated to the newest migration; the CLI diffs the entities against it). Nothing
 * connects when this module is imported.
 */
export default new DataSource(schemaDataSourceOptions(process.env.DATABASE_URL ?? 'postgresql://postgres@127.0.0.1:5432/postgres'));
