import { Injectable } from '@nestjs/common';
import { InjectDataSource } from '@nestjs/typeorm';
import { DataSource, EntityManager } from 'typeorm';
import { TargetReservationKey } from '../engines/backup-engine';
import { DrError } from '../errors/dr-error';
import { RecoveryStatus } from './recovery-status';

/** Statuses in which a recovery holds its target: it may still run. */
const HOLDING = [RecoveryStatus.AWAITING_APPROVAL, RecoveryStatus.PENDING, RecoveryStatus.RUNNING];

/**
 * Reservations of restore targets in the metadata store (table `recovery_target_reservations`), so that two
 * recoveries never write into one target at once, whichever replica accepted them. A row holds its target while
 * its recovery is AWAITING_APPROVAL (until its approval deadline), PENDING or RUNNING: a recovery that ended
 * (completed, failed, rejected, expired, or reaped after its process died) no longer holds it, whether or not its
 * row was removed yet. Directory
 * keys (`path:/real/path`) also conflict with the directories above and below them.
 */
@Injectable()
export class TargetReservations {
  constructor(@InjectDataSource() private readonly dataSource: DataSource) {}

  /**
   * Refuses a target held by another recovery, before the target is checked (a target another restore is writing
   * into looks non-empty). @throws DrError TARGET_BUSY
   */
  async assertFree(target: TargetReservationKey): Promise<void> {
    const holder = await this.holderOf(this.dataSource.manager, target.key);
    if (holder) throw busy(target, holder);
  }

  /**
   * Reserves `target` for `recoveryId`, inside the transaction that records the recovery: the table is locked for
   * the check and the insert, so of two concurrent requests exactly one gets the target.
   * @throws DrError TARGET_BUSY when another recovery holds it (or a directory above or below it)
   */
  async reserve(manager: EntityManager, recoveryId: string, target: TargetReservationKey): Promise<void> {
    await manager.query('LOCK TABLE recovery_target_reservations IN SHARE ROW EXCLUSIVE MODE');
    const holder = await this.holderOf(manager, target.key);
    if (holder) throw busy(target, holder);
    await manager.query('DELETE FROM recovery_target_reservations WHERE target_key = $1', [target.key]);
    await manager.query('INSERT INTO recovery_target_reservations (target_key, recovery_id) VALUES ($1, $2)', [target.key, recoveryId]);
  }

  /** Releases what `recoveryId` reserved (after it ended; a no-op when it reserved nothing). */
  async release(recoveryId: string): Promise<void> {
    await this.dataSource.query('DELETE FROM recovery_target_reservations WHERE recovery_id = $1', [recoveryId]);
  }

  /** The id of the recovery holding `key` or an overlapping directory key, if any. */
  private async holderOf(manager: EntityManager, key: string): Promise<string | null> {
    const rows: { recovery_id: string }[] = await manager.query(
      `SELECT r.recovery_id FROM recovery_target_reservations r JOIN recoveries x ON x.id = r.recovery_id
        WHERE x.status = ANY($2::varchar[])
          AND NOT (x.status = 'AWAITING_APPROVAL' AND x.approval_expires_at <= now())
          AND (r.target_key = $1 OR (starts_with($1, 'path:') AND (starts_with(r.target_key, $1 || '/') OR starts_with($1, r.target_key || '/'))))
        LIMIT 1`,
      [key, HOLDING],
    );
    return rows[0]?.recovery_id ?? null;
  }
}

function busy(target: TargetReservationKey, holder: string): DrError {
  return new DrError(
    'TARGET_BUSY',
    `recovery ${holder} is restoring into this target (or one above or below it); try again when it has ended`,
    [{ field: target.field, message: `in use by recovery ${holder}` }],
    { id: holder },
  );
}
