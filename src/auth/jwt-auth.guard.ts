import { ExecutionContext } from '@nestjs/common';
import { AuthGuard } from '@nestjs/passport';
import { DrError } from '../errors/dr-error';
import { JWT_STRATEGY } from './jwt.strategy';
import { Principal } from './principal';

/**
 * The reason a bearer token was refused, in words that never contain the token: jsonwebtoken's and jwks-rsa's
 * messages name the failed check (`invalid signature`, `jwt audience invalid. expected: ...`), not the token.
 */
function refusal(info: unknown): string {
  if (info instanceof Error) {
    if (info.name === 'TokenExpiredError') return 'bearer token expired';
    if (info.name === 'NotBeforeError') return 'bearer token not valid yet';
    if (info.message === 'secret or public key must be provided') return 'bearer token refused: no trusted key matches its algorithm and kid';
    return `bearer token refused: ${info.message.slice(0, 200)}`;
  }
  return 'bearer token refused';
}

/**
 * Runs the passport-jwt strategy for one request (used by the global guard, not registered as a guard itself).
 * Every failure becomes DrError UNAUTHENTICATED (401 in the one error shape).
 */
export class JwtAuthGuard extends AuthGuard(JWT_STRATEGY) {
  /** @returns the principal of a verified token. @throws DrError UNAUTHENTICATED */
  override handleRequest<TUser = Principal>(err: unknown, user: unknown, info: unknown, _context: ExecutionContext): TUser {
    if (err instanceof DrError) throw err;
    if (err) throw new DrError('UNAUTHENTICATED', refusal(err));
    if (!user) throw new DrError('UNAUTHENTICATED', refusal(info));
    return user as TUser;
  }
}
