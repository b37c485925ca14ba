import { Injectable } from '@nestjs/common';
import { IsString, Matches } from 'class-validator';
import { DrError } from '../errors/dr-error';
import { SecretResolver } from '../secrets/secret-resolver';
import { AzureBlobStorageSettings } from './drivers/azure-blob.settings';
import { GcsStorageSettings } from './drivers/gcs.settings';
import { LocalStorageDriver } from './drivers/local.driver';
import { S3StorageSettings } from './drivers/s3-storage-settings';
import { StorageDriver } from './drivers/storage-driver';
import { StorageKind, StorageLocationEntity } from './storage-location.entity';

/** Settings of a `local` location (a local disk or an NFS mount). */
export class LocalStorageSettings {
  /** Absolute directory under which objects are kept. */
  @IsString()
  @Matches(/^\//, { message: 'path must be an absolute path' })
  path: string;
}

/** How to build the driver of one kind of location: the class its settings are validated against, and the driver. */
export interface StorageKindDefinition<Settings extends object = object> {
  settingsClass: new () => Settings;
  create(settings: Settings, secrets: SecretResolver): StorageDriver;
}

/** Erases a definition's settings type, so definitions of every kind fit one table. */
function defineKind<Settings extends object>(definition: StorageKindDefinition<Settings>): StorageKindDefinition<object> {
  return definition;
}

/** Every kind of storage location, keyed by kind (twenty's file-storage driver factory is the model). */
export const STORAGE_KIND_DEFINITIONS: Record<StorageKind, StorageKindDefinition<object>> = {
  local: defineKind({ settingsClass: LocalStorageSettings, create: (s) => new LocalStorageDriver(s.path) }),
  // The cloud drivers are loaded when a location of their kind is first used: each SDK costs about 20 MB of memory.
  s3: defineKind({
    settingsClass: S3StorageSettings,
    create: (s, secrets) => new (require('./drivers/s3.driver') as typeof import('./drivers/s3.driver')).S3StorageDriver(s, secrets),
  }),
  'azure-blob': defineKind({
    settingsClass: AzureBlobStorageSettings,
    create: (s, secrets) => new (require('./drivers/azure-blob.driver') as typeof import('./drivers/azure-blob.driver')).AzureBlobStorageDriver(s, secrets),
  }),
  gcs: defineKind({
    settingsClass: GcsStorageSettings,
    create: (s, secrets) => new (require('./drivers/gcs.driver') as typeof import('./drivers/gcs.driver')).GcsStorageDriver(s, secrets),
  }),
};

/** Builds the driver for a storage location, keyed by the location's kind; drivers are cached per location and settings. */
@Injectable()
export class StorageDriverFactory {
  private readonly cache = new Map<string, StorageDriver>();

  constructor(private readonly secrets: SecretResolver) {}

  /** The definition of `kind`. @throws DrError VALIDATION_FAILED (field `kind`) for a kind without a driver */
  definition(kind: StorageKind): StorageKindDefinition<object> {
    const definition = STORAGE_KIND_DEFINITIONS[kind];
    if (!definition) throw DrError.validation([{ field: 'kind', message: `no driver for storage kind ${kind}` }]);
    return definition;
  }

  forLocation(location: StorageLocationEntity): StorageDriver {
    const cacheKey = `${location.id}:${JSON.stringify(location.settings)}`;
    let driver = this.cache.get(cacheKey);
    if (!driver) {
      const definition = this.definition(location.kind);
      driver = definition.create(Object.assign(new definition.settingsClass(), location.settings), this.secrets);
      this.cache.set(cacheKey, driver);
    }
    return driver;
  }
}
