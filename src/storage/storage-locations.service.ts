import { mkdir } from 'node:fs/promises';
import { join } from 'node:path';
import { Injectable, Logger, OnApplicationBootstrap } from '@nestjs/common';
import { InjectRepository } from '@nestjs/typeorm';
import { Repository } from 'typeorm';
import { AppConfig } from '../config/app-config';
import { DrError } from '../errors/dr-error';
import { validateNested } from '../errors/validation';
import { checkEncryptionSettings, EncryptionSettings } from '../pipeline/backup-encryption';
import { StorageCapabilities, StorageDriver } from './drivers/storage-driver';
import { StorageDriverFactory } from './storage-driver.factory';
import { StorageKind, StorageLocationEntity } from './storage-location.entity';

export const DEFAULT_LOCATION_NAME = 'default';

/** Storage location records, the default local location, and the driver of each location. */
@Injectable()
export class StorageLocationsService implements OnApplicationBootstrap {
  private readonly logger = new Logger(StorageLocationsService.name);

  constructor(
    @InjectRepository(StorageLocationEntity) private readonly locations: Repository<StorageLocationEntity>,
    private readonly drivers: StorageDriverFactory,
    private readonly config: AppConfig,
  ) {}

  /** Creates the default local location under `DR_DATA_DIR/backups` on first start. */
  async onApplicationBootstrap(): Promise<void> {
    const path = join(this.config.dataDir, 'backups');
    await this.locations
      .createQueryBuilder()
      .insert()
      .values({ name: DEFAULT_LOCATION_NAME, kind: 'local', settings: { path }, isDefault: true })
      .orIgnore()
      .execute();
    await mkdir(path, { recursive: true, mode: 0o750 }).catch((error: Error) =>
      this.logger.warn(`cannot create default storage directory ${path}: ${error.message}`),
    );
  }

  async list(): Promise<StorageLocationEntity[]> {
    return this.locations.find({ order: { createdAt: 'ASC' } });
  }

  /** @throws DrError NOT_FOUND */
  async get(id: string): Promise<StorageLocationEntity> {
    const location = await this.locations.findOneBy({ id });
    if (!location) throw DrError.notFound('storage location', id);
    return location;
  }

  async getDefault(): Promise<StorageLocationEntity> {
    const location = await this.locations.findOneBy({ isDefault: true });
    if (!location) throw new Error('no default storage location');
    return location;
  }

  /** Resolves an optional id to a location: the default when omitted. @throws DrError VALIDATION_FAILED */
  async resolve(id: string | undefined, field = 'storageLocationId'): Promise<StorageLocationEntity> {
    if (!id) return this.getDefault();
    const location = await this.locations.findOneBy({ id });
    if (!location) throw DrError.validation([{ field, message: `storage location ${id} does not exist` }]);
    return location;
  }

  /**
   * Records a location after validating its settings against its kind's settings class (secrets only as
   * references) and its encryption settings. An unreachable store is accepted (it may come up later) and logged.
   * @throws DrError CONFLICT on a duplicate name, VALIDATION_FAILED on bad settings (naming `settings.<field>`)
   */
  async create(name: string, kind: StorageKind, rawSettings: Record<string, unknown>, encryption?: EncryptionSettings | null): Promise<StorageLocationEntity> {
    const definition = this.drivers.definition(kind);
    const settings = await validateNested(definition.settingsClass, rawSettings, 'settings');
    if (encryption) checkEncryptionSettings(encryption, 'encryption');
    if (await this.locations.existsBy({ name })) {
      throw new DrError('CONFLICT', `a storage location named "${name}" exists`, [{ field: 'name', message: 'already used' }]);
    }
    const location = this.locations.create({ name, kind, settings: { ...settings }, encryption: encryption ? { ...encryption } : null, isDefault: false });
    const saved = await this.locations.save(location);
    await this.driverFor(saved)
      .checkHealth()
      .catch((error: Error) => {
        this.logger.warn(`storage location ${name} is not reachable or writable yet: ${error.message}`);
      });
    return saved;
  }

  /** Whether location `id` exists. */
  async exists(id: string): Promise<boolean> {
    return this.locations.existsBy({ id });
  }

  /** What the store of location `id` can do (immutability). @throws DrError NOT_FOUND */
  async capabilitiesOf(id: string): Promise<StorageCapabilities> {
    return this.driverFor(await this.get(id)).capabilities;
  }

  driverFor(location: StorageLocationEntity): StorageDriver {
    return this.drivers.forLocation(location);
  }
}
