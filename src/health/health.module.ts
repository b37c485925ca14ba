import { Module } from '@nestjs/common';
import { TerminusModule } from '@nestjs/terminus';
import { StorageModule } from '../storage/storage.module';
import { HealthController } from './health.controller';
import { StorageHealthIndicator } from './storage.health';

/** Terminus health probes at `/actuator/health`. */
@Module({
  imports: [TerminusModule.forRoot({ errorLogStyle: 'pretty' }), StorageModule],
  controllers: [HealthController],
  providers: [StorageHealthIndicator],
})
export class HealthModule {}
