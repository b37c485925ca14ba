import { BeforeApplicationShutdown, Injectable, Logger } from '@nestjs/common';
import { InjectDataSource, InjectRepository } from '@nestjs/typeorm';
import { DataSource, Repository } from 'typeorm';
import { AuditChainChecker, auditEntryHash, auditRecordJson, AuditRecordJson, ChainProblem } from './audit-chain';
import { AuditChainHeadEntity, AuditEntryEntity, AuditOutcome } from './audit-entry.entity';

/** What a caller records. `details` must hold only safe facts (ids, engine, type, error codes), never secrets. */
export interface AuditEvent {
  /** `apikey:<name>`, `anonymous`, `system`, or a job's `created_by`. Default `system`. */
  actor?: string | null;
  roles?: string[];
  /** e.g. `backup.run`, `api-key.create`, `POST /backups`. */
  action: string;
  targetType?: string | null;
  targetId?: string | null;
  outcome: AuditOutcome;
  httpStatus?: number | null;
  requestId?: string | null;
  details?: Record<string, unknown>;
}

/** Filters of {@link AuditService.list}; `from`/`to` bound `at` (inclusive, exclusive). */
export interface AuditFilter {
  actor?: string;
  action?: string;
  outcome?: AuditOutcome;
  targetId?: string;
  from?: Date;
  to?: Date;
}

/** The result of {@link AuditService.verify}. */
export interface AuditVerification {
  ok: boolean;
  entries: number;
  firstBadSeq: number | null;
  problems: ChainProblem[];
}

const HEAD_ID = 1;
const BATCH = 500;
const MAX_STRING = 500;

/**
 * The audit trail: an append-only, hash-chained log (`audit_entries`, see `audit-chain.ts` for the hash).
 * Appends are serialized twice: in this process by a promise queue, and across replicas by `SELECT ... FOR UPDATE`
 * on the single `audit_chain_head` row inside the append's transaction (which also works on the embedded PGlite,
 * where advisory locks would not, every connection sharing one session).
 */
@Injectable()
export class AuditService implements BeforeApplicationShutdown {
  private readonly logger = new Logger(AuditService.name);
  private queue: Promise<unknown> = Promise.resolve();

  constructor(
    @InjectRepository(AuditEntryEntity) private readonly entries: Repository<AuditEntryEntity>,
    @InjectDataSource() private readonly dataSource: DataSource,
  ) {}

  /** On shutdown: waits for the appends already queued (a request's entry is written after its response). */
  async beforeApplicationShutdown(): Promise<void> {
    await this.queue;
  }

  /**
   * Appends an entry. Never throws: a failure to record is logged as an error (the audited work has already
   * happened and must not be reported as failed because of its trail).
   * @returns the entry, or null when it could not be written.
   */
  async record(event: AuditEvent): Promise<AuditEntryEntity | null> {
    try {
      return await this.append(event);
    } catch (error) {
      this.logger.error(`could not record audit entry ${event.action} ${event.outcome}: ${(error as Error).message}`);
      return null;
    }
  }

  /** Appends an entry. @throws the database error */
  async append(event: AuditEvent): Promise<AuditEntryEntity> {
    const run = this.queue.then(() => this.appendLocked(event));
    this.queue = run.catch(() => undefined);
    return run;
  }

  private appendLocked(event: AuditEvent): Promise<AuditEntryEntity> {
    return this.dataSource.transaction(async (manager) => {
      const head = await manager
        .getRepository(AuditChainHeadEntity)
        .createQueryBuilder('h')
        .setLock('pessimistic_write')
        .where('h.id = :id', { id: HEAD_ID })
        .getOneOrFail();
      const draft: Omit<AuditEntryEntity, 'hash'> = {
        seq: head.seq + 1,
        at: new Date(),
        actor: clip(event.actor ?? 'system', 200),
        roles: [...(event.roles ?? [])].sort(),
        action: clip(event.action, 200),
        targetType: event.targetType ? clip(event.targetType, 60) : null,
        targetId: event.targetId ? clip(event.targetId, 200) : null,
        outcome: event.outcome,
        httpStatus: event.httpStatus ?? null,
        requestId: event.requestId ? clip(event.requestId, 128) : null,
        details: sanitizeDetails(event.details ?? {}) as Record<string, unknown>,
        prevHash: head.hash,
      };
      const entry = manager.create(AuditEntryEntity, { ...draft, hash: auditEntryHash(draft) });
      await manager.insert(AuditEntryEntity, entry as never);
      await manager.update(AuditChainHeadEntity, { id: HEAD_ID }, { seq: entry.seq, hash: entry.hash });
      return entry;
    });
  }

