import { RequestMethod, Type } from '@nestjs/common';
import { METHOD_METADATA, PATH_METADATA } from '@nestjs/common/constants';
import { ApiExtension, ApiOperation, ApiResponse, ApiSecurity, getSchemaPath } from '@nestjs/swagger';
import { Role } from '../auth/role';
import { PUBLIC_KEY, ROLES_KEY } from '../auth/roles.decorator';
import { ErrorResponse } from './error-response';

/** Names of the security schemes declared in the document. */
export const API_KEY_SCHEME = 'api-key';
export const BEARER_SCHEME = 'bearer';

/** Who may call a route, as read from its `@Roles`/`@Public` metadata (the same metadata the guard enforces). */
export type RouteAccess = { public: true } | { public: false; roles: Role[] };

/** Reads a handler's access the way `ApiKeyGuard` does (handler metadata overrides the controller's). */
export function accessOf(controller: Type<unknown>, handler: object): RouteAccess | undefined {
  const isPublic = (Reflect.getMetadata(PUBLIC_KEY, handler) ?? Reflect.getMetadata(PUBLIC_KEY, controller)) as boolean | undefined;
  if (isPublic) return { public: true };
  const roles = (Reflect.getMetadata(ROLES_KEY, handler) ?? Reflect.getMetadata(ROLES_KEY, controller)) as Role[] | undefined;
  if (!roles) return undefined;
  // ADMIN passes every role check (see ApiKeyGuard).
  return { public: false, roles: [Role.ADMIN, ...roles.filter((r) => r !== Role.ADMIN)] };
}

/** A fallback summary for a handler without a doc comment: `list` on `BackupPlansController` → "List backup plans". */
function fallbackSummary(controller: Type<unknown>, name: string): string {
  const words = (s: string) => s.replace(/([a-z0-9])([A-Z])/g, '$1 $2').toLowerCase();
  const noun = words(controller.name.replace(/Controller$/, ''));
  const object = name === 'list' ? noun : noun.replace(/ies$/, 'y').replace(/s$/, '');
  const verb = words(name);
  return `${verb.charAt(0).toUpperCase()}${verb.slice(1)} ${object}`;
}

/** Responses with {@link ErrorResponse} bodies that a route of this kind may answer. */
function errorResponses(access: RouteAccess, method: RequestMethod, path: string): Record<number, string> {
  if (access.public) {
    // Every route reads a JSON body it is sent (the body parser runs before routing), public ones too.
    return {
      400: 'VALIDATION_FAILED: the request carried a malformed JSON body.',
      413: 'PAYLOAD_TOO_LARGE: the request carried a JSON body over 1 MiB.',
      500: 'INTERNAL: an unexpected failure; the message says nothing of the cause.',
    };
  }
  const errors: Record<number, string> = {
    400: 'VALIDATION_FAILED: bad input; `details` names each bad field.',
    401: 'UNAUTHENTICATED: missing, unknown or revoked credentials.',
    403: `FORBIDDEN: the caller has none of the roles ${access.roles.join(', ')}.`,
    429: 'RATE_LIMITED: too many requests from this client; retry after the `Retry-After` seconds.',
    500: 'INTERNAL: an unexpected failure; the message says nothing of the cause.',
  };
  if (path.includes(':')) errors[404] = 'NOT_FOUND: no record with this id.';
  if (method === RequestMethod.POST || method === RequestMethod.PATCH || method === RequestMethod.PUT) {
    errors[404] = 'NOT_FOUND: no record with this id (in the path, or named by the body: backup, plan, location...).';
    errors[415] = 'A JSON body in a charset other than UTF-8.';
    errors[409] = 'A conflict with the current state (CONFLICT, PLAN_BUSY, TARGET_* and other codes).';
    errors[413] = 'PAYLOAD_TOO_LARGE: the JSON body is over 1 MiB.';
  }
  return errors;
}

/**
 * Adds to every route handler of `controllers` what the swagger explorer cannot infer: the roles allowed
 * (in the description and as `x-roles`), the security requirement, a summary when the handler has no doc comment,
 * and the error responses with the {@link ErrorResponse} schema. Idempotent: handlers already annotated are skipped.
 * @returns the public routes, as `ControllerClass.method` (the caller gives them an empty security requirement,
 *   which `@nestjs/swagger` cannot express: it drops empty metadata)
 */
export function annotateRoutes(controllers: Type<unknown>[]): Set<string> {
  const publicOperations = new Set<string>();
  for (const controller of controllers) {
    const prototype = controller.prototype as Record<string, unknown>;
    for (const name of Object.getOwnPropertyNames(prototype)) {
      if (name === 'constructor') continue;
      const descriptor = Object.getOwnPropertyDescriptor(prototype, name);
      const handler = descriptor?.value as ((...args: unknown[]) => unknown) | undefined;
      if (typeof handler !== 'function' || Reflect.getMetadata(PATH_METADATA, handler) === undefined) continue;
      const access = accessOf(controller, handler);
      if (access?.public) publicOperations.add(`${controller.name}.${name}`);
      if (Reflect.getMetadata('dr:openapi-annotated', handler)) continue;
      Reflect.defineMetadata('dr:openapi-annotated', true, handler);
      const method = Reflect.getMetadata(METHOD_METADATA, handler) as RequestMethod;
      const path = String(Reflect.getMetadata(PATH_METADATA, handler));

      // The operation metadata the compiler plugin derived from the doc comment (key of @nestjs/swagger's ApiOperation).
      const operation = { ...((Reflect.getMetadata('swagger/apiOperation', handler) as Parameters<typeof ApiOperation>[0] | undefined) ?? {}) };
      operation.summary ||= fallbackSummary(controller, name);
      const who = !access
        ? 'Roles: none (the route declares no roles; every call is refused).'
        : access.public
          ? 'Public: no credentials needed.'
          : `Roles: ${access.roles.join(', ')}.`;
      operation.description = operation.description ? `${operation.description}\n\n${who}` : who;
      ApiOperation(operation, { overrideExisting: true })(prototype, name, descriptor!);

      ApiExtension('x-roles', access && !access.public ? access.roles : [])(prototype, name, descriptor);
      if (access && !access.public) {
        ApiSecurity(API_KEY_SCHEME)(prototype, name, descriptor!);
        ApiSecurity(BEARER_SCHEME)(prototype, name, descriptor!);
      }
      for (const [status, description] of Object.entries(errorResponses(access ?? { public: false, roles: [] }, method, path))) {
        ApiResponse({ status: Number(status), description, schema: { $ref: getSchemaPath(ErrorResponse) } })(prototype, name, descriptor!);
      }
    }
  }
  return publicOperations;
}
