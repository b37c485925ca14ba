import { Module } from '@nestjs/common';
import { TypeOrmModule } from '@nestjs/typeorm';
import { StorageDriverFactory } from './storage-driver.factory';
import { StorageLocationEntity } from './storage-location.entity';
import { StorageLocationsController } from './storage-locations.controller';
import { StorageLocationsService } from './storage-locations.service';

/** Storage locations and their drivers. */
@Module({
  imports: [TypeOrmModule.forFeature([StorageLocationEntity])],
  controllers: [StorageLocationsController],
  providers: [StorageDriverFactory, StorageLocationsService],
  exports: [StorageLocationsService],
})
export class StorageModule {}
