import { CanActivate, ExecutionContext, Inject, Injectable, Logger, Optional } from '@nestjs/common';
import { Reflector } from '@nestjs/core';
import type { Request } from 'express';
import { AppConfig } from '../config/app-config';
import { DrError } from '../errors/dr-error';
import { ApiKeysService } from './api-keys.service';
import { JwtAuthGuard } from './jwt-auth.guard';
import { JwtStrategy } from './jwt.strategy';
import { Principal } from './principal';
import { Role } from './role';
import { PUBLIC_KEY, ROLES_KEY } from './roles.decorator';

type AuthenticatedRequest = Request & { principal?: Principal };

/**
 * The one global guard. A route is reachable only if it is marked {@link Public} or declares its roles with
 * `@Roles(...)`; a route that declares neither is refused (fail closed). ADMIN passes every role check.
 * Credentials: an `X-API-Key` header, or `Authorization: Bearer <JWT>` when JWTs are configured; a request that
 * presents both is refused. No credentials or bad ones → 401 UNAUTHENTICATED; a principal without an allowed
 * role (e.g. a token whose roles claim names no known role) → 403 FORBIDDEN.
 */
@Injectable()
export class CredentialsGuard implements CanActivate {
  private readonly logger = new Logger(CredentialsGuard.name);
  private readonly jwtGuard?: JwtAuthGuard;

  constructor(
    private readonly reflector: Reflector,
    private readonly apiKeys: ApiKeysService,
    private readonly config: AppConfig,
    @Optional() @Inject(JwtStrategy) jwtStrategy?: JwtStrategy | null,
  ) {
    if (jwtStrategy) this.jwtGuard = new JwtAuthGuard();
  }

  async canActivate(context: ExecutionContext): Promise<boolean> {
    const targets = [context.getHandler(), context.getClass()];
    if (this.reflector.getAllAndOverride<boolean>(PUBLIC_KEY, targets)) return true;
    const request = context.switchToHttp().getRequest<AuthenticatedRequest>();
    const principal = await this.authenticate(context, request);
    request.principal = principal;
    const allowed = this.reflector.getAllAndOverride<Role[] | undefined>(ROLES_KEY, targets);
    if (!allowed) {
      this.logger.error(`route ${request.method} ${request.path} declares no roles; refused`);
      throw new DrError('FORBIDDEN', 'route is not open to any role');
    }
    if (principal.roles.includes(Role.ADMIN) || principal.roles.some((r) => allowed.includes(r))) return true;
    throw new DrError('FORBIDDEN', `requires one of the roles: ${[Role.ADMIN, ...allowed].join(', ')}`);
  }

  /** @throws DrError UNAUTHENTICATED */
  private async authenticate(context: ExecutionContext, request: AuthenticatedRequest): Promise<Principal> {
    const header = request.headers['x-api-key'];
    const apiKey = Array.isArray(header) ? header[0] : header;
    const authorization = request.headers.authorization;
    const bearer = typeof authorization === 'string' && /^bearer\s/i.test(authorization);
    if (apiKey && bearer) throw new DrError('UNAUTHENTICATED', 'present either X-API-Key or Authorization: Bearer, not both');
    if (apiKey) {
      const principal = await this.apiKeys.authenticate(apiKey);
      if (!principal) throw new DrError('UNAUTHENTICATED', 'invalid or revoked API key');
      return principal;
    }
    if (bearer) {
      if (!this.jwtGuard) throw new DrError('UNAUTHENTICATED', 'bearer tokens are not accepted here (no DR_JWT_SECRET or DR_JWT_JWKS_URL configured)');
      await this.jwtGuard.canActivate(context);
      return (request as AuthenticatedRequest & { user: Principal }).user;
    }
    throw new DrError(
      'UNAUTHENTICATED',
      this.config.jwt ? 'missing credentials: an X-API-Key header or an Authorization: Bearer token' : 'missing X-API-Key header',
    );
  }
}
