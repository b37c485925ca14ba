import { Body, Controller, Delete, Get, HttpCode, Param, Post } from '@nestjs/common';
import { ArrayNotEmpty, IsArray, IsEnum, IsString, Length } from 'class-validator';
import { API_PREFIX } from '../http/api-prefix';
import { uuidPipe } from '../http/uuid-pipe';
import { ApiKeyEntity } from './api-key.entity';
import { ApiKeysService } from './api-keys.service';
import { actorOf, CurrentPrincipal, Principal } from './principal';
import { Role } from './role';
import { Roles } from './roles.decorator';

export class CreateApiKeyDto {
  @IsString() @Length(1, 200)
  name: string;

  @IsArray() @ArrayNotEmpty() @IsEnum(Role, { each: true })
  roles: Role[];
}

/** An API key as the API shows it: never its secret or hash. */
export class ApiKeyResponse {
  id: string;
  name: string;
  prefix: string;
  roles: Role[];
  createdAt: string;
  createdBy: string | null;
  revokedAt: string | null;
  lastUsedAt: string | null;

  static of(key: ApiKeyEntity): ApiKeyResponse {
    return {
      id: key.id,
      name: key.name,
      prefix: key.prefix,
      roles: key.roles,
      createdAt: key.createdAt.toISOString(),
      createdBy: key.createdBy,
      revokedAt: key.revokedAt?.toISOString() ?? null,
      lastUsedAt: key.lastUsedAt?.toISOString() ?? null,
    };
  }
}

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
