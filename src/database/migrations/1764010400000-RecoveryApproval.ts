import { MigrationInterface, QueryRunner } from 'typeorm';

/**
 * Two-person approval of production recoveries: the recovery's `environment`, the statuses AWAITING_APPROVAL,
 * REJECTED and EXPIRED (status widened to varchar(20)), who requested/approved/rejected and when, the approval's
 * deadline, and the `trustUnsignedManifest` choice (kept because an approved recovery starts later).
 */
export class RecoveryApproval1764010400000 implements MigrationInterface {
  name = 'RecoveryApproval1764010400000';

  async up(q: QueryRunner): Promise<void> {
    await q.query(`ALTER TABLE recoveries DROP CONSTRAINT IF EXISTS recoveries_status_check`);
    await q.query(`ALTER TABLE recoveries ALTER COLUMN status TYPE varchar(20)`);
    await q.query(`
      ALTER TABLE recoveries ADD CONSTRAINT recoveries_status_check
        CHECK (status IN ('AWAITING_APPROVAL','PENDING','RUNNING','COMPLETED','FAILED','REJECTED','EXPIRED'))`);
    await q.query(`
      ALTER TABLE recoveries
        ADD COLUMN environment varchar(20) NOT NULL DEFAULT 'non-production'
          CHECK (environment IN ('production','non-production')),
        ADD COLUMN trust_unsigned_manifest boolean NOT NULL DEFAULT false,
        ADD COLUMN approval_expires_at timestamptz,
        ADD COLUMN approved_by varchar(200),
        ADD COLUMN approved_at timestamptz,
        ADD COLUMN rejected_by varchar(200),
        ADD COLUMN rejected_at timestamptz`);
    await q.query(`CREATE INDEX recoveries_awaiting_idx ON recoveries (approval_expires_at) WHERE status = 'AWAITING_APPROVAL'`);
  }

  async down(q: QueryRunner): Promise<void> {
    await q.query(`DROP INDEX IF EXISTS recoveries_awaiting_idx`);
    await q.query(`DELETE FROM recoveries WHERE status IN ('AWAITING_APPROVAL','REJECTED','EXPIRED')`);
    await q.query(`
      ALTER TABLE recoveries
        DROP COLUMN environment, DROP COLUMN trust_unsigned_manifest, DROP COLUMN approval_expires_at,
        DROP COLUMN approved_by, DROP COLUMN approved_at, DROP COLUMN rejected_by, DROP COLUMN rejected_at`);
    await q.query(`ALTER TABLE recoveries DROP CONSTRAINT recoveries_status_check`);
    await q.query(`ALTER TABLE recoveries ALTER COLUMN status TYPE varchar(12)`);
    await q.query(`ALTER TABLE recoveries ADD CONSTRAINT recoveries_status_check CHECK (status IN ('PENDING','RUNNING','COMPLETED','FAILED'))`);
  }
}
