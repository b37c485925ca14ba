import { Column, Entity, PrimaryColumn } from 'typeorm';
import { bigintToNumber } from '../database/column-transformers';

/** How a recorded action ended: done, failed, or refused by authentication/authorization (401/403). */
export type AuditOutcome = 'SUCCESS' | 'FAILURE' | 'DENIED';
export const AUDIT_OUTCOMES: readonly AuditOutcome[] = ['SUCCESS', 'FAILURE', 'DENIED'];

/**
 * One entry of the audit trail (`audit_entries`). Entries form a hash chain: `hash` is the SHA-256 of the
 * canonical form of every other column (see `canonicalAuditEntry`), which includes `prevHash`, the hash of entry
 * `seq - 1` (64 zeros for seq 1). `seq` is contiguous (1, 2, 3, ...), assigned under the chain-head row lock, so a
 * removed entry shows as a gap.
 */
@Entity('audit_entries')
export class AuditEntryEntity {
  @PrimaryColumn({ type: 'bigint', transformer: bigintToNumber }) seq: number;
  /** When the entry was appended (millisecond precision, the precision that is hashed). */
  @Column({ type: 'timestamptz' }) at: Date;
  /** Who: `apikey:<name>` for API requests, `anonymous` when no valid key was shown, `system` for background work. */
  @Column({ type: 'varchar', length: 200 }) actor: string;
  @Column({ type: 'text', array: true, default: () => "'{}'" }) roles: string[];
  /** What: `POST /backups/:id/verify` for requests; `backup.run`, `recovery.run`, `api-key.create`, ... for outcomes. */
  @Column({ type: 'varchar', length: 200 }) action: string;
  @Column({ name: 'target_type', type: 'varchar', length: 60, nullable: true }) targetType: string | null;
  @Column({ name: 'target_id', type: 'varchar', length: 200, nullable: true }) targetId: string | null;
  @Column({ type: 'varchar', length: 10 }) outcome: AuditOutcome;
  @Column({ name: 'http_status', type: 'integer', nullable: true }) httpStatus: number | null;
  @Column({ name: 'request_id', type: 'varchar', length: 128, nullable: true }) requestId: string | null;
  /** Selected safe facts (ids, engine, type, error code); never secrets nor whole request bodies. */
  @Column({ type: 'jsonb', default: () => "'{}'" }) details: Record<string, unknown>;
  @Column({ name: 'prev_hash', type: 'char', length: 64 }) prevHash: string;
  @Column({ type: 'char', length: 64 }) hash: string;
}

/** The single row (`id = 1`) holding the chain's last `seq` and `hash`; appends lock it with `FOR UPDATE`. */
@Entity('audit_chain_head')
export class AuditChainHeadEntity {
  @PrimaryColumn({ type: 'smallint' }) id: number;
  @Column({ type: 'bigint', transformer: bigintToNumber }) seq: number;
  @Column({ type: 'char', length: 64 }) hash: string;
}
