import { Injectable } from '@nestjs/common';
import { isUUID as isUuid } from 'class-validator';
import { InjectRepository } from '@nestjs/typeorm';
import { FindOptionsWhere, Repository } from 'typeorm';
import { JobStatus } from '../jobs/job-status';
import { AppConfig } from '../config/app-config';
import { BackupsService } from '../backup/backups.service';
import { Page } from '../backup/dto/backup.dto';
import { EngineRegistry } from '../engines/engine-registry';
import { TargetReservationKey } from '../engines/backup-engine';
import { DrError } from '../errors/dr-error';
import { BackupEncryption } from '../pipeline/backup-encryption';
import { validateNested } from '../errors/validation';
import { CreateRecoveryDto, ListRecoveriesQuery } from './dto/recovery.dto';
import { RecoveryApprovals } from './recovery-approvals.service';
import { RecoveryRunner } from './recovery-runner.service';
import { RecoveryStatus } from './recovery-status';
import { RecoveryEntity } from './recovery.entity';
import { PointInTimeTarget } from '../engines/postgres-base.engine';
import { PointInTimeRecovery } from './point-in-time-recovery.service';
import { TargetReservations } from './target-reservations';

/** Recovery records: accepting a restore request (after checking its target), reading and listing recoveries. */
@Injectable()
export class RecoveryService {
  constructor(
    @InjectRepository(RecoveryEntity) private readonly recoveries: Repository<RecoveryEntity>,
    private readonly backups: BackupsService,
    private readonly engines: EngineRegistry,
    private readonly runner: RecoveryRunner,
    private readonly encryption: BackupEncryption,
    private readonly approvals: RecoveryApprovals,
    private readonly config: AppConfig,
    private readonly pointInTime: PointInTimeRecovery,
    private readonly reservations: TargetReservations,
  ) {}

  /**
   * Checks the backup and the target, and records the recovery with its target reserved (see
   * {@link TargetReservations}: held until the recovery has ended). A `production` one is recorded
   * AWAITING_APPROVAL (it runs once a second person approves it, see {@link RecoveryApprovals}); any other is
   * recorded PENDING and started.
   * @throws DrError NOT_FOUND (backup), BACKUP_NOT_RESTORABLE, VALIDATION_FAILED (target fields, a location
   *   without a completed copy), TARGET_BUSY (another recovery holds the target), TARGET_NOT_ALLOWED,
   *   TARGET_NOT_EMPTY, TARGET_EXISTS, DECRYPTION_KEY_UNAVAILABLE.
   */
  async create(dto: CreateRecoveryDto, createdBy: string | null): Promise<RecoveryEntity> {
    let backup;
    let target: object;
    let reservation: TargetReservationKey;
    const overwrite = dto.overwrite ?? false;
    if (dto.type === 'POINT_IN_TIME') {
      // A base backup (postgres-base) and WAL replayed from its archive up to the target.
      const pitr = await validateNested(PointInTimeTarget, dto.target, 'target');
      reservation = await this.engines.get('postgres-base').reservationKey(pitr);
      await this.reservations.assertFree(reservation);
      await this.engines.get('postgres-base').checkTarget(pitr, overwrite);
      if (dto.backupId) {
        backup = await this.backups.requireCompleted(dto.backupId);
        const why =
          backup.engine === 'postgres-base'
            ? this.pointInTime.covers(backup, pitr)
            : `backup ${backup.id} is a ${backup.engine} backup, not a base backup (postgres-base)`;
        if (why) throw DrError.validation([{ field: backup.engine === 'postgres-base' ? 'target.recoveryTarget' : 'backupId', message: why }]);
      } else if (pitr.walArchiveId) {
        backup = await this.pointInTime.chooseBaseBackup(pitr.walArchiveId, pitr);
      } else {
        throw DrError.validation([{ field: 'backupId', message: 'give backupId or target.walArchiveId' }]);
      }
      target = pitr;
    } else {
      backup = await this.backups.requireCompleted(dto.backupId!);
      if (backup.engine === 'postgres-base') {
        throw DrError.validation([{ field: 'type', message: 'a postgres-base backup is restored with type POINT_IN_TIME' }]);
      }
      target = await validateNested(this.engines.get(backup.engine).targetClass, dto.target, 'target');
      reservation = await this.engines.get(backup.engine).reservationKey(target);
      await this.reservations.assertFree(reservation);
      await this.engines.get(backup.engine).checkTarget(target, overwrite);
    }
    const engine = this.engines.get(backup.engine);
    if (dto.storageLocationId && dto.storageLocationId !== backup.storageLocationId) {
      const copy = (await this.backups.copiesOf(backup.id)).find((c) => c.storageLocationId === dto.storageLocationId && c.status === JobStatus.COMPLETED);
      if (!copy) {
        throw DrError.validation([{ field: 'storageLocationId', message: `no completed copy of backup ${backup.id} in location ${dto.storageLocationId}` }]);
      }
    }
    await this.encryption.decryptionKeys(backup.encryption); // refuse now, not after the target was prepared
    const production = dto.environment === 'production';
    const recovery = await this.recoveries.manager.transaction(async (manager) => {
      const saved = await manager.save(
        manager.create(RecoveryEntity, {
          backupId: backup.id,
          storageLocationId: dto.storageLocationId && dto.storageLocationId !== backup.storageLocationId ? dto.storageLocationId : null,
          type: dto.type,
          target: engine.describeTarget(target),
          overwrite,
          status: production ? RecoveryStatus.AWAITING_APPROVAL : RecoveryStatus.PENDING,
          environment: production ? 'production' : 'non-production',
          trustUnsignedManifest: dto.trustUnsignedManifest ?? false,
          approvalExpiresAt: production ? new Date(Date.now() + this.config.approvalTtlSeconds * 1000) : null,
          createdBy,
        }),
      );
      await this.reservations.reserve(manager, saved.id, reservation);
      return saved;
    });
    if (!production) void this.runner.start(recovery.id);
    return recovery;
  }

  /** A recovery; one whose approval deadline has passed is marked EXPIRED first. @throws DrError NOT_FOUND */
  async get(id: string): Promise<RecoveryEntity> {
    if (!isUuid(id)) throw DrError.notFound('recovery', id);
    await this.approvals.expireOverdue(id);
    const recovery = await this.recoveries.findOneBy({ id });
    if (!recovery) throw DrError.notFound('recovery', id);
    return recovery;
  }

  /** A page of recoveries, newest first; overdue approvals are marked EXPIRED first. */
  async list(query: ListRecoveriesQuery): Promise<Page<RecoveryEntity>> {
    await this.approvals.expireOverdue();
    const where: FindOptionsWhere<RecoveryEntity> = {};
    if (query.status) where.status = query.status;
    if (query.backupId) where.backupId = query.backupId;
    const [items, total] = await this.recoveries.findAndCount({
      where,
      order: { createdAt: 'DESC', id: 'DESC' },
      skip: (query.page - 1) * query.limit,
      take: query.limit,
    });
    return { items, page: query.page, limit: query.limit, total };
  }
}
