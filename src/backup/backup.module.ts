import { Module } from '@nestjs/common';
import { TypeOrmModule } from '@nestjs/typeorm';
import { EnginesModule } from '../engines/engines.module';
import { PipelineModule } from '../pipeline/pipeline.module';
import { StorageModule } from '../storage/storage.module';
import { BackupPlanEntity } from './backup-plan.entity';
import { BackupPlansController } from './backup-plans.controller';
import { BackupPlansService } from './backup-plans.service';
import { BackupRunner } from './backup-runner.service';
import { BackupScheduler } from './backup-scheduler';
import { BackupEntity } from './backup.entity';
import { BackupsController } from './backups.controller';
import { BackupsService } from './backups.service';
import { ScheduleClaimEntity } from './schedule-claim.entity';
import { ScheduledBackupsService } from './scheduled-backups.service';
import { VerificationEntity } from './verification.entity';

/** Backups and backup plans: records, orchestration, schedules. */
@Module({
  imports: [
    TypeOrmModule.forFeature([BackupEntity, BackupPlanEntity, ScheduleClaimEntity, VerificationEntity]),
    EnginesModule,
    PipelineModule,
    StorageModule,
  ],
  controllers: [BackupsController, BackupPlansController],
  providers: [BackupsService, BackupPlansService, BackupRunner, ScheduledBackupsService, BackupScheduler],
  exports: [BackupsService],
})
export class BackupModule {}
