import { Module } from '@nestjs/common';
import { TypeOrmModule } from '@nestjs/typeorm';
import { BackupRecordsModule } from '../backup/backup-records.module';
import { EnginesModule } from '../engines/engines.module';
import { SecretsModule } from '../secrets/secrets.module';
import { StorageModule } from '../storage/storage.module';
import { WalArchiveEntity } from './wal-archive.entity';
import { WalArchivesController } from './wal-archives.controller';
import { WalArchivesService } from './wal-archives.service';

/** WAL archives (PostgreSQL continuous archiving). Reads backup records; Backup and Recovery call into it, never the reverse. */
@Module({
  imports: [TypeOrmModule.forFeature([WalArchiveEntity]), BackupRecordsModule, EnginesModule, StorageModule, SecretsModule],
  controllers: [WalArchivesController],
  providers: [WalArchivesService],
  exports: [WalArchivesService],
})
export class WalModule {}
