import { ExecutionContext, Injectable } from '@nestjs/common';
import { ThrottlerGuard, ThrottlerLimitDetail } from '@nestjs/throttler';
import type { Request } from 'express';
import { DrError } from '../errors/dr-error';

/**
 * `@nestjs/throttler`'s guard, per client address, with the API's error shape: over the limit a request gets 429
 * `RATE_LIMITED` (and the throttler's `Retry-After` header). Health probes (`/actuator/...`) are never limited,
 * so a busy client cannot make Kubernetes restart the pod.
 */
@Injectable()
export class RateLimitGuard extends ThrottlerGuard {
  protected override async shouldSkip(context: ExecutionContext): Promise<boolean> {
    const request = context.switchToHttp().getRequest<Request>();
    return request.path.startsWith('/actuator/') || request.path === '/actuator';
  }

  protected override async throwThrottlingException(_context: ExecutionContext, detail: ThrottlerLimitDetail): Promise<void> {
    throw new DrError('RATE_LIMITED', `too many requests: at most ${detail.limit} per minute; retry in ${detail.timeToBlockExpire} s`);
  }
}
