import { Body, Controller, Get, Param, Post } from '@nestjs/common';
import { Type } from 'class-transformer';
import { IsIn, IsObject, IsOptional, IsString, Length, Matches, ValidateNested } from 'class-validator';
import { EncryptionSettings } from '../pipeline/backup-encryption';
import { ANY_ROLE, Roles } from '../auth/roles.decorator';
import { API_PREFIX } from '../http/api-prefix';
import { uuidPipe } from '../http/uuid-pipe';
import { STORAGE_KINDS, StorageKind, StorageLocationEntity } from './storage-location.entity';
import { StorageLocationsService } from './storage-locations.service';

export class CreateStorageLocationDto {
  @IsString() @Length(1, 100) @Matches(/^[A-Za-z0-9][A-Za-z0-9._-]*$/, { message: 'name may hold letters, digits, . _ -' })
  name: string;

  @IsIn(STORAGE_KINDS, { message: `kind must be one of: ${STORAGE_KINDS.join(', ')}` })
  kind: StorageKind;

  /** The driver's settings, validated against its kind (e.g. `{"path":"/mnt/nfs"}`, `{"bucket":"b","region":"eu-west-1"}`). */
  @IsObject()
  settings: Record<string, unknown>;

  /** Encrypt backups stored here (age) unless their plan says otherwise. */
  @IsOptional() @ValidateNested() @Type(() => EncryptionSettings)
  encryption?: EncryptionSettings;
}

export class StorageLocationResponse {
  id: string;
  name: string;
  kind: string;
  settings: Record<string, unknown>;
  encryption: EncryptionSettings | null;
  isDefault: boolean;
  createdAt: string;

  static of(l: StorageLocationEntity): StorageLocationResponse {
    return {
      id: l.id,
      name: l.name,
      kind: l.kind,
      settings: { ...l.settings },
      encryption: l.encryption,
      isDefault: l.isDefault,
      createdAt: l.createdAt.toISOString(),
    };
  }
}

/** Storage locations: where artifacts are kept. */
@Controller(`${API_PREFIX}/storage-locations`)
export class StorageLocationsController {
  constructor(private readonly locations: StorageLocationsService) {}

  @Post()
  @Roles()
  async create(@Body() dto: CreateStorageLocationDto): Promise<StorageLocationResponse> {
    return StorageLocationResponse.of(await this.locations.create(dto.name, dto.kind, dto.settings, dto.encryption));
  }

  @Get()
  @Roles(...ANY_ROLE)
  async list(): Promise<StorageLocationResponse[]> {
    return (await this.locations.list()).map((l) => StorageLocationResponse.of(l));
  }

  @Get(':id')
  @Roles(...ANY_ROLE)
  async get(@Param('id', uuidPipe('id')) id: string): Promise<StorageLocationResponse> {
    return StorageLocationResponse.of(await this.locations.get(id));
  }
}
