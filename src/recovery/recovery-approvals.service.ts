import { Injectable, Logger, OnApplicationBootstrap } from '@nestjs/common';
import { SchedulerRegistry } from '@nestjs/schedule';
import { InjectRepository } from '@nestjs/typeorm';
import { isUUID as isUuid } from 'class-validator';
import { Repository } from 'typeorm';
import { AuditService } from '../audit/audit.service';
import { AppConfig } from '../config/app-config';
import { DrError } from '../errors/dr-error';
import { RecoveryRunner } from './recovery-runner.service';
import { RecoveryStatus } from './recovery-status';
import { RecoveryEntity } from './recovery.entity';

/** The columns an approval or a rejection sets. */
type Decision = Partial<Pick<RecoveryEntity, 'status' | 'approvedBy' | 'approvedAt' | 'rejectedBy' | 'rejectedAt' | 'heartbeatAt' | 'finishedAt'>>;

/** Longest pause between two sweeps for overdue approvals. */
const MAX_SWEEP_MS = 60_000;

/**
 * Two-person approval of production recoveries (the earlier design's "production recovery requires special authorization").
 * A production recovery waits AWAITING_APPROVAL until a RECOVERY_ADMIN (or ADMIN) other than its requester
 * approves it (→ PENDING, and it runs) or someone rejects it (→ REJECTED). Unapproved after
 * `DR_APPROVAL_TTL_SECONDS` it becomes EXPIRED: checked when it is read, and by a sweep every
 * min(60 s, TTL / 2). Every transition is one conditional UPDATE, so concurrent decisions and replicas cannot
 * both win.
 */
@Injectable()
export class RecoveryApprovals implements OnApplicationBootstrap {
  private readonly logger = new Logger(RecoveryApprovals.name);

  constructor(
    @InjectRepository(RecoveryEntity) private readonly recoveries: Repository<RecoveryEntity>,
    private readonly runner: RecoveryRunner,
    private readonly config: AppConfig,
    private readonly registry: SchedulerRegistry,
    private readonly audit: AuditService,
  ) {}

  /** Starts the periodic sweep for overdue approvals. */
  onApplicationBootstrap(): void {
    const periodMs = Math.max(1000, Math.min(MAX_SWEEP_MS, (this.config.approvalTtlSeconds * 1000) / 2));
    const timer = setInterval(() => {
      this.expireOverdue().catch((e: Error) => this.logger.warn(`approval expiry sweep: ${e.message}`));
    }, periodMs);
    timer.unref();
    this.registry.addInterval('recovery-approval-expiry', timer);
  }

  /**
   * Marks EXPIRED the AWAITING_APPROVAL recoveries whose deadline has passed (only recovery `id` when given).
   * @returns how many were expired
   */
  async expireOverdue(id?: string): Promise<number> {
    const now = new Date();
    const query = this.recoveries
      .createQueryBuilder()
      .update()
      .set({ status: RecoveryStatus.EXPIRED, finishedAt: now, error: 'not approved in time' })
      .where('status = :status AND approval_expires_at <= :now', { status: RecoveryStatus.AWAITING_APPROVAL, now })
      .returning('id, backup_id, created_by');
    if (id) query.andWhere('id = :id', { id });
    const result = await query.execute();
    const rows = (result.raw ?? []) as { id: string; backup_id: string; created_by: string | null }[];
    const expired = result.affected ?? rows.length;
    for (const row of rows) {
      await this.audit.record({
        action: 'recovery.approval-expired',
        targetType: 'recovery',
        targetId: row.id,
        outcome: 'FAILURE',
        details: { backupId: row.backup_id, requestedBy: row.created_by, approvalTtlSeconds: this.config.approvalTtlSeconds },
      });
    }
    if (expired > 0 && !id) this.logger.log(`${expired} production recovery request(s) expired without approval`);
    return expired;
  }

  /**
   * Approves a production recovery and starts it.
   * @param approver the approver's actor string (`apikey:<name>`, `jwt:<sub>`); it must differ from the requester.
   * @throws DrError NOT_FOUND; SELF_APPROVAL (403) when the approver requested it; APPROVAL_EXPIRED (409) when its
   *   deadline passed; NOT_AWAITING_APPROVAL (409) when it was already approved, rejected, or never needed approval.
   */
  async approve(id: string, approver: string | null): Promise<RecoveryEntity> {
    const recovery = await this.requireAwaiting(id, 'approved');
    if (!approver || approver === recovery.createdBy) {
      throw new DrError('SELF_APPROVAL', `recovery ${id} was requested by ${recovery.createdBy}; a different RECOVERY_ADMIN must approve it`);
    }
    const now = new Date();
    // heartbeatAt: the reaper treats a PENDING row with an old createdAt and no fresh heartbeat as abandoned.
    await this.decide(id, now, { status: RecoveryStatus.PENDING, approvedBy: approver, approvedAt: now, heartbeatAt: now }, 'approved');
    this.logger.log(`production recovery ${id} requested by ${recovery.createdBy} approved by ${approver}`);
    void this.runner.start(id);
    return this.recoveries.findOneByOrFail({ id });
  }

  /**
   * Rejects (cancels) a production recovery awaiting approval; its requester may withdraw it this way too.
   * @throws DrError NOT_FOUND, APPROVAL_EXPIRED, NOT_AWAITING_APPROVAL (as {@link approve})
   */
  async reject(id: string, rejecter: string | null): Promise<RecoveryEntity> {
    await this.requireAwaiting(id, 'rejected');
    const now = new Date();
    await this.decide(id, now, { status: RecoveryStatus.REJECTED, rejectedBy: rejecter, rejectedAt: now, finishedAt: now }, 'rejected');
    this.logger.log(`production recovery ${id} rejected by ${rejecter}`);
    return this.recoveries.findOneByOrFail({ id });
  }

  /** Applies `changes` if the recovery still awaits approval and is not overdue at `now`; else explains why not. */
  private async decide(id: string, now: Date, changes: Decision, verb: string): Promise<void> {
    const result = await this.recoveries
      .createQueryBuilder()
      .update()
      .set(changes)
      .where('id = :id AND status = :status AND approval_expires_at > :now', { id, status: RecoveryStatus.AWAITING_APPROVAL, now })
      .execute();
    if (!result.affected) await this.requireAwaiting(id, verb); // lost a race: throws the reason
  }

  /** @throws DrError NOT_FOUND, APPROVAL_EXPIRED, NOT_AWAITING_APPROVAL */
  private async requireAwaiting(id: string, verb: string): Promise<RecoveryEntity> {
    if (!isUuid(id)) throw DrError.notFound('recovery', id);
    await this.expireOverdue(id);
    const recovery = await this.recoveries.findOneBy({ id });
    if (!recovery) throw DrError.notFound('recovery', id);
    if (recovery.status === RecoveryStatus.EXPIRED) {
      throw new DrError(
        'APPROVAL_EXPIRED',
        `recovery ${id} was not approved before ${recovery.approvalExpiresAt?.toISOString()} and expired; request it again`,
      );
    }
    if (recovery.status !== RecoveryStatus.AWAITING_APPROVAL) {
      throw new DrError('NOT_AWAITING_APPROVAL', `recovery ${id} is ${recovery.status}, not AWAITING_APPROVAL; it cannot be ${verb}`);
    }
    return recovery;
  }
}
