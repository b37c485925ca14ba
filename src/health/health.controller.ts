import { Controller, Get } from '@nestjs/common';
import { HealthCheck, HealthCheckService, TypeOrmHealthIndicator } from '@nestjs/terminus';
import { Public } from '../auth/roles.decorator';
import { StorageHealthIndicator } from './storage.health';

/**
 * Actuator-style probes for Kubernetes: liveness answers while the process serves HTTP (no dependency checks,
 * so a database outage never restarts the pod); readiness and health check the metadata store and default storage.
 */
@Controller('actuator/health')
@Public()
export class HealthController {
  constructor(
    private readonly health: HealthCheckService,
    private readonly database: TypeOrmHealthIndicator,
    private readonly storage: StorageHealthIndicator,
  ) {}

  @Get()
  @HealthCheck()
  check() {
    return this.readiness();
  }

  @Get('liveness')
  @HealthCheck()
  liveness() {
    return this.health.check([]);
  }

  @Get('readiness')
  @HealthCheck()
  readiness() {
    return this.health.check([() => this.database.pingCheck('database', { timeout: 3000 }), () => this.storage.check('storage')]);
  }
}
