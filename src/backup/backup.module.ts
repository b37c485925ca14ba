import { Module } from '@nestjs/common';
import { TypeOrmModule } from '@nestjs/typeorm';
import { EnginesModule } from '../engines/engines.module';
import { PipelineModule } from '../pipeline/pipeline.module';
import { StorageModule } from '../storage/storage.module';
import { WalModule } from '../wal/wal.module';
import { BackupPlanEntity } from './backup-plan.entity';
import { BackupPlansController } from './backup-plans.controller';
import { BackupPlansService } from './backup-plans.service';
import { BackupRunner } from './backup-runner.service';
import { BackupScheduler } from './backup-scheduler';
import { BackupEntity } from './backup.entity';
import { BackupCopier } from './backup-copier.service';
import { BackupCopyEntity } from './backup-copy.entity';
import { BackupObjects } from './backup-objects';
import { BackupChains } from './backup-chain';
import { BackupLeftovers } from './backup-leftovers.service';
import { BackupsController } from './backups.controller';
import { RetentionService } from './retention.service';
import { BackupsService } from './backups.service';
import { ScheduleClaimEntity } from './schedule-claim.entity';
import { ScheduledBackupsService } from './scheduled-backups.service';
import { VerificationRecordsModule } from '../validation/verification-records.module';

/** Backups and backup plans: records, orchestration, schedules. */
@Module({
  imports: [
    TypeOrmModule.forFeature([BackupEntity, BackupPlanEntity, ScheduleClaimEntity, BackupCopyEntity]),
    VerificationRecordsModule,
    EnginesModule,
    PipelineModule,
    StorageModule,
    WalModule,
  ],
  controllers: [BackupsController, BackupPlansController],
  providers: [
    BackupsService,
    BackupPlansService,
    BackupRunner,
    BackupObjects,
    BackupChains,
    BackupLeftovers,
    BackupCopier,
    RetentionService,
    ScheduledBackupsService,
    BackupScheduler,
  ],
  exports: [BackupsService, BackupObjects, BackupChains],
})
export class BackupModule {}
