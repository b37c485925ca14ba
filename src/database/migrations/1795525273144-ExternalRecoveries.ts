import { MigrationInterface, QueryRunner } from 'typeorm';

/** Recoveries run outside the service (type EXTERNAL) may name no backup; every other recovery still must. */
export class ExternalRecoveries1795525273144 implements MigrationInterface {
  name = 'ExternalRecoveries1795525273144';

  async up(q: QueryRunner): Promise<void> {
    await q.query(`ALTER TABLE recoveries ALTER COLUMN backup_id DROP NOT NULL`);
    await q.query(`ALTER TABLE recoveries ADD CONSTRAINT recoveries_backup_required CHECK (backup_id IS NOT NULL OR type = 'EXTERNAL')`);
  }

  async down(q: QueryRunner): Promise<void> {
    await q.query(`DELETE FROM recoveries WHERE backup_id IS NULL`);
    await q.query(`ALTER TABLE recoveries DROP CONSTRAINT recoveries_backup_required`);
    await q.query(`ALTER TABLE recoveries ALTER COLUMN backup_id SET NOT NULL`);
  }
}
