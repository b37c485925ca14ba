import { Module } from '@nestjs/common';
import { TypeOrmModule } from '@nestjs/typeorm';
import { VerificationEntity } from './verification.entity';
import { VerificationRecords } from './verification-records';

/**
 * The `verifications` table and the read other modules may make of it ({@link VerificationRecords}). Imports no
 * feature module, so Backup (retention) can read it while the Validation module builds on Backup.
 */
@Module({
  imports: [TypeOrmModule.forFeature([VerificationEntity])],
  providers: [VerificationRecords],
  exports: [TypeOrmModule, VerificationRecords],
})
export class VerificationRecordsModule {}
