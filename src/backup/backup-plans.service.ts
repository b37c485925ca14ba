import { Injectable } from '@nestjs/common';
import { InjectRepository } from '@nestjs/typeorm';
import { Repository } from 'typeorm';
import { EngineRegistry } from '../engines/engine-registry';
import { DrError, FieldProblem } from '../errors/dr-error';
import { checkEncryptionSettings } from '../pipeline/backup-encryption';
import { RetentionPolicy } from './retention-policy';
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
    const protection = await this.checkProtection(location.id, dto);
    this.checkIncrementals(engine.supportsIncremental ?? false, engine.name, dto.incrementalsPerFull);
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
        incrementalsPerFull: dto.incrementalsPerFull ?? 0,
        ...protection,
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
    if (dto.incrementalsPerFull !== undefined) {
      const engine = this.engines.get(plan.engine);
      this.checkIncrementals(engine.supportsIncremental ?? false, engine.name, dto.incrementalsPerFull);
      plan.incrementalsPerFull = dto.incrementalsPerFull;
    }
    this.checkSchedule(plan.schedule, plan.timezone);
    const merged = {
      encryption: dto.encryption !== undefined ? dto.encryption : plan.encryption,
      copyLocationIds: dto.copyLocationIds ?? plan.copyLocationIds,
      retention: dto.retention !== undefined ? dto.retention : plan.retention,
      immutableDays: dto.immutableDays !== undefined ? dto.immutableDays : plan.immutableDays,
    };
    Object.assign(plan, await this.checkProtection(plan.storageLocationId, merged));
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

  /**
   * Checks encryption, copy locations, retention and immutability together: exactly one kind of encryption,
   * copy locations that exist and differ from the primary, a valid retention policy, and immutability only on
   * stores that can lock objects. @throws DrError VALIDATION_FAILED naming each bad field
   */
  private async checkProtection(
    primaryLocationId: string,
    dto: Pick<CreateBackupPlanDto, 'encryption' | 'copyLocationIds' | 'retention' | 'immutableDays'>,
  ): Promise<Pick<BackupPlanEntity, 'encryption' | 'copyLocationIds' | 'retention' | 'immutableDays'>> {
    const problems: FieldProblem[] = [];
    if (dto.encryption) {
      try {
        checkEncryptionSettings(dto.encryption, 'encryption');
      } catch (error) {
        problems.push(...(error as DrError).details);
      }
    }
    const copyLocationIds = [...new Set(dto.copyLocationIds ?? [])];
    for (const [i, id] of copyLocationIds.entries()) {
      if (id === primaryLocationId) problems.push({ field: `copyLocationIds.${i}`, message: 'a copy must go to another location than the primary' });
      else if (!(await this.locations.exists(id))) problems.push({ field: `copyLocationIds.${i}`, message: `storage location ${id} does not exist` });
    }
    const retention = dto.retention ? await this.retentionPolicy(dto.retention, problems) : null;
    if (dto.immutableDays) {
      for (const id of [primaryLocationId, ...copyLocationIds]) {
        if ((await this.locations.exists(id)) && !(await this.locations.capabilitiesOf(id)).immutability) {
          problems.push({ field: 'immutableDays', message: `storage location ${id} cannot lock objects (no immutability support)` });
        }
      }
    }
    if (problems.length) throw DrError.validation(problems);
    return {
      encryption: dto.encryption ? { ...dto.encryption } : null,
      copyLocationIds,
      retention: retention as Record<string, unknown> | null,
      immutableDays: dto.immutableDays ?? null,
    };
  }

  /** Validates a retention policy (restic's forget rules). */
  private async retentionPolicy(raw: Record<string, unknown>, problems: FieldProblem[]): Promise<object | null> {
    try {
      return { ...(await validateNested(RetentionPolicy, raw, 'retention')) };
    } catch (error) {
      problems.push(...(error as DrError).details);
      return null;
    }
  }

  /** @throws DrError VALIDATION_FAILED on `incrementalsPerFull` for an engine without incremental backups */
  private checkIncrementals(supported: boolean, engine: string, incrementalsPerFull: number | undefined): void {
    if (incrementalsPerFull && !supported) {
      throw DrError.validation([{ field: 'incrementalsPerFull', message: `the ${engine} engine takes full backups only; incrementalsPerFull must be 0` }]);
    }
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
