import { Injectable } from '@nestjs/common';
import { ArrayMaxSize, ArrayNotEmpty, IsArray, IsOptional, IsString, Matches, ValidateBy, ValidationOptions } from 'class-validator';
import { AppConfig } from '../config/app-config';
import { SECRET_REF_PATTERN, SecretResolver } from '../secrets/secret-resolver';
import { DrError } from '../errors/dr-error';
import { AgeDecryptionKeys, AgeEncryptionKey, ageRecipientProblem } from './age-encryption';
import { ManifestEncryption } from './manifest';

/** Checks each element is an age recipient the library accepts. */
function IsAgeRecipient(options?: ValidationOptions) {
  return ValidateBy(
    {
      name: 'isAgeRecipient',
      validator: {
        validate: (value: unknown) => typeof value === 'string' && ageRecipientProblem(value) === null,
        defaultMessage: () => 'each recipient must be an age X25519 recipient (age1...)',
      },
    },
    options,
  );
}

/**
 * How a plan's or a location's backups are encrypted (age v1): for `recipients` (public keys; restore needs a
 * matching identity in `DR_AGE_IDENTITY_SECRET`), or with the passphrase held by `passphraseSecret`. Exactly one.
 * Only references are stored: a passphrase itself is never in the database.
 */
export class EncryptionSettings {
  @IsOptional()
  @IsArray()
  @ArrayNotEmpty()
  @ArrayMaxSize(20)
  @IsString({ each: true })
  @IsAgeRecipient({ each: true })
  recipients?: string[];

  @IsOptional()
  @IsString()
  @Matches(SECRET_REF_PATTERN, { message: 'passphraseSecret must be env:NAME or file:/absolute/path' })
  passphraseSecret?: string;
}

/**
 * Checks that exactly one of recipients / passphraseSecret is given.
 * @throws DrError VALIDATION_FAILED naming `field`
 */
export function checkEncryptionSettings(settings: EncryptionSettings, field: string): void {
  const kinds = [settings.recipients !== undefined, settings.passphraseSecret !== undefined].filter(Boolean).length;
  if (kinds !== 1) {
    throw DrError.validation([{ field, message: `${field} needs exactly one of recipients or passphraseSecret` }]);
  }
}

/**
 * Turns encryption settings into keys when a backup is written or read. Identities come from
 * `DR_AGE_IDENTITY_SECRET` and passphrases from their secret references, read when needed and never kept.
 */
@Injectable()
export class BackupEncryption {
  constructor(
    private readonly config: AppConfig,
    private readonly secrets: SecretResolver,
  ) {}

  /** The key to encrypt with, or null when `settings` is null. @throws DrError SECRET_UNAVAILABLE */
  async encryptionKey(settings: EncryptionSettings | null): Promise<AgeEncryptionKey | null> {
    if (!settings) return null;
    if (settings.passphraseSecret) {
      return { passphrase: await this.secrets.resolve(settings.passphraseSecret, 'encryption.passphraseSecret') };
    }
    return { recipients: settings.recipients ?? [] };
  }

  /**
   * The keys that decrypt backups written with `settings`, or null when they are not encrypted.
   * @throws DrError DECRYPTION_KEY_UNAVAILABLE when no identity is configured (or its secret cannot be read) for
   *   recipient-encrypted backups; SECRET_UNAVAILABLE for a passphrase secret that cannot be read.
   */
  async decryptionKeys(settings: EncryptionSettings | null): Promise<AgeDecryptionKeys | null> {
    if (!settings) return null;
    if (settings.passphraseSecret) {
      return { identities: [], passphrases: [await this.secrets.resolve(settings.passphraseSecret, 'encryption.passphraseSecret')] };
    }
    if (!this.config.ageIdentitySecret) {
      throw new DrError('DECRYPTION_KEY_UNAVAILABLE', 'this backup is encrypted for age recipients and no identity is configured: set DR_AGE_IDENTITY_SECRET');
    }
    let text: string;
    try {
      text = await this.secrets.resolveOperatorSecret(this.config.ageIdentitySecret, 'DR_AGE_IDENTITY_SECRET');
    } catch {
      throw new DrError('DECRYPTION_KEY_UNAVAILABLE', `the age identity ${this.config.ageIdentitySecret} cannot be read`);
    }
    const identities = text
      .split(/\r?\n/)
      .map((l) => l.trim())
      .filter((l) => l.startsWith('AGE-SECRET-KEY-'));
    if (identities.length === 0) {
      throw new DrError('DECRYPTION_KEY_UNAVAILABLE', `${this.config.ageIdentitySecret} holds no AGE-SECRET-KEY- line`);
    }
    return { identities, passphrases: [] };
  }

  /** What the manifest says of the encryption (recipients are public; a passphrase is only flagged). */
  describe(settings: EncryptionSettings | null): ManifestEncryption {
    if (!settings) return null;
    return settings.passphraseSecret ? { format: 'age-v1', passphrase: true } : { format: 'age-v1', recipients: settings.recipients ?? [] };
  }
}