  /** A page of entries, newest first. @returns the entries and the total matching. */
  async list(filter: AuditFilter, page: number, limit: number): Promise<{ items: AuditEntryEntity[]; total: number }> {
    const query = this.entries.createQueryBuilder('e');
    if (filter.actor) query.andWhere('e.actor = :actor', { actor: filter.actor });
    if (filter.action) query.andWhere('e.action = :action', { action: filter.action });
    if (filter.outcome) query.andWhere('e.outcome = :outcome', { outcome: filter.outcome });
    if (filter.targetId) query.andWhere('e.target_id = :targetId', { targetId: filter.targetId });
    if (filter.from) query.andWhere('e.at >= :from', { from: filter.from });
    if (filter.to) query.andWhere('e.at < :to', { to: filter.to });
    const [items, total] = await query
      .orderBy('e.seq', 'DESC')
      .skip((page - 1) * limit)
      .take(limit)
      .getManyAndCount();
    return { items, total };
  }

  /**
   * Entries with `from <= at < to` in `seq` order, read in batches of 500 (keyset on `seq`), never all at once.
   * @returns each entry as its export JSON (the hashed fields plus `hash`).
   */
  async *export(from?: Date, to?: Date): AsyncGenerator<AuditRecordJson & { hash: string }> {
    let after = 0;
    for (;;) {
      const query = this.entries.createQueryBuilder('e').where('e.seq > :after', { after });
      if (from) query.andWhere('e.at >= :from', { from });
      if (to) query.andWhere('e.at < :to', { to });
      const batch = await query.orderBy('e.seq', 'ASC').take(BATCH).getMany();
      for (const entry of batch) yield { ...auditRecordJson(entry), hash: entry.hash };
      if (batch.length < BATCH) return;
      after = batch[batch.length - 1].seq;
    }
  }

  /**
   * Recomputes the chain from seq 1, in batches: names every entry whose hash does not match its content
   * (edited), whose `prev_hash` is not its predecessor's hash, and every seq missing (deleted), including at the
   * end (compared with the chain head row).
   */
  async verify(): Promise<AuditVerification> {
    const checker = new AuditChainChecker();
    let after = 0;
    for (;;) {
      const batch = await this.entries.createQueryBuilder('e').where('e.seq > :after', { after }).orderBy('e.seq', 'ASC').take(BATCH).getMany();
      for (const entry of batch) checker.add(entry);
      if (batch.length < BATCH) break;
      after = batch[batch.length - 1].seq;
    }
    checker.finish(await this.dataSource.getRepository(AuditChainHeadEntity).findOneBy({ id: HEAD_ID }));
    return { ok: checker.problems.length === 0, entries: checker.entries, firstBadSeq: checker.firstBadSeq, problems: checker.problems };
  }
}

function clip(value: string, max: number): string {
  return value.length > max ? value.slice(0, max) : value;
}

/**
 * Makes details safe to store and hash reproducibly: strings clipped to 500 characters, tabs and line breaks
 * turned to a space and other control characters to U+FFFD, non-finite or fractional numbers turned to strings (jsonb and jq may print them differently),
 * depth limited to 4.
 */
export function sanitizeDetails(value: unknown, depth = 0): unknown {
  if (value === null || value === undefined) return null;
  if (typeof value === 'string') {
    return clip(value.replace(/[\t\n\r]+/g, ' ').replace(/[\u0000-\u001f\u007f\ud800-\udfff]/gu, '\ufffd'), MAX_STRING);
  }
  if (typeof value === 'number') return Number.isSafeInteger(value) ? value : String(value);
  if (typeof value === 'boolean') return value;
  if (depth >= 4) return '[nested]';
  if (Array.isArray(value)) return value.slice(0, 50).map((v) => sanitizeDetails(v, depth + 1));
  if (typeof value === 'object') {
    return Object.fromEntries(
      Object.entries(value as Record<string, unknown>)
        .filter(([, v]) => v !== undefined)
        .map(([k, v]) => [clip(k, 100), sanitizeDetails(v, depth + 1)]),
    );
  }
  return typeof value === 'bigint' ? value.toString() : `[${typeof value}]`; // not from JSON: no symbol or function text
}
