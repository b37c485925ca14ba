import { Injectable } from '@nestjs/common';
import { isUUID as isUuid } from 'class-validator';
import { InjectRepository } from '@nestjs/typeorm';
import { FindOptionsWhere, Repository } from 'typeorm';
import { JobStatus } from '../backup/backup-status';
import { BackupsService } from '../backup/backups.service';
import { Page } from '../backup/dto/backup.dto';
import { EngineRegistry } from '../engines/engine-registry';
import { DrError } from '../errors/dr-error';
import { BackupEncryption } from '../pipeline/backup-encryption';
import { validateNested } from '../errors/validation';
import { CreateRecoveryDto, ListRecoveriesQuery } from './dto/recovery.dto';
import { RecoveryRunner } from './recovery-runner.service';
import { RecoveryEntity } from './recovery.entity';

/** Recovery records: accepting a restore request (after checking its target), reading and listing recoveries. */
@Injectable()
export class RecoveryService {
  constructor(
    @InjectRepository(RecoveryEntity) private readonly recoveries: Repository<RecoveryEntity>,
    private readonly backups: BackupsService,
    private readonly engines: EngineRegistry,
    private readonly runner: RecoveryRunner,
    private readonly encryption: BackupEncryption,
  ) {}

  /**
   * Checks the backup and the target, records a PENDING recovery and starts it.
   * @throws DrError NOT_FOUND (backup), BACKUP_NOT_RESTORABLE, VALIDATION_FAILED (target fields, a location
   *   without a completed copy), TARGET_NOT_ALLOWED, TARGET_NOT_EMPTY, TARGET_EXISTS, DECRYPTION_KEY_UNAVAILABLE.
   */
  async create(dto: CreateRecoveryDto, createdBy: string | null): Promise<RecoveryEntity> {
    const backup = await this.backups.requireCompleted(dto.backupId);
    const engine = this.engines.get(backup.engine);
    const target = await validateNested(engine.targetClass, dto.target, 'target');
    const overwrite = dto.overwrite ?? false;
    await engine.checkTarget(target, overwrite);
    if (dto.storageLocationId && dto.storageLocationId !== backup.storageLocationId) {
      const copy = (await this.backups.copiesOf(backup.id)).find(
        (c) => c.storageLocationId === dto.storageLocationId && c.status === JobStatus.COMPLETED,
      );
      if (!copy) {
        throw DrError.validation([{ field: 'storageLocationId', message: `no completed copy of backup ${backup.id} in location ${dto.storageLocationId}` }]);
      }
    }
    await this.encryption.decryptionKeys(backup.encryption); // refuse now, not after the target was prepared
    const recovery = await this.recoveries.save(
      this.recoveries.create({
        backupId: backup.id,
        storageLocationId: dto.storageLocationId && dto.storageLocationId !== backup.storageLocationId ? dto.storageLocationId : null,
        type: dto.type,
        target: engine.describeTarget(target),
        overwrite,
        status: JobStatus.PENDING,
        createdBy,
      }),
    );
    void this.runner.start(recovery.id, { trustUnsignedManifest: dto.trustUnsignedManifest ?? false });
    return recovery;
  }

  /** @throws DrError NOT_FOUND */
  async get(id: string): Promise<RecoveryEntity> {
    const recovery = isUuid(id) ? await this.recoveries.findOneBy({ id }) : null;
    if (!recovery) throw DrError.notFound('recovery', id);
    return recovery;
  }

  async list(query: ListRecoveriesQuery): Promise<Page<RecoveryEntity>> {
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
