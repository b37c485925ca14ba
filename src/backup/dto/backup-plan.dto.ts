import { IsBoolean, IsIn, IsObject, IsOptional, IsString, IsUUID, Length, Matches, MaxLength } from 'class-validator';
import { ENGINE_NAMES, EngineName } from '../../engines/backup-engine';
import { BackupPlanEntity } from '../backup-plan.entity';

/** `POST /backup-plans`. `schedule` is a cron expression (5 fields, or 6 with seconds) in `timezone` (IANA, default UTC). */
export class CreateBackupPlanDto {
  @IsString() @Length(1, 100) @Matches(/^[A-Za-z0-9][A-Za-z0-9._-]*$/, { message: 'name may hold letters, digits, . _ -' })
  name: string;

  @IsIn(ENGINE_NAMES, { message: `engine must be one of: ${ENGINE_NAMES.join(', ')}` })
  engine: EngineName;

  @IsObject()
  source: Record<string, unknown>;

  @IsOptional() @IsUUID('all', { message: 'storageLocationId must be a UUID' })
  storageLocationId?: string;

  @IsOptional() @IsString() @MaxLength(120)
  schedule?: string | null;

  @IsOptional() @IsString() @MaxLength(64)
  timezone?: string;

  @IsOptional() @IsBoolean()
  enabled?: boolean;
}

/** `PATCH /backup-plans/{id}`: any subset of the plan's fields except its engine. */
export class UpdateBackupPlanDto {
  @IsOptional() @IsObject()
  source?: Record<string, unknown>;

  @IsOptional() @IsUUID('all', { message: 'storageLocationId must be a UUID' })
  storageLocationId?: string;

  @IsOptional() @IsString() @MaxLength(120)
  schedule?: string | null;

  @IsOptional() @IsString() @MaxLength(64)
  timezone?: string;

  @IsOptional() @IsBoolean()
  enabled?: boolean;
}

export class BackupPlanResponse {
  id: string;
  name: string;
  engine: EngineName;
  source: Record<string, unknown>;
  storageLocationId: string;
  schedule: string | null;
  timezone: string;
  enabled: boolean;
  createdAt: string;
  updatedAt: string;

  static of(p: BackupPlanEntity): BackupPlanResponse {
    return {
      id: p.id,
      name: p.name,
      engine: p.engine,
      source: p.source,
      storageLocationId: p.storageLocationId,
      schedule: p.schedule,
      timezone: p.timezone,
      enabled: p.enabled,
      createdAt: p.createdAt.toISOString(),
      updatedAt: p.updatedAt.toISOString(),
    };
  }
}
