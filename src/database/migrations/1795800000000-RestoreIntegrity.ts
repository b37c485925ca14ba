import { MigrationInterface, QueryRunner } from 'typeorm';

/**
 * Restore integrity: a recovery records the stored bytes it read (`bytes_read`) apart from the bytes that reached
 * its target (`bytes_restored`), and reserves its target for as long as it may run
 * (`recovery_target_reservations`: one row per target key, held while its recovery is AWAITING_APPROVAL, PENDING
 * or RUNNING; see src/recovery/target-reservations.ts).
 */
export class RestoreIntegrity1795800000000 implements MigrationInterface {
  name = 'RestoreIntegrity1795800000000';

  async up(q: QueryRunner): Promise<void> {
    await q.query(`ALTER TABLE recoveries ADD COLUMN bytes_read bigint NOT NULL DEFAULT 0`);
    await q.query(
      `CREATE TABLE recovery_target_reservations (` +
        `target_key text PRIMARY KEY, ` +
        `recovery_id uuid NOT NULL REFERENCES recoveries (id) ON DELETE CASCADE, ` +
        `created_at timestamptz NOT NULL DEFAULT now())`,
    );
    await q.query(`CREATE INDEX recovery_target_reservations_recovery_id ON recovery_target_reservations (recovery_id)`);
  }

  async down(q: QueryRunner): Promise<void> {
    await q.query(`DROP TABLE recovery_target_reservations`);
    await q.query(`ALTER TABLE recoveries DROP COLUMN bytes_read`);
  }
}
