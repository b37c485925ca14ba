import { DynamicModule, Module } from '@nestjs/common';
import { EventEmitterModule } from '@nestjs/event-emitter';
import { ScheduleModule } from '@nestjs/schedule';
import { AuditModule } from './audit/audit.module';
import { AuthModule } from './auth/auth.module';
import { BackupModule } from './backup/backup.module';
import { AppConfig } from './config/app-config';
import { ConfigModule } from './config/config.module';
import { DatabaseModule } from './database/database.module';
import { ErrorsModule } from './errors/errors.module';
import { HealthModule } from './health/health.module';
import { JobsModule } from './jobs/jobs.module';
import { LoggingModule } from './logging/logging.module';
import { MetricsModule } from './metrics/metrics.module';
import { RateLimitModule } from './hardening/rate-limit.module';
import { RecoveryModule } from './recovery/recovery.module';
import { SecretsModule } from './secrets/secrets.module';
import { StorageModule } from './storage/storage.module';
import { ValidationModule } from './validation/validation.module';
import { WalModule } from './wal/wal.module';

/** The service: configuration, logging, metadata store, auth, storage, backup, validation, recovery, WAL archives, health and metrics. */
@Module({
  imports: [
    LoggingModule,
    RateLimitModule, // before AuthModule: its guard runs first, so unauthenticated requests are limited too
    SecretsModule,
    DatabaseModule,
    ScheduleModule.forRoot(),
    EventEmitterModule.forRoot(), // domain events: docs/architecture.md
    JobsModule,
    AuthModule,
    StorageModule,
    BackupModule,
    ValidationModule,
    RecoveryModule,
    WalModule,
    HealthModule,
    MetricsModule,
    AuditModule,
    ErrorsModule,
  ],
})
export class AppModule {
  /** The application with its one configuration, built by the caller ({@link AppConfig.fromEnv}). */
  static forRoot(config: AppConfig): DynamicModule {
    return { module: AppModule, imports: [ConfigModule.forRoot(config)] };
  }
}
