import { CallHandler, ExecutionContext, Injectable, NestInterceptor } from '@nestjs/common';
import { Observable, tap } from 'rxjs';
import type { AuditedRequest } from './audit-request.middleware';

/**
 * Global interceptor that notes the `id` of what a mutating handler returned (a created backup, recovery, key,
 * ...) on the request, so {@link AuditRequestMiddleware} can name it as the entry's target.
 */
@Injectable()
export class AuditResponseInterceptor implements NestInterceptor {
  intercept(context: ExecutionContext, next: CallHandler): Observable<unknown> {
    if (context.getType() !== 'http') return next.handle();
    const request = context.switchToHttp().getRequest<AuditedRequest>();
    return next.handle().pipe(
      tap((body: unknown) => {
        const id = (body as { id?: unknown } | null)?.id;
        if (typeof id === 'string') request.auditTargetId = id;
      }),
    );
  }
}
