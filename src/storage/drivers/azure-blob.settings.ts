import { IsBoolean, IsIn, IsInt, IsOptional, IsString, Matches, Max, MaxLength, Min, registerDecorator } from 'class-validator';
import { SECRET_REF_PATTERN } from '../../secrets/secret-resolver';

const MiB = 1 << 20;

export const AZURE_DEFAULT_BLOCK_SIZE_BYTES = 8 * MiB;
export const AZURE_MIN_BLOCK_SIZE_BYTES = MiB;
export const AZURE_MAX_BLOCK_SIZE_BYTES = 100 * MiB;
export const AZURE_DEFAULT_CONCURRENCY = 4;
export const AZURE_MAX_CONCURRENCY = 16;

/** Azure container names: 3-63 lowercase letters, digits and single hyphens, starting and ending with a letter or digit. */
const CONTAINER_NAME = /^(?=.{3,63}$)[a-z0-9]+(-[a-z0-9]+)*$/;
/** A blob-name prefix: relative, no empty, `.` or `..` segments, no backslash. */
const BLOB_PREFIX = /^(?!\/)(?!.*\/\/)(?!(.*\/)?\.{1,2}(\/|$))[^\\\0]+$/;
/** Storage account names: 3-24 lowercase letters and digits. */
const ACCOUNT_NAME = /^[a-z0-9]{3,24}$/;

const CREDENTIAL_FIELDS = ['connectionStringSecret', 'accountKeySecret', 'sasTokenSecret'] as const;
const CREDENTIAL_CHOICE = 'connectionStringSecret, accountKeySecret (with accountName) or sasTokenSecret';

type SettingsObject = Partial<Record<keyof AzureBlobStorageSettings, unknown>>;

/**
 * A per-field rule: `check` returns the problem with the field, or null when it is fine. Runs even when the field
 * is absent (the rules below depend on the other fields).
 */
function Check(check: (value: unknown, settings: SettingsObject, field: string) => string | null): PropertyDecorator {
  return (target, propertyName) => {
    registerDecorator({
      name: 'azureSettingsCheck',
      target: target.constructor,
      propertyName: propertyName as string,
      validator: {
        validate: (value, args) => check(value, args!.object, args!.property) === null,
        defaultMessage: (args) => check(args!.value, args!.object, args!.property) ?? '',
      },
    });
  };
}

function given(value: unknown): boolean {
  return value !== undefined && value !== null;
}

/** Exactly one of the three credential references, each `env:NAME` or `file:/abs/path`. */
function credentialCheck(value: unknown, settings: SettingsObject, field: string): string | null {
  const present = CREDENTIAL_FIELDS.filter((f) => given(settings[f]));
  if (present.length === 0) return `one credential is required: ${CREDENTIAL_CHOICE}`;
  if (!given(value)) return null;
  if (typeof value !== 'string' || !SECRET_REF_PATTERN.test(value)) return `${field} must be env:NAME or file:/absolute/path`;
  if (present.length > 1) {
    return `${field} cannot be combined with ${present.filter((f) => f !== field).join(', ')}: give exactly one of ${CREDENTIAL_CHOICE}`;
  }
  return null;
}

/**
 * Settings of an `azure-blob` storage location. Holds secret references only (`env:NAME`, `file:/abs/path`),
 * resolved when the driver first talks to Azure; never the secrets themselves.
 *
 * Credentials: exactly one of `connectionStringSecret`, `accountName` + `accountKeySecret`, `sasTokenSecret`
 * (a SAS token needs the permissions r, a, c, w, d, l on the container).
 */
export class AzureBlobStorageSettings {
  /** The container, which must exist (the driver never creates it: its immutability setup is an administrator's choice). */
  @IsString()
  @Matches(CONTAINER_NAME, { message: 'container must be 3-63 lowercase letters, digits and single hyphens' })
  container: string;

  /** Blob-name prefix under which this location's objects are kept, e.g. `dr/prod/` (no leading slash; a `/` is appended when missing). */
  @IsOptional()
  @IsString()
  @MaxLength(512)
  @Matches(BLOB_PREFIX, { message: 'prefix must be relative (no leading /), without empty, . or .. segments' })
  prefix?: string;

  /**
   * Blob service endpoint: `https://<account>.blob.core.windows.net`, or Azurite's `http://127.0.0.1:10000/devstoreaccount1`.
   * Required except with `connectionStringSecret` (the connection string names its endpoint).
   */
  @Check((value, settings) => {
    if (given(settings.connectionStringSecret)) {
      return given(value) ? 'accountUrl comes from the connection string: leave it out with connectionStringSecret' : null;
    }
    if (!given(value)) return 'accountUrl is required with accountKeySecret or sasTokenSecret';
    let url: URL;
    try {
      url = new URL(String(value));
    } catch {
      return 'accountUrl must be an http(s) URL';
    }
    if (url.protocol !== 'https:' && url.protocol !== 'http:') return 'accountUrl must be an http(s) URL';
    if (url.search || url.username || url.password) {
      return 'accountUrl must carry no query string or user info (a SAS token goes in sasTokenSecret)';
    }
    return null;
  })
  accountUrl?: string;

  /** Connection string (`DefaultEndpointsProtocol=...;AccountName=...;AccountKey=...` or with `SharedAccessSignature=`). */
  @Check(credentialCheck)
  connectionStringSecret?: string;

  /** Storage account name, with `accountKeySecret`. */
  @Check((value, settings) => {
    if (!given(settings.accountKeySecret)) return given(value) ? 'accountName goes with accountKeySecret' : null;
    if (typeof value !== 'string' || !ACCOUNT_NAME.test(value)) {
      return 'accountName (3-24 lowercase letters and digits) is required with accountKeySecret';
    }
    return null;
  })
  accountName?: string;

  /** The account's shared key (base64), with `accountName`. */
  @Check(credentialCheck)
  accountKeySecret?: string;

  /** A SAS token (`sv=...&sig=...`, with or without the leading `?`). */
  @Check(credentialCheck)
  sasTokenSecret?: string;

  /** Size of the blocks an upload is cut into, in bytes (default 8 MiB, 1 MiB..100 MiB); objects are limited to 50,000 blocks. */
  @IsOptional()
  @IsInt()
  @Min(AZURE_MIN_BLOCK_SIZE_BYTES)
  @Max(AZURE_MAX_BLOCK_SIZE_BYTES)
  blockSizeBytes?: number;

  /** Blocks staged in parallel by one upload (default 4, 1..16). Memory per upload is about (concurrency + 1) × blockSizeBytes. */
  @IsOptional()
  @IsInt()
  @Min(1)
  @Max(AZURE_MAX_CONCURRENCY)
  concurrency?: number;

  /**
   * The container (or account) has version-level immutability enabled: uploads with `retainUntil` get a blob
   * immutability policy until that date, set in the same request that commits the blob.
   */
  @IsOptional()
  @IsBoolean()
  immutability?: boolean;

  /** Mode of the policies set (default `Unlocked`: can be shortened or removed by an authorised admin; `Locked`: only extended). */
  @IsOptional()
  @IsIn(['Unlocked', 'Locked'])
  immutabilityMode?: 'Unlocked' | 'Locked';
}
