import { Injectable } from '@nestjs/common';
import { InjectRepository } from '@nestjs/typeorm';
import { Repository } from 'typeorm';
import { EngineRegistry } from '../engines/engine-registry';
import { DrError } from '../errors/dr-error';
import { validateNested } from '../errors/validation';
import { isValidCron } from '../jobs/cron-occurrence';
import { StorageLocationsService } from '../storage/storage-locations.service';
import { BackupPlanEntity } from './backup-plan.entity';
import { CreateBackupPlanDto, UpdateBackupPlanDto } from './dto/backup-plan.dto';

/** Backup plans: what to back up, where, and on which cron schedule. */
@Injectable()
export class BackupPlansService {
  constructor(
    @InjectRepository(BackupPlanEntity) private readonly plans: Repository<BackupPlanEntity>,
    private readonly engines: EngineRegistry,
    private readonly locations: StorageLocationsService,
  ) {}

  /** @throws DrError VALIDATION_FAILED (bad source, cron or timezone), CONFLICT (name taken) */
  async create(dto: CreateBackupPlanDto): Promise<BackupPlanEntity> {
    const engine = this.engines.get(dto.engine);
    const source = await validateNested(engine.sourceClass, dto.source, 'source');
    const timezone = dto.timezone ?? 'UTC';
    this.checkSchedule(dto.schedule ?? null, timezone);
    const location = await this.locations.resolve(dto.storageLocationId);
    if (await this.plans.existsBy({ name: dto.name })) {
      throw new DrError('CONFLICT', `a backup plan named "${dto.name}" exists`, [{ field: 'name', message: 'already used' }]);
    }
    return this.plans.save(
      this.plans.create({
        name: dto.name,
        engine: engine.name,
        source: { ...source },
        storageLocationId: location.id,
        schedule: dto.schedule ?? null,
        timezone,
        enabled: dto.enabled ?? true,
      }),
    );
  }

  /** @throws DrError NOT_FOUND, VALIDATION_FAILED */
  async update(id: string, dto: UpdateBackupPlanDto): Promise<BackupPlanEntity> {
    const plan = await this.get(id);
    if (dto.source !== undefined) {
      plan.source = { ...(await validateNested(this.engines.get(plan.engine).sourceClass, dto.source, 'source')) };
    }
    if (dto.storageLocationId !== undefined) plan.storageLocationId = (await this.locations.resolve(dto.storageLocationId)).id;
    if (dto.schedule !== undefined) plan.schedule = dto.schedule;
    if (dto.timezone !== undefined) plan.timezone = dto.timezone;
    if (dto.enabled !== undefined) plan.enabled = dto.enabled;
    this.checkSchedule(plan.schedule, plan.timezone);
    return this.plans.save(plan);
  }

  /** @throws DrError NOT_FOUND */
  async get(id: string): Promise<BackupPlanEntity> {
    const plan = await this.plans.findOneBy({ id });
    if (!plan) throw DrError.notFound('backup plan', id);
    return plan;
  }

  async list(): Promise<BackupPlanEntity[]> {
    return this.plans.find({ order: { name: 'ASC' } });
  }

  /** Enabled plans that have a schedule. */
  async scheduled(): Promise<BackupPlanEntity[]> {
    return (await this.plans.findBy({ enabled: true })).filter((p) => p.schedule);
  }

  /** Deletes a plan; its backups stay, detached from it. @throws DrError NOT_FOUND */
  async delete(id: string): Promise<void> {
    const plan = await this.get(id);
    await this.plans.delete(plan.id);
  }

  private checkSchedule(schedule: string | null, timezone: string): void {
    const problems = [];
    if (!isValidTimezone(timezone)) problems.push({ field: 'timezone', message: `unknown time zone "${timezone}"` });
    else if (schedule && !isValidCron(schedule, timezone)) {
      problems.push({ field: 'schedule', message: 'not a valid cron expression (5 fields, or 6 with seconds)' });
    }
    if (problems.length) throw DrError.validation(problems);
  }
}

function isValidTimezone(timezone: string): boolean {
  try {
    new Intl.DateTimeFormat('en-US', { timeZone: timezone });
    return true;
  } catch {
    return false;
  }
}
