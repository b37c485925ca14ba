import { CanActivate, ExecutionContext, Injectable, Logger } from '@nestjs/common';
import { Reflector } from '@nestjs/core';
import type { Request } from 'express';
import { DrError } from '../errors/dr-error';
import { ApiKeysService } from './api-keys.service';
import { Principal } from './principal';
import { Role } from './role';
import { PUBLIC_KEY, ROLES_KEY } from './roles.decorator';

/**
 * The one global guard. A route is reachable only if it is marked {@link Public} or declares its roles with
 * `@Roles(...)`; a route that declares neither is refused (fail closed). ADMIN passes every role check.
 */
@Injectable()
export class ApiKeyGuard implements CanActivate {
  private readonly logger = new Logger(ApiKeyGuard.name);

  constructor(
    private readonly reflector: Reflector,
    private readonly apiKeys: ApiKeysService,
  ) {}

  async canActivate(context: ExecutionContext): Promise<boolean> {
    const targets = [context.getHandler(), context.getClass()];
    if (this.reflector.getAllAndOverride<boolean>(PUBLIC_KEY, targets)) return true;
    const request = context.switchToHttp().getRequest<Request & { principal?: Principal }>();
    const header = request.headers['x-api-key'];
    const presented = Array.isArray(header) ? header[0] : header;
    if (!presented) throw new DrError('UNAUTHENTICATED', 'missing X-API-Key header');
    const principal = await this.apiKeys.authenticate(presented);
    if (!principal) throw new DrError('UNAUTHENTICATED', 'invalid or revoked API key');
    request.principal = principal;
    const allowed = this.reflector.getAllAndOverride<Role[] | undefined>(ROLES_KEY, targets);
    if (!allowed) {
      this.logger.error(`route ${request.method} ${request.path} declares no roles; refused`);
      throw new DrError('FORBIDDEN', 'route is not open to any role');
    }
    if (principal.roles.includes(Role.ADMIN) || principal.roles.some((r) => allowed.includes(r))) return true;
    throw new DrError('FORBIDDEN', `requires one of the roles: ${[Role.ADMIN, ...allowed].join(', ')}`);
  }
}
