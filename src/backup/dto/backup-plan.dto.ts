import { OmitType, PartialType } from '@nestjs/swagger';
import { Type } from 'class-transformer';
import {
  ArrayMaxSize,
  IsArray,
  IsBoolean,
  IsIn,
  IsInt,
  IsObject,
  IsOptional,
  IsString,
  IsUUID,
  Length,
  Matches,
  Max,
  MaxLength,
  Min,
  ValidateNested,
} from 'class-validator';
import { EncryptionSettings } from '../../pipeline/backup-encryption';
import { ENGINE_NAMES, EngineName } from '../../engines/backup-engine';
import { BackupPlanEntity } from '../backup-plan.entity';

/** `POST /backup-plans`. `schedule` is a cron expression (5 fields, or 6 with seconds) in `timezone` (IANA, default UTC). */
export class CreateBackupPlanDto {
  @IsString()
  @Length(1, 100)
  @Matches(/^[A-Za-z0-9][A-Za-z0-9._-]*$/, { message: 'name may hold letters, digits, . _ -' })
  name: string;

  @IsIn(ENGINE_NAMES, { message: `engine must be one of: ${ENGINE_NAMES.join(', ')}` })
  engine: EngineName;

  @IsObject()
  source: Record<string, unknown>;

  @IsOptional()
  @IsUUID('all', { message: 'storageLocationId must be a UUID' })
  storageLocationId?: string;

  @IsOptional()
  @IsString()
  @MaxLength(120)
  schedule?: string | null;

  @IsOptional()
  @IsString()
  @MaxLength(64)
  timezone?: string;

  @IsOptional()
  @IsBoolean()
  enabled?: boolean;

  /** Encrypt this plan's backups (age): `{"recipients":["age1..."]}` or `{"passphraseSecret":"env:NAME"}`; null: the location's. */
  @IsOptional()
  @ValidateNested()
  @Type(() => EncryptionSettings)
  encryption?: EncryptionSettings | null;

  /** Locations each completed backup is copied to (3-2-1); the copies are verified by hash. */
  @IsOptional()
  @IsArray()
  @ArrayMaxSize(5)
  @IsUUID('all', { each: true, message: 'each copy location must be a UUID' })
  copyLocationIds?: string[];

  /** Which backups to keep, with restic's forget rules (keepLast, keepDaily, ..., keepWithin); null keeps all. */
  @IsOptional()
  @IsObject()
  retention?: Record<string, unknown> | null;

  /** Lock each backup's objects for this many days (storage with immutability: S3 Object Lock, Azure policies). */
  @IsOptional()
  @IsInt()
  @Min(1)
  @Max(36500)
  immutableDays?: number | null;

  /** Incrementals after each full (filesystem plans only): 0 (the default) = every backup is full. */
  @IsOptional()
  @IsInt()
  @Min(0)
  @Max(1000)
  incrementalsPerFull?: number;
}

/**
 * `PATCH /backup-plans/{id}`: any subset of the plan's fields except its name and engine (the create DTO's fields
 * and checks, each optional; @nestjs/swagger's mapped types keep the OpenAPI schema in step).
 */
export class UpdateBackupPlanDto extends PartialType(OmitType(CreateBackupPlanDto, ['name', 'engine'] as const)) {}

/** `POST /backup-plans/{id}/retention`. */
export class ApplyRetentionDto {
  /** true (the default): report only; false: delete what the policy does not keep. */
  @IsOptional()
  @IsBoolean()
  dryRun?: boolean;
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
  encryption: EncryptionSettings | null;
  copyLocationIds: string[];
  retention: Record<string, unknown> | null;
  immutableDays: number | null;
  /** Incrementals after each full (0: every backup is full). */
  incrementalsPerFull: number;
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
      encryption: p.encryption,
      copyLocationIds: p.copyLocationIds,
      retention: p.retention,
      immutableDays: p.immutableDays,
      incrementalsPerFull: p.incrementalsPerFull,
      createdAt: p.createdAt.toISOString(),
      updatedAt: p.updatedAt.toISOString(),
    };
  }
}
