import { Injectable } from '@nestjs/common';
import { PassportStrategy } from '@nestjs/passport';
import { passportJwtSecret } from 'jwks-rsa';
import { ExtractJwt, Strategy, StrategyOptionsWithoutRequest } from 'passport-jwt';
import { JwtSettings } from '../config/app-config';
import { DrError } from '../errors/dr-error';
import { Principal } from './principal';
import { ALL_ROLES, Role } from './role';

/** The passport strategy name of bearer JWTs. */
export const JWT_STRATEGY = 'jwt';

/** Shortest HS256 secret accepted: 256 bits, the hash's size (RFC 7518 §3.2). */
export const MIN_HS256_SECRET_BYTES = 32;

/**
 * The value at `path` in a JWT payload: the claim named `path` itself when there is one (namespaced claims such as
 * `https://example.com/roles` contain dots), otherwise the dotted path walked through nested objects
 * (`realm_access.roles`). @returns undefined when absent.
 */
export function claimAt(payload: Record<string, unknown>, path: string): unknown {
  if (Object.prototype.hasOwnProperty.call(payload, path)) return payload[path];
  let value: unknown = payload;
  for (const part of path.split('.')) {
    if (value === null || typeof value !== 'object' || !Object.prototype.hasOwnProperty.call(value, part)) return undefined;
    value = (value as Record<string, unknown>)[part];
  }
  return value;
}

/**
 * The service's roles named by a roles claim: an array of strings, or one string of roles separated by spaces or
 * commas. Names are compared case-insensitively (`recovery_admin` is RECOVERY_ADMIN); unknown names are ignored.
 */
export function rolesOf(claim: unknown): Role[] {
  const names = Array.isArray(claim) ? claim : typeof claim === 'string' ? claim.split(/[\s,]+/) : [];
  const known = new Set<Role>();
  for (const name of names) {
    if (typeof name !== 'string') continue;
    const upper = name.toUpperCase();
    const role = ALL_ROLES.find((r) => r.valueOf() === upper);
    if (role) known.add(role);
  }
  return [...known];
}

/**
 * Verifies `Authorization: Bearer` JWTs with passport-jwt (signature, `exp`/`nbf`, and `iss`/`aud` when configured)
 * and turns the payload into a {@link Principal}. Keys: the HS256 shared secret, or the RS256/ES256 public keys of a
 * JWKS fetched and cached by jwks-rsa (keys picked by the token's `kid`; at most 10 fetches a minute). Only the
 * algorithms of the configured key source are accepted (never `none`, never HS256 against JWKS keys).
 * Built only when JWTs are configured (see `AuthModule`).
 */
@Injectable()
export class JwtStrategy extends PassportStrategy(Strategy, JWT_STRATEGY) {
  private readonly rolesClaim: string;

  /**
   * @param secret the resolved HS256 secret (when `settings.secretRef` is set).
   * @throws Error when neither a secret nor a JWKS URL is given.
   */
  constructor(settings: JwtSettings, secret?: string) {
    const keySource = settings.jwksUrl
      ? {
          secretOrKeyProvider: passportJwtSecret({
            jwksUri: settings.jwksUrl,
            cache: true,
            cacheMaxAge: 10 * 60_000,
            rateLimit: true,
            jwksRequestsPerMinute: 10,
            timeout: 5_000,
          }),
        }
      : { secretOrKey: secret };
    if (!settings.jwksUrl && !secret) throw new Error('JWT verification needs DR_JWT_SECRET or DR_JWT_JWKS_URL');
    const options: StrategyOptionsWithoutRequest = {
      jwtFromRequest: ExtractJwt.fromAuthHeaderAsBearerToken(),
      algorithms: settings.algorithms,
      issuer: settings.issuer,
      audience: settings.audience,
      ignoreExpiration: false,
      ...keySource,
    } as StrategyOptionsWithoutRequest;
    super(options);
    this.rolesClaim = settings.rolesClaim;
  }

  /**
   * Called by passport with a verified payload.
   * @throws DrError UNAUTHENTICATED when the token names no subject (`sub` or `preferred_username`).
   */
  validate(payload: Record<string, unknown>): Principal {
    const subject = [payload.sub, payload.preferred_username].find((v): v is string => typeof v === 'string' && v.length > 0);
    if (!subject) throw new DrError('UNAUTHENTICATED', 'bearer token has no sub or preferred_username claim');
    return { kind: 'jwt', id: subject, name: subject, roles: rolesOf(claimAt(payload, this.rolesClaim)) };
  }
}
