import { Body, Controller, Get, Param, Post } from '@nestjs/common';
import { Type } from 'class-transformer';
import { IsIn, IsObject, IsString, Length, Matches, ValidateNested } from 'class-validator';
import { ANY_ROLE, Roles } from '../auth/roles.decorator';
import { API_PREFIX } from '../http/api-prefix';
import { uuidPipe } from '../http/uuid-pipe';
import { StorageLocationEntity } from './storage-location.entity';
import { StorageLocationsService } from './storage-locations.service';

export class LocalSettingsDto {
  @IsString() @Matches(/^\//, { message: 'path must be an absolute path' })
  path: string;
}

export class CreateStorageLocationDto {
  @IsString() @Length(1, 100) @Matches(/^[A-Za-z0-9][A-Za-z0-9._-]*$/, { message: 'name may hold letters, digits, . _ -' })
  name: string;

  @IsIn(['local'])
  kind: 'local';

  @IsObject() @ValidateNested() @Type(() => LocalSettingsDto)
  settings: LocalSettingsDto;
}

export class StorageLocationResponse {
  id: string;
  name: string;
  kind: string;
  settings: Record<string, unknown>;
  isDefault: boolean;
  createdAt: string;

  static of(l: StorageLocationEntity): StorageLocationResponse {
    return { id: l.id, name: l.name, kind: l.kind, settings: { ...l.settings }, isDefault: l.isDefault, createdAt: l.createdAt.toISOString() };
  }
}

/** Storage locations: where artifacts are kept. */
@Controller(`${API_PREFIX}/storage-locations`)
export class StorageLocationsController {
  constructor(private readonly locations: StorageLocationsService) {}

  @Post()
  @Roles()
  async create(@Body() dto: CreateStorageLocationDto): Promise<StorageLocationResponse> {
    return StorageLocationResponse.of(await this.locations.create(dto.name, dto.kind, dto.settings));
  }

  @Get()
  @Roles(...ANY_ROLE)
  async list(): Promise<StorageLocationResponse[]> {
    return (await this.locations.list()).map(StorageLocationResponse.of);
  }

  @Get(':id')
  @Roles(...ANY_ROLE)
  async get(@Param('id', uuidPipe('id')) id: string): Promise<StorageLocationResponse> {
    return StorageLocationResponse.of(await this.locations.get(id));
  }
}
