import { Column, DataSource, DataSourceOptions, Entity } from 'typeorm';
import { schemaDataSourceOptions } from '../../src/database/data-source';
import { ENTITIES } from '../../src/database/entities';
import { BackupEntity } from '../../src/backup/backup.entity';
import { createDatabase, databaseUrl, dropDatabase } from '../support/database';

/**
 * The migrations also write, in SQL, what the entities do not model: foreign keys, CHECK constraints, partial and
 * extra indexes (e.g. `storage_locations_one_default ... WHERE is_default`). TypeORM proposes to drop those; such
 * drops are not a disagreement. Anything else (a table, column, type, nullability, default, or an index or unique
 * constraint an entity declares, created or altered) is.
 */
const MIGRATION_ONLY = /^(ALTER TABLE "[^"]+" DROP CONSTRAINT "[^"]+"|DROP INDEX "public"\."[^"]+")$/;

/**
 * What TypeORM would still change after every migration ran on a fresh database: the up-queries of its schema diff
 * (`driver.createSchemaBuilder().log()`, what `migration:generate` would write), but the drops of {@link MIGRATION_ONLY}.
 */
async function pendingSchemaChanges(entities: DataSourceOptions['entities']): Promise<string[]> {
  const database = await createDatabase('archtool_schema');
  const dataSource = new DataSource({ ...schemaDataSourceOptions(databaseUrl(database)), entities });
  try {
    await dataSource.initialize();
    await dataSource.runMigrations({ transaction: 'each' });
    const log = await dataSource.driver.createSchemaBuilder().log();
    return log.upQueries.map((q) => q.query.trim()).filter((q) => !MIGRATION_ONLY.test(q));
  } finally {
    if (dataSource.isInitialized) await dataSource.destroy();
    await dropDatabase(database);
  }
}

/**
 * The entities and the migrations describe the same schema (on the local PostgreSQL, a fresh database per case):
 * a column, index or constraint added to an entity without a migration (`npm run migration:generate`) fails here.
 */
describe('metadata store schema', () => {
  it('has no change pending after the migrations: the entities and migrations agree', async () => {
    expect(await pendingSchemaChanges(ENTITIES)).toEqual([]);
  });

  it('names the change when an entity has a column no migration creates', async () => {
    @Entity('backups')
    class BackupWithUnmigratedColumn extends BackupEntity {
      @Column({ type: 'text', nullable: true }) unmigratedNote: string | null;
    }
    const entities = ENTITIES.map((e) => (e === BackupEntity ? BackupWithUnmigratedColumn : e));
    expect(await pendingSchemaChanges(entities)).toEqual([expect.stringMatching(/ALTER TABLE "backups" ADD "unmigratedNote" text/)]);
  });
});
