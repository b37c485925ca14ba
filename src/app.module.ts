import { Module } from '@nestjs/common';
import { APP_FILTER } from '@nestjs/core';
import { ScheduleModule } from '@nestjs/schedule';
import { AuthModule } from './auth/auth.module';
import { BackupModule } from './backup/backup.module';
import { ConfigModule } from './config/config.module';
import { DatabaseModule } from './database/database.module';
import { HttpExceptionFilter } from './errors/http-exception.filter';
import { HealthModule } from './health/health.module';
import { LoggingModule } from './logging/logging.module';
import { MetricsModule } from './metrics/metrics.module';
import { RecoveryModule } from './recovery/recovery.module';
import { SecretsModule } from './secrets/secrets.module';
import { StorageModule } from './storage/storage.module';

/** The service: configuration, logging, metadata store, auth, storage, backup, recovery, health and metrics. */
@Module({
  imports: [
    ConfigModule,
    LoggingModule,
    SecretsModule,
    DatabaseModule,
    ScheduleModule.forRoot(),
    AuthModule,
    StorageModule,
    BackupModule,
    RecoveryModule,
    HealthModule,
    MetricsModule,
  ],
  providers: [{ provide: APP_FILTER, useClass: HttpExceptionFilter }],
})
export class AppModule {}
