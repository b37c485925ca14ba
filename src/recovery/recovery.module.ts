import { Module } from '@nestjs/common';
import { TypeOrmModule } from '@nestjs/typeorm';
import { BackupModule } from '../backup/backup.module';
import { EnginesModule } from '../engines/engines.module';
import { PipelineModule } from '../pipeline/pipeline.module';
import { StorageModule } from '../storage/storage.module';
import { WalModule } from '../wal/wal.module';
import { ExternalRecoveryController } from './external-recovery.controller';
import { ExternalRecoveryService } from './external-recovery.service';
import { PointInTimeRecovery } from './point-in-time-recovery.service';
import { RecoveryController } from './recovery.controller';
import { RecoveryApprovals } from './recovery-approvals.service';
import { RecoveryRunner } from './recovery-runner.service';
import { RecoveryEntity } from './recovery.entity';
import { RecoveryService } from './recovery.service';
import { TargetReservations } from './target-reservations';

/** Recoveries: restores of backups into targets, point-in-time recovery included. Reads Backup's records; Backup never depends on it. */
@Module({
  imports: [TypeOrmModule.forFeature([RecoveryEntity]), BackupModule, EnginesModule, PipelineModule, StorageModule, WalModule],
  controllers: [RecoveryController, ExternalRecoveryController],
  providers: [RecoveryService, RecoveryRunner, PointInTimeRecovery, RecoveryApprovals, ExternalRecoveryService, TargetReservations],
  exports: [RecoveryService],
})
export class RecoveryModule {}
