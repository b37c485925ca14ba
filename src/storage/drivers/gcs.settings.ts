import { IsBoolean, IsDivisibleBy, IsIn, IsInt, IsOptional, IsString, IsUrl, Matches, Max, MaxLength, Min } from 'class-validator';
import { SECRET_REF_PATTERN, SecretRef } from '../../secrets/secret-resolver';

const KiB = 1024;
const MiB = 1024 * KiB;
/** GCS accepts intermediate chunks of a resumable upload only in multiples of 256 KiB. */
export const GCS_CHUNK_GRANULARITY_BYTES = 256 * KiB;

/** Settings of a `gcs` storage location. Secrets are named by reference, never stored. */
export class GcsStorageSettings {
  /** Bucket name, e.g. `acme-dr-backups`. */
  @IsString()
  @Matches(/^[a-z0-9][a-z0-9._-]{1,220}[a-z0-9]$/, { message: 'bucket must be a GCS bucket name' })
  bucket: string;

  /** Prefix of every object name in the bucket, e.g. `prod/eu` (a trailing `/` is implied); absent: the bucket root. */
  @IsOptional()
  @IsString()
  @MaxLength(512)
  @Matches(/^(?!\/)(?!.*\/\/)(?!(.*\/)?\.{1,2}(\/|$))[^\\\0\r\n]*$/, { message: 'prefix must be relative, without empty, . or .. segments' })
  prefix?: string;

  /** Project billed for requests; defaults to the key file's `project_id` or the ADC project. */
  @IsOptional()
  @IsString()
  @MaxLength(30)
  projectId?: string;

  /**
   * Service-account JSON key: `file:/abs/path` to the JSON file, or `env:NAME` holding the JSON itself. Absent: Application
   * Default Credentials (GOOGLE_APPLICATION_CREDENTIALS, workload identity, the metadata server).
   */
  @IsOptional()
  @IsString()
  @Matches(SECRET_REF_PATTERN, { message: 'keyFileSecret must be env:NAME or file:/absolute/path' })
  keyFileSecret?: SecretRef;

  /**
   * API endpoint instead of `https://storage.googleapis.com`, e.g. an emulator `http://127.0.0.1:9199`. Note that
   * @google-cloud/storage 7 sends resumable-upload requests without credentials to an endpoint outside
   * `googleapis.com`, so such an endpoint must be an emulator or an authenticating proxy.
   */
  @IsOptional()
  @IsUrl({ require_tld: false, require_protocol: true, protocols: ['http', 'https'] })
  apiEndpoint?: string;

  /** Send no credentials at all (an emulator). Only with `apiEndpoint`, never with `keyFileSecret`. */
  @IsOptional()
  @IsBoolean()
  anonymous?: boolean;

  /**
   * Bytes per resumable-upload request, a multiple of 256 KiB (default 16 MiB). An upload holds about this much in
   * memory (the chunk in flight, which the client keeps to resend it on a retry) plus 256 KiB.
   */
  @IsOptional()
  @IsInt()
  @Min(GCS_CHUNK_GRANULARITY_BYTES)
  @Max(1024 * MiB)
  @IsDivisibleBy(GCS_CHUNK_GRANULARITY_BYTES, { message: 'chunkSizeBytes must be a multiple of 262144 (256 KiB)' })
  chunkSizeBytes?: number;

  /**
   * Set when the bucket has Object Retention Lock enabled (`gcloud storage buckets create --enable-per-object-retention`):
   * an upload's `retainUntil` becomes the object's retention with this mode. `Locked` cannot be shortened or removed
   * by anyone before it expires (compliance); `Unlocked` can be by a principal holding
   * `storage.objects.overrideUnlockedRetention` (governance). Absent: no immutability, `retainUntil` is refused.
   */
  @IsOptional()
  @IsIn(['Locked', 'Unlocked'])
  objectRetentionMode?: 'Locked' | 'Unlocked';

  /**
   * Per HTTP request, in ms (default 120 000): the wait for an answer to an API call, and the whole request of an
   * upload chunk (so an upload needs at least chunkSizeBytes per this much time).
   */
  @IsOptional()
  @IsInt()
  @Min(1_000)
  @Max(3_600_000)
  requestTimeoutMs?: number;
}
