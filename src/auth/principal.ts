import { createParamDecorator, ExecutionContext } from '@nestjs/common';
import { Role } from './role';

/**
 * Who made a request. `kind` says how they authenticated: an API key (`id` is the key's id, `name` its name) or a
 * bearer JWT (`id` and `name` are the token's `sub`, or `preferred_username` when it has no `sub`).
 * `roles` holds only roles this service knows; unknown roles of a token are dropped.
 */
export interface Principal {
  kind: 'apikey' | 'jwt';
  id: string;
  name: string;
  roles: Role[];
}

/** Injects the authenticated {@link Principal} into a handler parameter. */
export const CurrentPrincipal = createParamDecorator((_data: unknown, ctx: ExecutionContext): Principal => {
  return ctx.switchToHttp().getRequest<{ principal: Principal }>().principal;
});

/**
 * How a principal is written in records (`created_by`, `approved_by`): `apikey:<key name>` or `jwt:<subject>`.
 * Two-person approval compares these strings, so two API keys with the same name count as one person.
 */
export function actorOf(principal: Principal | undefined): string | null {
  return principal ? `${principal.kind}:${principal.name}` : null;
}
