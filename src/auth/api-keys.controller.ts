import { Body, Controller, Delete, Get, HttpCode, Param, Post } from '@nestjs/common';
import { API_PREFIX } from '../http/api-prefix';
import { uuidPipe } from '../http/uuid-pipe';
import { ApiKeysService } from './api-keys.service';
import { actorOf, CurrentPrincipal, Principal } from './principal';
import { Roles } from './roles.decorator';
import { CreateApiKeyDto, ApiKeyResponse } from './dto/api-key.dto';

/** Creates, lists and revokes API keys (ADMIN only). */
@Controller(`${API_PREFIX}/api-keys`)
@Roles()
export class ApiKeysController {
  constructor(private readonly apiKeys: ApiKeysService) {}

  /** Creates a key; the response's `secret` is shown this once. */
  @Post()
  async create(@Body() dto: CreateApiKeyDto, @CurrentPrincipal() principal: Principal): Promise<ApiKeyResponse & { secret: string }> {
    const { key, secret } = await this.apiKeys.create(dto.name, dto.roles, actorOf(principal));
    return { ...ApiKeyResponse.of(key), secret };
  }

  @Get()
  async list(): Promise<ApiKeyResponse[]> {
    return (await this.apiKeys.list()).map((k) => ApiKeyResponse.of(k));
  }

  @Delete(':id')
  @HttpCode(200)
  async revoke(@Param('id', uuidPipe('id')) id: string, @CurrentPrincipal() principal: Principal): Promise<ApiKeyResponse> {
    return ApiKeyResponse.of(await this.apiKeys.revoke(id, actorOf(principal)));
  }
}
