import { readFile } from 'node:fs/promises';
import { plainToInstance } from 'class-transformer';
import { validate } from 'class-validator';
import { AgeDecryptionKeys, AgeEncryptionKey } from '../pipeline/age-encryption';
import { SECRET_REF_PATTERN, SecretResolver } from '../secrets/secret-resolver';
import { STORAGE_KIND_DEFINITIONS } from '../storage/storage-driver.factory';
import { StorageDriver } from '../storage/storage-driver';
import { STORAGE_KINDS, StorageKind } from '../storage/storage-location.entity';
import { WalArchiveStore } from './wal-archive-store';

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

/** Raised for a config file that cannot be read or is not valid; the message names the field. */
export class WalConfigError extends Error {}

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
  if (!storage || typeof storage !== 'object' || !STORAGE_KINDS.includes(storage.kind as StorageKind)) {
    problems.push(`storage.kind: one of ${STORAGE_KINDS.join(', ')}`);
  } else if (!storage.settings || typeof storage.settings !== 'object') {
    problems.push('storage.settings: an object');
  } else {
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

/** What a store needs: encryption for push, decryption for fetch (resolved only when `need` asks for it). */
export async function openWalArchiveStore(
  config: WalClientConfig,
  need: { encrypt: boolean; decrypt: boolean },
  secrets: SecretResolver = new SecretResolver(),
): Promise<{ store: WalArchiveStore; driver: StorageDriver }> {
  const definition = STORAGE_KIND_DEFINITIONS[config.storage.kind];
  const driver = definition.create(Object.assign(new definition.settingsClass(), config.storage.settings), secrets);
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
    const passphrases = config.encryption?.passphraseSecret
      ? [await secrets.resolve(config.encryption.passphraseSecret, 'encryption.passphraseSecret')]
      : [];
    if (identities.length || passphrases.length) decryption = { identities, passphrases };
  }
  const store = new WalArchiveStore(driver, { archive: config.archive, encryption, decryption, zstdLevel: config.zstdLevel ?? 3 });
  return { store, driver };
}
