import { Module } from '@nestjs/common';
import { BackupModule } from '../backup/backup.module';
import { EnginesModule } from '../engines/engines.module';
import { PipelineModule } from '../pipeline/pipeline.module';
import { StorageModule } from '../storage/storage.module';
import { VerificationRecordsModule } from './verification-records.module';
import { VerificationRunner } from './verification-runner.service';
import { BackupVerificationsController, VerificationsController } from './verifications.controller';
import { VerificationsService } from './verifications.service';

/**
 * Validation: proves that backups can be restored. Owns verification runs (checksum and scratch-restore checks of
 * a backup or of one of its copies); post-recovery checks and scheduled restore tests will live here too. Builds
 * on Backup (its records, objects and chains); Backup reads only {@link VerificationRecordsModule}.
 */
@Module({
  imports: [VerificationRecordsModule, BackupModule, EnginesModule, PipelineModule, StorageModule],
  controllers: [BackupVerificationsController, VerificationsController],
  providers: [VerificationsService, VerificationRunner],
  exports: [VerificationsService],
})
export class ValidationModule {}
