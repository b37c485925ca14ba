import { Type } from 'class-transformer';
import {
  IsBoolean,
  IsDefined,
  IsIn,
  IsInt,
  IsObject,
  IsOptional,
  IsString,
  IsUrl,
  Length,
  Matches,
  Max,
  MaxLength,
  Min,
  ValidateBy,
  ValidateIf,
  ValidateNested,
} from 'class-validator';
import type { StorageClass } from '@aws-sdk/client-s3';
import { SECRET_REF_PATTERN } from '../../secrets/secret-resolver';

const MiB = 1 << 20;
const GiB = 1 << 30;

/** Defaults of the optional settings. */
export const S3_DEFAULTS = { region: 'us-east-1', partSizeBytes: 16 * MiB, queueSize: 4 } as const;

const BUCKET_NAME = /^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$/;
/** Relative, `/`-separated, no empty, `.` or `..` segment; a trailing `/` is optional. */
const KEY_PREFIX = /^(?!\/)(?!.*\/\/)(?!(?:.*\/)?\.\.?(?:\/|$))[^\\\0]+$/;
/**
 * S3's storage classes (the SDK's `StorageClass` values, listed here so that the SDK is loaded only when an S3
 * location is used), less those whose objects must be restored before they can be read (verify reads at once).
 */
export const S3_STORAGE_CLASSES: StorageClass[] = [
  'STANDARD',
  'STANDARD_IA',
  'ONEZONE_IA',
  'INTELLIGENT_TIERING',
  'GLACIER_IR',
  'REDUCED_REDUNDANCY',
  'EXPRESS_ONEZONE',
  'OUTPOSTS',
  'SNOW',
  'FSX_ONTAP',
  'FSX_OPENZFS',
  'AWS_BACKUP_WARM',
  'AWS_BACKUP_LOW_COST_WARM',
];

/** S3 Object Lock settings of a location whose bucket was created with Object Lock enabled. */
export class S3ObjectLockSettings {
  /**
   * Retention mode of objects uploaded with `retainUntil`. GOVERNANCE: principals holding
   * `s3:BypassGovernanceRetention` can still delete early; COMPLIANCE: nobody can, not even the account root.
   */
  @IsIn(['GOVERNANCE', 'COMPLIANCE'])
  mode: 'GOVERNANCE' | 'COMPLIANCE';
}

/**
 * Settings of an S3 (or S3-compatible: MinIO, Ceph RGW, s3rver...) storage location. Secrets are references
 * (`env:NAME`, `file:/abs/path`) resolved when the driver first talks to S3; without them the SDK's standard
 * credential chain is used (environment, shared config/SSO, web identity, ECS/EC2 instance roles).
 */
export class S3StorageSettings {
  @IsString()
  @Matches(BUCKET_NAME, { message: 'bucket must be an S3 bucket name (3-63 lowercase letters, digits, dots, hyphens)' })
  bucket: string;

  /** Key prefix inside the bucket, e.g. `dr/prod/` (a missing trailing `/` is added). Unset: the bucket's root. */
  @IsOptional()
  @IsString()
  @MaxLength(512)
  @Matches(KEY_PREFIX, { message: 'prefix must be a relative path (no leading /, no empty, . or .. segment)' })
  prefix?: string;

  /** Default `us-east-1`. */
  @IsOptional()
  @IsString()
  @Matches(/^[a-z0-9-]{2,40}$/, { message: 'region must be an AWS region name such as eu-west-1' })
  region?: string;

  /** Endpoint of an S3-compatible store, e.g. `http://minio:9000`; unset for AWS S3. Credentials are not allowed in it. */
  @IsOptional()
  @IsUrl(
    { protocols: ['http', 'https'], require_protocol: true, require_tld: false, disallow_auth: true },
    { message: 'endpoint must be an http(s) URL without credentials' },
  )
  endpoint?: string;

  /** Path-style addressing (`endpoint/bucket/key`), which most S3-compatible stores need. Default false. */
  @IsOptional()
  @IsBoolean()
  forcePathStyle?: boolean;

  @ValidateIf((s: S3StorageSettings) => s.accessKeyIdSecret !== undefined || s.secretAccessKeySecret !== undefined || s.sessionTokenSecret !== undefined)
  @IsDefined({ message: 'accessKeyIdSecret is required with secretAccessKeySecret or sessionTokenSecret' })
  @Matches(SECRET_REF_PATTERN, { message: 'accessKeyIdSecret must be env:NAME or file:/absolute/path' })
  accessKeyIdSecret?: string;

  @ValidateIf((s: S3StorageSettings) => s.accessKeyIdSecret !== undefined || s.secretAccessKeySecret !== undefined || s.sessionTokenSecret !== undefined)
  @IsDefined({ message: 'secretAccessKeySecret is required with accessKeyIdSecret or sessionTokenSecret' })
  @Matches(SECRET_REF_PATTERN, { message: 'secretAccessKeySecret must be env:NAME or file:/absolute/path' })
  secretAccessKeySecret?: string;

  /** For temporary credentials (STS). */
  @IsOptional()
  @Matches(SECRET_REF_PATTERN, { message: 'sessionTokenSecret must be env:NAME or file:/absolute/path' })
  sessionTokenSecret?: string;

  /**
   * Bytes per part of a multipart upload, 5 MiB to 5 GiB, default 16 MiB. The largest object is 10,000 parts
   * (156 GiB at 16 MiB); an upload holds at most (queueSize + 1) parts in memory.
   */
  @IsOptional()
  @IsInt()
  @Min(5 * MiB)
  @Max(5 * GiB)
  partSizeBytes?: number;

  /** Parts uploaded in parallel, 1 to 16, default 4. */
  @IsOptional()
  @IsInt()
  @Min(1)
  @Max(16)
  queueSize?: number;

  /** Server-side encryption with S3-managed keys (`AES256`) or KMS keys (`aws:kms`). Unset: the bucket's default. */
  @IsOptional()
  @IsIn(['AES256', 'aws:kms'])
  serverSideEncryption?: 'AES256' | 'aws:kms';

  /** KMS key id or ARN, with `serverSideEncryption: "aws:kms"` (unset: the account's `aws/s3` key). */
  @IsOptional()
  @IsString()
  @Length(1, 2048)
  @ValidateBy({
    name: 'kmsKeyIdNeedsAwsKms',
    validator: {
      validate: (_value, args) => (args?.object as S3StorageSettings).serverSideEncryption === 'aws:kms',
      defaultMessage: () => 'kmsKeyId needs serverSideEncryption "aws:kms"',
    },
  })
  kmsKeyId?: string;

  @IsOptional()
  @IsIn(S3_STORAGE_CLASSES, {
    message: `storageClass must be one of ${S3_STORAGE_CLASSES.join(', ')} (GLACIER and DEEP_ARCHIVE objects cannot be read without a restore; use a lifecycle rule)`,
  })
  storageClass?: StorageClass;

  /** Set when the bucket has Object Lock enabled: uploads may then carry `retainUntil`. */
  @IsOptional()
  @IsObject()
  @ValidateNested()
  @Type(() => S3ObjectLockSettings)
  objectLock?: S3ObjectLockSettings;
}
