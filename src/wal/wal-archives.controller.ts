import { Body, Controller, Get, Param, Post } from '@nestjs/common';
import { Role } from '../auth/role';
import { ANY_ROLE, Roles } from '../auth/roles.decorator';
import { API_PREFIX } from '../http/api-prefix';
import { uuidPipe } from '../http/uuid-pipe';
import { WalArchivesService } from './wal-archives.service';
import { WalClientConfig } from './wal-client-config';
import { CreateWalArchiveDto, WalArchiveResponse, WalArchiveStatusResponse } from './dto/wal-archive.dto';

/** WAL archives for point-in-time recovery: `dr wal-push` writes into them, POINT_IN_TIME recoveries replay from them. */
@Controller(`${API_PREFIX}/wal-archives`)
export class WalArchivesController {
  constructor(private readonly archives: WalArchivesService) {}

  @Post()
  @Roles(Role.BACKUP_ADMIN)
  async create(@Body() dto: CreateWalArchiveDto): Promise<WalArchiveResponse> {
    return WalArchiveResponse.of(await this.archives.create(dto));
  }

  @Get()
  @Roles(...ANY_ROLE)
  async list(): Promise<WalArchiveResponse[]> {
    return (await this.archives.list()).map((a) => WalArchiveResponse.of(a));
  }

  /** The archive and its state (reads the store's listing: newest segment, RPO, continuity). */
  @Get(':id')
  @Roles(...ANY_ROLE)
  async get(@Param('id', uuidPipe('id')) id: string): Promise<WalArchiveStatusResponse> {
    const archive = await this.archives.get(id);
    return WalArchiveStatusResponse.withStatus(archive, await this.archives.status(archive));
  }

  /** The JSON file for `dr wal-push %p --config <file>` / `dr wal-fetch %f %p --config <file>` (secret references only). */
  @Get(':id/client-config')
  @Roles(Role.BACKUP_ADMIN, Role.RECOVERY_ADMIN)
  async clientConfig(@Param('id', uuidPipe('id')) id: string): Promise<WalClientConfig> {
    return this.archives.clientConfig(await this.archives.get(id));
  }
}
