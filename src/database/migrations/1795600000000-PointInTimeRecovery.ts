import { MigrationInterface, QueryRunner } from 'typeorm';

/**
 * Point-in-time recovery: WAL archives, the WAL range of base backups (engine postgres-base), and the point a
 * POINT_IN_TIME recovery reached.
 */
export class PointInTimeRecovery1795600000000 implements MigrationInterface {
  name = 'PointInTimeRecovery1795600000000';

  async up(q: QueryRunner): Promise<void> {
    await q.query(`CREATE TABLE wal_archives (
      id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
      name varchar(100) NOT NULL UNIQUE,
      storage_location_id uuid NOT NULL REFERENCES storage_locations(id),
      encryption jsonb,
      identity_secret varchar(4096),
      segment_size_bytes integer NOT NULL DEFAULT 16777216,
      created_at timestamptz NOT NULL DEFAULT now()
    )`);
    await q.query(`ALTER TABLE backups ADD COLUMN wal_range jsonb`);
    await q.query(`ALTER TABLE recoveries ADD COLUMN point_in_time jsonb`);
  }

  async down(q: QueryRunner): Promise<void> {
    await q.query(`ALTER TABLE recoveries DROP COLUMN point_in_time`);
    await q.query(`ALTER TABLE backups DROP COLUMN wal_range`);
    await q.query(`DROP TABLE wal_archives`);
  }
}
