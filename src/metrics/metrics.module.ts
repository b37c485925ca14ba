import { Module } from '@nestjs/common';
import { BackupRecordsModule } from '../backup/backup-records.module';
import { JobMetricsListener } from './job-metrics.listener';
import { MetricsController } from './metrics.controller';
import { MetricsService } from './metrics.service';
import { StoreGauges } from './store-gauges';
import { WalGauges } from './wal-gauges';
import { WalModule } from '../wal/wal.module';

/**
 * Prometheus metrics at `/actuator/prometheus`: job counters and durations of this process (from the domain
 * events `backup.*`, `recovery.*`, `verification.*`), plan backup ages from the metadata store, WAL archive gauges,
 * and prom-client's default process metrics.
 */
@Module({
  imports: [BackupRecordsModule, WalModule],
  controllers: [MetricsController],
  providers: [MetricsService, StoreGauges, JobMetricsListener, WalGauges],
  exports: [MetricsService],
})
export class MetricsModule {}
