import { MigrationInterface, QueryRunner } from 'typeorm';

/**
 * The audit trail: `audit_entries` (hash-chained, contiguous `seq`) and `audit_chain_head`, the one row
 * (`id = 1`) that appends lock `FOR UPDATE` to serialize across replicas, seeded with seq 0 and 64 zeros.
 */
export class AuditTrail1764040000000 implements MigrationInterface {
  name = 'AuditTrail1764040000000';

  async up(q: QueryRunner): Promise<void> {
    await q.query(`
      CREATE TABLE audit_entries (
        seq bigint PRIMARY KEY CHECK (seq > 0),
        at timestamptz NOT NULL,
        actor varchar(200) NOT NULL,
        roles text[] NOT NULL DEFAULT '{}',
        action varchar(200) NOT NULL,
        target_type varchar(60),
        target_id varchar(200),
        outcome varchar(10) NOT NULL CHECK (outcome IN ('SUCCESS','FAILURE','DENIED')),
        http_status integer,
        request_id varchar(128),
        details jsonb NOT NULL DEFAULT '{}',
        prev_hash char(64) NOT NULL,
        hash char(64) NOT NULL
      )`);
    await q.query(`CREATE INDEX audit_entries_at ON audit_entries (at)`);
    await q.query(`CREATE INDEX audit_entries_actor ON audit_entries (actor, seq)`);
    await q.query(`CREATE INDEX audit_entries_target ON audit_entries (target_id, seq)`);
    await q.query(`
      CREATE TABLE audit_chain_head (
        id smallint PRIMARY KEY CHECK (id = 1),
        seq bigint NOT NULL,
        hash char(64) NOT NULL
      )`);
    await q.query(`INSERT INTO audit_chain_head (id, seq, hash) VALUES (1, 0, repeat('0', 64))`);
  }

  async down(q: QueryRunner): Promise<void> {
    await q.query(`DROP TABLE audit_chain_head`);
    await q.query(`DROP TABLE audit_entries`);
  }
}
