import { Injectable } from '@nestjs/common';
import { HealthIndicatorService } from '@nestjs/terminus';
import { StorageLocationsService } from '../storage/storage-locations.service';

const TIMEOUT_MS = 5000;

/** Health of the default storage location: a small object is written and published within 5 s. */
@Injectable()
export class StorageHealthIndicator {
  constructor(
    private readonly health: HealthIndicatorService,
    private readonly locations: StorageLocationsService,
  ) {}

  async check(key = 'storage') {
    const indicator = this.health.check(key);
    try {
      const location = await this.locations.getDefault();
      await withTimeout(this.locations.driverFor(location).checkHealth(), TIMEOUT_MS);
      return indicator.up({ location: location.name });
    } catch (error) {
      return indicator.down({ message: (error as Error).message });
    }
  }
}

function withTimeout<T>(promise: Promise<T>, ms: number): Promise<T> {
  let timer: NodeJS.Timeout;
  return Promise.race([
    promise,
    new Promise<T>((_, reject) => {
      timer = setTimeout(() => reject(new Error(`timed out after ${ms} ms`)), ms);
    }),
  ]).finally(() => clearTimeout(timer));
}
