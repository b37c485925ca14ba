import { Injectable, NestMiddleware } from '@nestjs/common';
import type { NextFunction, Request, Response } from 'express';
import { Principal } from '../auth/principal';
import { API_PREFIX } from '../http/api-prefix';
import { AuditOutcome } from './audit-entry.entity';
import { AuditService } from './audit.service';
import { requestIdOf } from '../logging/request-id';
import { isWellFormedUnicode } from '../hardening/request-shape';

const MUTATING = new Set(['POST', 'PUT', 'PATCH', 'DELETE']);
const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;
/** Body fields copied into the entry's details: ids and kinds, never sources, targets, settings or secrets. */
const SAFE_BODY_FIELDS = ['engine', 'type', 'mode', 'kind', 'planId', 'backupId', 'storageLocationId', 'dryRun', 'overwrite', 'enabled', 'roles'] as const;

/** What handlers and the error filter leave on the request for the audit entry. */
export interface AuditedRequest extends Request {
  principal?: Principal;
  /** The id of the resource a handler created (set by {@link AuditResponseInterceptor}). */
  auditTargetId?: string;
  /** The error code of a failed request (set by the exception filter). */
  auditErrorCode?: string;
}

/**
 * Records every mutating request (POST, PUT, PATCH,
 * DELETE) in the audit trail when its response has been sent: a middleware, not an interceptor, so that requests
 * refused by the guard (401, 403) and by pipes are recorded too. Outcome: DENIED for 401/403, FAILURE for other
 * 4xx/5xx, SUCCESS otherwise. Action: the method and the path after the API prefix with UUIDs as `:id`
 * (`POST /backups/:id/verify`); target: the first path segment and the first UUID in the path, or the id of what
 * was created.
 */
@Injectable()
export class AuditRequestMiddleware implements NestMiddleware {
  constructor(private readonly audit: AuditService) {}

  use(request: AuditedRequest, response: Response, next: NextFunction): void {
    // the request logger (pino-http) has given the request its id and echoed it; without it, do the same here
    const requestId = typeof request.id === 'string' || typeof request.id === 'number' ? String(request.id) : requestIdOf(request, response);
    if (MUTATING.has(request.method)) {
      response.once('finish', () => void this.audit.record(this.eventOf(request, response.statusCode, requestId)));
    }
    next();
  }

  private eventOf(request: AuditedRequest, status: number, requestId: string) {
    const path = (request.originalUrl ?? request.url).split('?')[0];
    const relative = path.startsWith(`/${API_PREFIX}`) ? path.slice(API_PREFIX.length + 1) : path;
    const segments = relative.split('/').filter(Boolean);
    const pathId = segments.find((s) => UUID.test(s));
    const outcome: AuditOutcome = status === 401 || status === 403 ? 'DENIED' : status >= 400 ? 'FAILURE' : 'SUCCESS';
    const details: Record<string, unknown> = {};
    const body = request.body as Record<string, unknown> | undefined;
    if (body && typeof body === 'object' && !Array.isArray(body)) {
      for (const field of SAFE_BODY_FIELDS) {
        const value = body[field];
        // a lone surrogate could not be stored in the entry's jsonb (the request itself was refused for it)
        if (typeof value === 'string' && value.length <= 100 && isWellFormedUnicode(value)) details[field] = value;
        else if (typeof value === 'boolean') details[field] = value;
        else if (Array.isArray(value) && field === 'roles')
          details[field] = value.filter((r) => typeof r === 'string' && r.length <= 100 && isWellFormedUnicode(r)).slice(0, 10);
      }
    }
    if (request.auditErrorCode) details.errorCode = request.auditErrorCode;
    return {
      actor: request.principal ? `apikey:${request.principal.name}` : 'anonymous',
      roles: request.principal?.roles ?? [],
      action: `${request.method} /${segments.map((s) => (UUID.test(s) ? ':id' : s)).join('/')}`,
      targetType: segments[0] ?? null,
      targetId: pathId ?? request.auditTargetId ?? null,
      outcome,
      httpStatus: status,
      requestId,
      details,
    };
  }
}
