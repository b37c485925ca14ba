import { readFile } from 'node:fs/promises';
import { isAbsolute } from 'node:path';
import type { AgeDecryptionKeys, AgeEncryptionKey } from '../pipeline/age-encryption';
import type { SecretResolver } from '../secrets/secret-resolver';
import { SECRET_REF_PATTERN, SecretReferencePolicy } from '../secrets/secret-reference';
import type { SecretSource } from '../secrets/secret-source';
import type { StorageDriver } from '../storage/drivers/storage-driver';
import type { StorageKind } from '../storage/storage-location.entity';
import type { WalArchiveStore } from './wal-archive-store';
import { WalConfigError } from './wal-errors';

// wal-push / wal-fetch start once per WAL file: this module loads neither Nest, class-validator, TypeORM nor the
// cloud SDKs unless the config needs them (measured: 0.73 s of module loading otherwise, on top of Node's 0.19 s).

/** The storage kinds (as STORAGE_KINDS of storage-location.entity, without loading TypeORM). */
const KINDS: StorageKind[] = ['local', 's3', 'azure-blob', 'gcs'];

/**
 * Resolves the references of a WAL client config under the same allow-list as the service
 * ({@link SecretReferencePolicy}), read from this process's environment: `DR_SECRET_ENV_PREFIX` (default `DRS_`)
 * and `DR_SECRET_DIRS` (default `DR_DATA_DIR/secrets`); `DR_*` variables and the service's own key files never. A
 * config is data a request made (`GET /wal-archives/{id}/client-config`), so it cannot name the archiver's other
 * secrets (`PGPASSWORD`, cloud credentials of the database host...).
 * @throws WalConfigError naming the field (never a value) when the allow-list refuses a reference; Error when an
 *   allowed one cannot be read (a variable not set, a file not readable).
 */
export class CliSecretSource implements SecretSource {
  private policy?: SecretReferencePolicy;

  constructor(
    private readonly env: NodeJS.ProcessEnv = process.env,
    private readonly cwd = process.cwd(),
  ) {}

  async resolve(ref: string, field: string): Promise<string> {
    try {
      // built at the first reference: a config without secrets does not depend on DR_SECRET_* being valid
      this.policy ??= SecretReferencePolicy.fromEnv(this.env, this.cwd);
    } catch (error) {
      throw new WalConfigError((error as Error).message);
    }
    try {
      return await this.policy.resolve(ref, field);
    } catch (error) {
      // the CLI prints messages: the field problem says what was refused and why
      const drError = error as { code?: string; details?: { message: string }[] };
      const text = drError.details?.[0]?.message ? `${field}: ${drError.details[0].message}` : (error as Error).message;
      throw drError.code === 'VALIDATION_FAILED' ? new WalConfigError(text) : new Error(text);
    }
  }
}

/** Archive names: also a storage prefix (`wal/<archive>/`). */
export const WAL_ARCHIVE_NAME_PATTERN = /^[A-Za-z0-9][A-Za-z0-9._-]{0,99}$/;

/**
 * The JSON file `dr wal-push` / `dr wal-fetch` read (`--config <file>` or `DR_WAL_CONFIG`), as
 * `GET /wal-archives/{id}/client-config` returns it. Secrets appear only as references (`env:NAME`, `file:/path`).
 * ```json
 * {"archive":"main","storage":{"kind":"local","settings":{"path":"/srv/dr"}},
 *  "encryption":{"recipients":["age1..."]},"identitySecret":"file:/etc/dr/wal-identity.txt","zstdLevel":3}
 * ```
 */
export interface WalClientConfig {
  /** Archive name: objects under `wal/<archive>/`. */
  archive: string;
  /** The storage location's kind and settings, as in `POST /storage-locations`. */
  storage: { kind: StorageKind; settings: Record<string, unknown> };
  /** Encrypt pushed files (age): recipients (public keys), or a passphrase secret reference. Absent: not encrypted. */
  encryption?: { recipients?: string[]; passphraseSecret?: string } | null;
  /** Secret reference to the age identities (`AGE-SECRET-KEY-1...` lines) that decrypt on fetch. */
  identitySecret?: string | null;
  /** zstd level, -7..19 (default 3). */
  zstdLevel?: number;
}

export { WalConfigError };

/**
 * Reads and checks a client config file.
 * @throws WalConfigError naming the file and the bad field.
 */
export async function loadWalClientConfig(path: string): Promise<WalClientConfig> {
  let parsed: unknown;
  try {
    parsed = JSON.parse(await readFile(path, 'utf8'));
  } catch (error) {
    throw new WalConfigError(`cannot read the WAL archive config ${path}: ${(error as Error).message}`);
  }
  const problems = await walClientConfigProblems(parsed);
  if (problems.length) throw new WalConfigError(`WAL archive config ${path} is not valid: ${problems.join('; ')}`);
  return parsed as WalClientConfig;
}

