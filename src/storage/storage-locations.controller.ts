import { Body, Controller, Get, Param, Post } from '@nestjs/common';
import { ANY_ROLE, Roles } from '../auth/roles.decorator';
import { API_PREFIX } from '../http/api-prefix';
import { uuidPipe } from '../http/uuid-pipe';
import { StorageLocationsService } from './storage-locations.service';
import { CreateStorageLocationDto, StorageLocationResponse } from './dto/storage-location.dto';

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
