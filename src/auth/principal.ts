import { createParamDecorator, ExecutionContext } from '@nestjs/common';
import { Role } from './role';

/** Who made a request: the API key's id and name, and its roles. */
export interface Principal {
  keyId: string;
  name: string;
  roles: Role[];
}

/** Injects the authenticated {@link Principal} into a handler parameter. */
export const CurrentPrincipal = createParamDecorator((_data: unknown, ctx: ExecutionContext): Principal => {
  return ctx.switchToHttp().getRequest<{ principal: Principal }>().principal;
});

/** How a principal is written in records (`created_by`). */
export function actorOf(principal: Principal | undefined): string | null {
  return principal ? `apikey:${principal.name}` : null;
}
