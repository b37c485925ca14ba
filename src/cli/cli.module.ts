import { DynamicModule, Module } from '@nestjs/common';
import { EventEmitterModule } from '@nestjs/event-emitter';
import { ScheduleModule } from '@nestjs/schedule';
import { AuditCoreModule } from '../audit/audit.module';
import { BackupModule } from '../backup/backup.module';
import { AppConfig } from '../config/app-config';
import { ConfigModule } from '../config/config.module';
import { DatabaseModule } from '../database/database.module';
import { JobsModule } from '../jobs/jobs.module';
import { RecoveryModule } from '../recovery/recovery.module';
import { SecretsModule } from '../secrets/secrets.module';
import { StorageModule } from '../storage/storage.module';
import { ValidationModule } from '../validation/validation.module';
import { BackupCommand } from './backup.command';
import { ListCommand } from './list.command';
import { RestoreCommand } from './restore.command';
import { VerifyCommand } from './verify.command';
import { WalFetchCommand, WalPushCommand } from './wal.command';

/**
 * The `dr` CLI: the service's modules (without auth, health or HTTP) and the commands that call their services
 * in-process. The scheduler's cron jobs stay off (`DR_SCHEDULER_ENABLED=false`, an override of the entry point).
 */
@Module({
  imports: [
    SecretsModule,
    DatabaseModule,
    AuditCoreModule,
    ScheduleModule.forRoot(),
    EventEmitterModule.forRoot(),
    JobsModule,
    StorageModule,
    BackupModule,
    ValidationModule,
    RecoveryModule,
  ],
  providers: [BackupCommand, RestoreCommand, VerifyCommand, ListCommand, WalPushCommand, WalFetchCommand],
})
export class CliModule {
  /** The CLI with its one configuration, built by `cli.ts`. */
  static forRoot(config: AppConfig): DynamicModule {
    return { module: CliModule, imports: [ConfigModule.forRoot(config)] };
  }
}
