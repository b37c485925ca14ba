import { Module } from '@nestjs/common';
import { APP_GUARD } from '@nestjs/core';
import { ThrottlerModule } from '@nestjs/throttler';
import { AppConfig } from '../config/app-config';
import { RateLimitGuard } from './rate-limit.guard';

/**
 * Rate limiting of the API: `DR_RATE_LIMIT_PER_MINUTE` requests per client address per minute (in memory, per
 * process; 0 turns it off). Imported before AuthModule so that its global guard runs first and unauthenticated
 * requests (key guessing) are counted too.
 */
@Module({
  imports: [
    ThrottlerModule.forRootAsync({
      inject: [AppConfig],
      useFactory: (config: AppConfig) => ({
        throttlers: [{ name: 'default', ttl: 60_000, limit: config.rateLimitPerMinute }],
        skipIf: () => config.rateLimitPerMinute === 0,
      }),
    }),
  ],
  providers: [{ provide: APP_GUARD, useClass: RateLimitGuard }],
})
export class RateLimitModule {}
