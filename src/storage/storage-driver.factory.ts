import { Injectable } from '@nestjs/common';
import { LocalStorageDriver } from './local.driver';
import { StorageDriver } from './storage-driver';
import { StorageLocationEntity } from './storage-location.entity';

/** Builds the driver for a storage location, keyed by the location's kind. */
@Injectable()
export class StorageDriverFactory {
  private readonly cache = new Map<string, StorageDriver>();

  /** The driver for `location`; drivers are cached per location id and settings. */
  forLocation(location: StorageLocationEntity): StorageDriver {
    const cacheKey = `${location.id}:${JSON.stringify(location.settings)}`;
    let driver = this.cache.get(cacheKey);
    if (!driver) {
      switch (location.kind) {
        case 'local':
          driver = new LocalStorageDriver(location.settings.path);
          break;
        default: {
          const unknownKind: never = location.kind;
          throw new Error(`unsupported storage kind: ${String(unknownKind)}`);
        }
      }
      this.cache.set(cacheKey, driver);
    }
    return driver;
  }
}