/** Every problem of a parsed config, each naming its field; empty when valid. */
export async function walClientConfigProblems(value: unknown): Promise<string[]> {
  if (!value || typeof value !== 'object' || Array.isArray(value)) return ['the config must be a JSON object'];
  const c = value as Record<string, unknown>;
  const problems: string[] = [];
  if (typeof c.archive !== 'string' || !WAL_ARCHIVE_NAME_PATTERN.test(c.archive)) problems.push('archive: letters, digits, . _ - (1-100)');
  const storage = c.storage as Record<string, unknown> | undefined;
  if (!storage || typeof storage !== 'object' || !KINDS.includes(storage.kind as StorageKind)) {
    problems.push(`storage.kind: one of ${KINDS.join(', ')}`);
  } else if (!storage.settings || typeof storage.settings !== 'object') {
    problems.push('storage.settings: an object');
  } else if (storage.kind === 'local') {
    const path = (storage.settings as { path?: unknown }).path;
    if (typeof path !== 'string' || !isAbsolute(path)) problems.push('storage.settings.path: an absolute path');
  } else {
    // Cloud kinds: their settings classes (class-validator), loaded only for them.
    require('reflect-metadata');
    const { plainToInstance } = require('class-transformer') as typeof import('class-transformer');
    const { validate } = require('class-validator') as typeof import('class-validator');
    const { STORAGE_KIND_DEFINITIONS } = require('../storage/storage-driver.factory') as typeof import('../storage/storage-driver.factory');
    const definition = STORAGE_KIND_DEFINITIONS[storage.kind as StorageKind];
    const errors = await validate(plainToInstance(definition.settingsClass, storage.settings));
    for (const e of errors) problems.push(`storage.settings.${e.property}: ${Object.values(e.constraints ?? {}).join(', ') || 'invalid'}`);
  }
  const encryption = c.encryption as Record<string, unknown> | null | undefined;
  if (encryption !== undefined && encryption !== null) {
    const recipients = encryption.recipients;
    const passphrase = encryption.passphraseSecret;
    if ((recipients === undefined) === (passphrase === undefined)) problems.push('encryption: exactly one of recipients or passphraseSecret');
    if (recipients !== undefined && (!Array.isArray(recipients) || !recipients.every((r) => typeof r === 'string' && r.startsWith('age1')))) {
      problems.push('encryption.recipients: age X25519 recipients (age1...)');
    }
    if (passphrase !== undefined && (typeof passphrase !== 'string' || !SECRET_REF_PATTERN.test(passphrase))) {
      problems.push('encryption.passphraseSecret: env:NAME or file:/absolute/path');
    }
  }
  if (c.identitySecret !== undefined && c.identitySecret !== null && (typeof c.identitySecret !== 'string' || !SECRET_REF_PATTERN.test(c.identitySecret))) {
    problems.push('identitySecret: env:NAME or file:/absolute/path');
  }
  if (c.zstdLevel !== undefined && (!Number.isInteger(c.zstdLevel) || (c.zstdLevel as number) < -7 || (c.zstdLevel as number) > 19)) {
    problems.push('zstdLevel: an integer from -7 to 19');
  }
  return problems;
}

/**
 * Opens the archive a config describes: its storage driver (the given one, else built from `config.storage`),
 * encryption for push and decryption keys for fetch (secrets resolved only when `need` asks for them).
 */
export async function openWalArchiveStore(
  config: WalClientConfig,
  need: { encrypt: boolean; decrypt: boolean; zstdWorkers?: number },
  secrets: SecretSource = new CliSecretSource(),
  storageDriver?: StorageDriver,
): Promise<{ store: WalArchiveStore; driver: StorageDriver }> {
  const driver = storageDriver ?? createDriver(config.storage, secrets);
  let encryption: AgeEncryptionKey | null = null;
  if (need.encrypt && config.encryption) {
    encryption = config.encryption.passphraseSecret
      ? { passphrase: await secrets.resolve(config.encryption.passphraseSecret, 'encryption.passphraseSecret') }
      : { recipients: config.encryption.recipients ?? [] };
  }
  let decryption: AgeDecryptionKeys | null = null;
  if (need.decrypt) {
    const identities = config.identitySecret
      ? (await secrets.resolve(config.identitySecret, 'identitySecret'))
          .split(/\r?\n/)
          .map((l) => l.trim())
          .filter((l) => l.startsWith('AGE-SECRET-KEY-'))
      : [];
    const passphrases = config.encryption?.passphraseSecret ? [await secrets.resolve(config.encryption.passphraseSecret, 'encryption.passphraseSecret')] : [];
    if (identities.length || passphrases.length) decryption = { identities, passphrases };
  }
  // loaded here, not at the top: `dr wal-push --async` reads the config without opening the store (zstd, drivers)
  const { WalArchiveStore: Store } = require('./wal-archive-store') as typeof import('./wal-archive-store');
  const store = new Store(driver, { archive: config.archive, encryption, decryption, zstdLevel: config.zstdLevel ?? 3, zstdWorkers: need.zstdWorkers });
  return { store, driver };
}

/** The driver of a config's storage: `local` directly, the cloud kinds through the service's driver table (lazily). */
function createDriver(storage: WalClientConfig['storage'], secrets: SecretSource): StorageDriver {
  if (storage.kind === 'local') {
    const { LocalStorageDriver } = require('../storage/drivers/local.driver') as typeof import('../storage/drivers/local.driver');
    return new LocalStorageDriver(String(storage.settings.path));
  }
  require('reflect-metadata');
  const { STORAGE_KIND_DEFINITIONS } = require('../storage/storage-driver.factory') as typeof import('../storage/storage-driver.factory');
  const definition = STORAGE_KIND_DEFINITIONS[storage.kind];
  return definition.create(Object.assign(new definition.settingsClass(), storage.settings), secrets as SecretResolver);
}
