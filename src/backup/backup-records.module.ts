import { Module } from '@nestjs/common';
import { TypeOrmModule } from '@nestjs/typeorm';
import { BackupPlanEntity } from './backup-plan.entity';
import { BackupEntity } from './backup.entity';
import { BackupPlanRepository, BackupRepository } from './backup.repository';

/**
 * The reads other modules make of Backup's tables ({@link BackupRepository}, {@link BackupPlanRepository}).
 * Imports no feature module, so WAL archives and metrics can read them while Backup builds on WAL.
 */
@Module({
  imports: [TypeOrmModule.forFeature([BackupEntity, BackupPlanEntity])],
  providers: [BackupRepository, BackupPlanRepository],
  exports: [BackupRepository, BackupPlanRepository],
})
export class BackupRecordsModule {}
