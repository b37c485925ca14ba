import { createHash } from 'node:crypto';
import { AuditEntryEntity } from './audit-entry.entity';

/** `prev_hash` of the first entry: 64 zeros. */
export const GENESIS_HASH = '0'.repeat(64);

/** The hashed fields of an entry, as exported (`GET /audit/export`) and as the hash covers them. */
export interface AuditRecordJson {
  seq: number;
  at: string;
  actor: string;
  roles: string[];
  action: string;
  targetType: string | null;
  targetId: string | null;
  outcome: string;
  httpStatus: number | null;
  requestId: string | null;
  details: Record<string, unknown>;
  prevHash: string;
}

/** The JSON form of an entry: every column but `hash`, with `at` as ISO-8601 UTC with milliseconds. */
export function auditRecordJson(entry: Omit<AuditEntryEntity, 'hash'>): AuditRecordJson {
  return {
    seq: entry.seq,
    at: entry.at.toISOString(),
    actor: entry.actor,
    roles: entry.roles,
    action: entry.action,
    targetType: entry.targetType,
    targetId: entry.targetId,
    outcome: entry.outcome,
    httpStatus: entry.httpStatus,
    requestId: entry.requestId,
    details: entry.details ?? {},
    prevHash: entry.prevHash,
  };
}

/**
 * Canonical JSON: object keys sorted by code point at every depth, no whitespace, strings escaped as
 * `JSON.stringify` does; `undefined` members dropped. This is the output of `jq -cS` (jq 1.6+) for the values an
 * entry holds (strings, integers, booleans, null, arrays, objects), so an auditor can recompute a hash with:
 *
 *     jq -cSj 'del(.hash)' <<<"$line" | sha256sum
 *
 * (Not byte-identical to jq for U+007F and lone surrogates, which jq escapes; the service never writes those:
 * {@link sanitizeDetails} replaces control characters.)
 */
export function canonicalJson(value: unknown): string {
  if (value === null || typeof value !== 'object') return JSON.stringify(value);
  if (Array.isArray(value)) return `[${value.map((v) => (v === undefined ? 'null' : canonicalJson(v))).join(',')}]`;
  const keys = Object.keys(value)
    .filter((k) => (value as Record<string, unknown>)[k] !== undefined)
    .sort();
  return `{${keys.map((k) => `${JSON.stringify(k)}:${canonicalJson((value as Record<string, unknown>)[k])}`).join(',')}}`;
}

/**
 * The hash of an entry: lowercase hex SHA-256 (FIPS 180-4) of the UTF-8 bytes of
 * `canonicalJson(auditRecordJson(entry))`, that is of the object
 * `{action, actor, at, details, httpStatus, outcome, prevHash, requestId, roles, seq, targetId, targetType}`
 * (keys sorted, `at` like `2026-11-24T13:00:00.123Z`, no trailing newline). Since `prevHash` is inside, each hash
 * covers the whole chain before it.
 */
export function auditEntryHash(entry: Omit<AuditEntryEntity, 'hash'>): string {
  return createHash('sha256')
    .update(canonicalJson(auditRecordJson(entry)), 'utf8')
    .digest('hex');
}

/** A problem found in the chain by {@link AuditChainChecker}. */
export interface ChainProblem {
  seq: number;
  problem: 'hash mismatch' | 'missing entry' | 'prev_hash mismatch';
}

/**
 * Checks entries fed in `seq` order: each must be `seq` = previous + 1 (else the missing seqs are reported, up to
 * 100 per gap), carry the previous entry's hash as `prevHash` (checked only across no gap), and hash to its own
 * `hash`. {@link finish} compares the last entry with the chain head (entries removed at the end).
 */
export class AuditChainChecker {
  readonly problems: ChainProblem[] = [];
  entries = 0;
  private lastSeq = 0;
  private lastHash = GENESIS_HASH;

  /** Feeds the next entry (ascending `seq`). */
  add(entry: AuditEntryEntity): void {
    this.entries++;
    if (entry.seq > this.lastSeq + 1) {
      this.missing(this.lastSeq + 1, entry.seq - 1);
    } else if (entry.prevHash !== this.lastHash) {
      this.problems.push({ seq: entry.seq, problem: 'prev_hash mismatch' });
    }
    if (auditEntryHash(entry) !== entry.hash) this.problems.push({ seq: entry.seq, problem: 'hash mismatch' });
    this.lastSeq = entry.seq;
    this.lastHash = entry.hash;
  }

  /** Compares the end of the chain with the head row (`seq`, `hash` of the last appended entry). */
  finish(head: { seq: number; hash: string } | null): void {
    if (!head) return;
    if (head.seq > this.lastSeq) this.missing(this.lastSeq + 1, head.seq);
    else if (head.seq === this.lastSeq && head.hash !== this.lastHash) {
      this.problems.push({ seq: this.lastSeq, problem: 'hash mismatch' });
    }
  }

  /** The lowest seq with a problem, or null. */
  get firstBadSeq(): number | null {
    return this.problems.length ? Math.min(...this.problems.map((p) => p.seq)) : null;
  }

  private missing(from: number, to: number): void {
    for (let seq = from; seq <= Math.min(to, from + 99); seq++) this.problems.push({ seq, problem: 'missing entry' });
  }
}
