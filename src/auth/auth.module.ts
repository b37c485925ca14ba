import { Module } from '@nestjs/common';
import { APP_GUARD } from '@nestjs/core';
import { PassportModule } from '@nestjs/passport';
import { TypeOrmModule } from '@nestjs/typeorm';
import { AppConfig, ConfigurationError } from '../config/app-config';
import { SecretResolver } from '../secrets/secret-resolver';
import { ApiKeyEntity } from './api-key.entity';
import { ApiKeysController } from './api-keys.controller';
import { ApiKeysService } from './api-keys.service';
import { CredentialsGuard } from './credentials.guard';
import { JwtStrategy, MIN_HS256_SECRET_BYTES } from './jwt.strategy';

/**
 * Builds the JWT strategy when `DR_JWT_SECRET` or `DR_JWT_JWKS_URL` is set, null otherwise (API keys only).
 * The HS256 secret is resolved here, at boot, so a missing or short secret stops the start.
 * @throws ConfigurationError naming DR_JWT_SECRET (never its value).
 */
export async function jwtStrategyOf(config: AppConfig, secrets: SecretResolver): Promise<JwtStrategy | null> {
  if (!config.jwt) return null;
  let secret: string | undefined;
  if (config.jwt.secretRef) {
    try {
      secret = await secrets.resolveOperatorSecret(config.jwt.secretRef, 'DR_JWT_SECRET');
    } catch (error) {
      throw new ConfigurationError(`Invalid configuration:\n  ${(error as Error).message}`);
    }
    if (Buffer.byteLength(secret, 'utf8') < MIN_HS256_SECRET_BYTES) {
      throw new ConfigurationError(`Invalid configuration:\n  DR_JWT_SECRET: the secret must be at least ${MIN_HS256_SECRET_BYTES} bytes for HS256`);
    }
  }
  return new JwtStrategy(config.jwt, secret);
}

/** API keys, bearer JWTs and the one global role guard. */
@Module({
  imports: [TypeOrmModule.forFeature([ApiKeyEntity]), PassportModule],
  controllers: [ApiKeysController],
  providers: [
    ApiKeysService,
    { provide: JwtStrategy, inject: [AppConfig, SecretResolver], useFactory: jwtStrategyOf },
    { provide: APP_GUARD, useClass: CredentialsGuard },
  ],
  exports: [ApiKeysService],
})
export class AuthModule {}
