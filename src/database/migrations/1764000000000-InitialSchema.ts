import { MigrationInterface, QueryRunner } from 'typeorm';

/** The first schema: API keys, storage locations, backup plans, backups, schedule claims, verifications, recoveries. */
export class InitialSchema1764000000000 implements MigrationInterface {
  name = 'InitialSchema1764000000000';

  async up(q: QueryRunner): Promise<void> {
    await q.query(`
      CREATE TABLE api_keys (
        id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
        name varchar(200) NOT NULL,
        prefix varchar(32) NOT NULL UNIQUE,
        secret_sha256 char(64) NOT NULL,
        roles text[] NOT NULL,
        created_at timestamptz NOT NULL DEFAULT now(),
        created_by varchar(200),
        revoked_at timestamptz,
        last_used_at timestamptz
      )`);
    await q.query(`
      CREATE TABLE storage_locations (
        id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
        name varchar(100) NOT NULL UNIQUE,
        kind varchar(20) NOT NULL CHECK (kind IN ('local', 's3', 'azure-blob', 'gcs')),
        settings jsonb NOT NULL,
        encryption jsonb,
        is_default boolean NOT NULL DEFAULT false,
        created_at timestamptz NOT NULL DEFAULT now()
      )`);
    await q.query(`CREATE UNIQUE INDEX storage_locations_one_default ON storage_locations (is_default) WHERE is_default`);
    await q.query(`
      CREATE TABLE backup_plans (
        id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
        name varchar(100) NOT NULL UNIQUE,
        engine varchar(30) NOT NULL,
        source jsonb NOT NULL,
        storage_location_id uuid NOT NULL REFERENCES storage_locations(id),
        schedule varchar(120),
        timezone varchar(64) NOT NULL DEFAULT 'UTC',
        enabled boolean NOT NULL DEFAULT true,
        encryption jsonb,
        copy_location_ids uuid[] NOT NULL DEFAULT '{}',
        retention jsonb,
        immutable_days integer CHECK (immutable_days > 0),
        created_at timestamptz NOT NULL DEFAULT now(),
        updated_at timestamptz NOT NULL DEFAULT now()
      )`);
    await q.query(`
      CREATE TABLE backups (
        id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
        plan_id uuid REFERENCES backup_plans(id) ON DELETE SET NULL,
        engine varchar(30) NOT NULL,
        source jsonb NOT NULL,
        storage_location_id uuid NOT NULL REFERENCES storage_locations(id),
        status varchar(12) NOT NULL CHECK (status IN ('PENDING','RUNNING','COMPLETED','FAILED','DELETED')),
        trigger varchar(12) NOT NULL CHECK (trigger IN ('MANUAL','SCHEDULED')),
        encryption jsonb,
        artifact_key varchar(400),
        manifest_key varchar(400),
        size_bytes bigint,
        stored_bytes bigint,
        progress_bytes bigint NOT NULL DEFAULT 0,
        sha256 char(64),
        manifest jsonb,
        objects jsonb NOT NULL DEFAULT '[]',
        file_index jsonb,
        file_count integer,
        tables jsonb,
        warnings jsonb NOT NULL DEFAULT '[]',
        signature_key_id varchar(32),
        retain_until timestamptz,
        deleted_at timestamptz,
        deletion_reason text,
        error text,
        created_by varchar(200),
        runner_id varchar(200),
        heartbeat_at timestamptz,
        created_at timestamptz NOT NULL DEFAULT now(),
        started_at timestamptz,
        finished_at timestamptz
      )`);
    await q.query(`CREATE INDEX backups_status_idx ON backups (status)`);
    await q.query(`CREATE INDEX backups_plan_created_idx ON backups (plan_id, created_at)`);
    await q.query(`
      CREATE TABLE backup_copies (
        id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
        backup_id uuid NOT NULL REFERENCES backups(id) ON DELETE CASCADE,
        storage_location_id uuid NOT NULL REFERENCES storage_locations(id),
        status varchar(12) NOT NULL CHECK (status IN ('PENDING','RUNNING','COMPLETED','FAILED','DELETED')),
        error text,
        bytes_copied bigint NOT NULL DEFAULT 0,
        verified_at timestamptz,
        runner_id varchar(200),
        heartbeat_at timestamptz,
        created_at timestamptz NOT NULL DEFAULT now(),
        started_at timestamptz,
        finished_at timestamptz,
        UNIQUE (backup_id, storage_location_id)
      )`);
    await q.query(`CREATE INDEX backup_copies_status_idx ON backup_copies (status)`);
    await q.query(`
      CREATE TABLE schedule_claims (
        plan_id uuid NOT NULL REFERENCES backup_plans(id) ON DELETE CASCADE,
        scheduled_for timestamptz NOT NULL,
        instance_id varchar(200) NOT NULL,
        backup_id uuid,
        skip_reason text,
        claimed_at timestamptz NOT NULL DEFAULT now(),
        PRIMARY KEY (plan_id, scheduled_for),
        CHECK (backup_id IS NULL OR skip_reason IS NULL)
      )`);
    await q.query(`
      CREATE TABLE verifications (
        id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
        backup_id uuid NOT NULL REFERENCES backups(id) ON DELETE CASCADE,
        mode varchar(20) NOT NULL CHECK (mode IN ('checksum','restore')),
        status varchar(12) NOT NULL CHECK (status IN ('PENDING','RUNNING','COMPLETED','FAILED')),
        ok boolean,
        problems jsonb NOT NULL DEFAULT '[]',
        details jsonb NOT NULL DEFAULT '{}',
        error text,
        bytes_read bigint NOT NULL DEFAULT 0,
        duration_ms integer,
        created_by varchar(200),
        runner_id varchar(200),
        heartbeat_at timestamptz,
        created_at timestamptz NOT NULL DEFAULT now(),
        started_at timestamptz,
        finished_at timestamptz
      )`);
    await q.query(`CREATE INDEX verifications_backup_idx ON verifications (backup_id, created_at)`);
    await q.query(`
      CREATE TABLE recoveries (
        id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
        backup_id uuid NOT NULL REFERENCES backups(id),
        storage_location_id uuid REFERENCES storage_locations(id),
        type varchar(20) NOT NULL,
        target jsonb NOT NULL,
        overwrite boolean NOT NULL DEFAULT false,
        status varchar(12) NOT NULL CHECK (status IN ('PENDING','RUNNING','COMPLETED','FAILED')),
        error text,
        warnings jsonb NOT NULL DEFAULT '[]',
        bytes_restored bigint NOT NULL DEFAULT 0,
        duration_ms integer,
        created_by varchar(200),
        runner_id varchar(200),
        heartbeat_at timestamptz,
        created_at timestamptz NOT NULL DEFAULT now(),
        started_at timestamptz,
        finished_at timestamptz
      )`);
    await q.query(`CREATE INDEX recoveries_status_idx ON recoveries (status)`);
  }

  async down(q: QueryRunner): Promise<void> {
    for (const table of ['recoveries', 'verifications', 'backup_copies', 'schedule_claims', 'backups', 'backup_plans', 'storage_locations', 'api_keys']) {
      await q.query(`DROP TABLE IF EXISTS ${table}`);
    }
  }
}
