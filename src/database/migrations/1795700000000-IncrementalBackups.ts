import { MigrationInterface, QueryRunner } from 'typeorm';

/**
 * Incremental filesystem backups: a backup is FULL or INCREMENTAL; an incremental names its parent (the backup it
 * is based on) and its chain's full. A plan sets how many incrementals follow each full (0: always full).
 */
export class IncrementalBackups1795700000000 implements MigrationInterface {
  name = 'IncrementalBackups1795700000000';

  async up(q: QueryRunner): Promise<void> {
    await q.query(`ALTER TABLE backups ADD COLUMN backup_type varchar(12) NOT NULL DEFAULT 'FULL'`);
    await q.query(`ALTER TABLE backups ADD COLUMN parent_id uuid NULL`);
    await q.query(`ALTER TABLE backups ADD COLUMN full_backup_id uuid NULL`);
    await q.query(
      `ALTER TABLE backups ADD CONSTRAINT backups_incremental_chain CHECK (` +
        `(backup_type = 'FULL' AND parent_id IS NULL AND full_backup_id IS NULL) OR ` +
        `(backup_type = 'INCREMENTAL' AND parent_id IS NOT NULL AND full_backup_id IS NOT NULL))`,
    );
    await q.query(`CREATE INDEX backups_parent_id ON backups (parent_id)`);
    await q.query(`ALTER TABLE backup_plans ADD COLUMN incrementals_per_full integer NOT NULL DEFAULT 0`);
  }

  async down(q: QueryRunner): Promise<void> {
    await q.query(`ALTER TABLE backup_plans DROP COLUMN incrementals_per_full`);
    await q.query(`DROP INDEX backups_parent_id`);
    await q.query(`ALTER TABLE backups DROP CONSTRAINT backups_incremental_chain`);
    await q.query(`ALTER TABLE backups DROP COLUMN full_backup_id`);
    await q.query(`ALTER TABLE backups DROP COLUMN parent_id`);
    await q.query(`ALTER TABLE backups DROP COLUMN backup_type`);
  }
}
