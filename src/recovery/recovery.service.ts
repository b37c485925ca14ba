import { Injectable, Logger, OnApplicationBootstrap } from '@nestjs/common';
import { isUUID as isUuid } from 'class-validator';
import { SchedulerRegistry } from '@nestjs/schedule';
import { InjectRepository } from '@nestjs/typeorm';
import { FindOptionsWhere, Repository } from 'typeorm';
import { JobStatus } from '../backup/backup-status';
import { BackupsService } from '../backup/backups.service';
import { Page } from '../backup/dto/backup.dto';
import { AppConfig } from '../config/app-config';
import { EngineRegistry } from '../engines/engine-registry';
import { DrError } from '../errors/dr-error';
import { validateNested } from '../errors/validation';
import { CreateRecoveryDto, ListRecoveriesQuery } from './dto/recovery.dto';
import { RecoveryRunner } from './recovery-runner.service';
import { RecoveryEntity } from './recovery.entity';

/** Recovery records: accepting a restore request (after checking its target), reading and listing recoveries. */
@Injectable()
export class RecoveryService implements OnApplicationBootstrap {
  private readonly logger = new Logger(RecoveryService.name);

  constructor(
    @InjectRepository(RecoveryEntity) private readonly recoveries: Repository<RecoveryEntity>,
    private readonly backups: BackupsService,
    private readonly engines: EngineRegistry,
    private readonly runner: RecoveryRunner,
    private readonly registry: SchedulerRegistry,
    private readonly config: AppConfig,
  ) {}

  async onApplicationBootstrap(): Promise<void> {
    await this.runner.reapStale();
    const reaper = setInterval(() => void this.runner.reapStale().catch((e: Error) => this.logger.warn(`reaper: ${e.message}`)),
      Math.max(1000, (this.config.jobLeaseSeconds * 1000) / 2));
    this.registry.addInterval('recovery-reaper', reaper);
  }

  /**
   * Checks the backup and the target, records a PENDING recovery and starts it.
   * @throws DrError NOT_FOUND (backup), BACKUP_NOT_RESTORABLE, VALIDATION_FAILED (target fields),
   *   TARGET_NOT_ALLOWED, TARGET_NOT_EMPTY, TARGET_EXISTS.
   */
  async create(dto: CreateRecoveryDto, createdBy: string | null): Promise<RecoveryEntity> {
    const backup = await this.backups.requireCompleted(dto.backupId);
    const engine = this.engines.get(backup.engine);
    const target = await validateNested(engine.targetClass, dto.target, 'target');
    const overwrite = dto.overwrite ?? false;
    await engine.checkTarget(target, overwrite);
    const recovery = await this.recoveries.save(
      this.recoveries.create({
        backupId: backup.id,
        type: dto.type,
        target: engine.describeTarget(target),
        overwrite,
        status: JobStatus.PENDING,
        createdBy,
      }),
    );
    void this.runner.start(recovery.id);
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
