import { Module } from '@nestjs/common';
import { ScheduleModule } from '@nestjs/schedule';
import { AuditModule } from './audit/audit.module';
import { AuthModule } from './auth/auth.module';
import { BackupModule } from './backup/backup.module';
import { ConfigModule } from './config/config.module';
import { DatabaseModule } from './database/database.module';
import { ErrorsModule } from './errors/errors.module';
import { HealthModule } from './health/health.module';
import { RecoveryModule } from './recovery/recovery.module';
import { SecretsModule } from './secrets/secrets.module';
import { StorageModule } from './storage/storage.module';

/** The service: configuration, metadata store, auth, storage, backup, recovery and health. */
@Module({
  imports: [
    ConfigModule,
    SecretsModule,
    DatabaseModule,
    ScheduleModule.forRoot(),
    AuthModule,
    StorageModule,
    BackupModule,
    RecoveryModule,
    HealthModule,
    AuditModule,
    ErrorsModule,
  ],
})
export class AppModule {}
