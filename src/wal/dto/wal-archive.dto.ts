import { Type } from 'class-transformer';
import { IsIn, IsInt, IsOptional, IsString, IsUUID, Matches, ValidateNested } from 'class-validator';
import { EncryptionSettings } from '../../pipeline/backup-encryption';
import { SECRET_REF_PATTERN } from '../../secrets/secret-resolver';
import { WalArchiveEntity } from '../wal-archive.entity';
import { WalArchiveStatus } from '../wal-archives.service';
import { WAL_ARCHIVE_NAME_PATTERN } from '../wal-client-config';
import { ContinuityReport } from '../wal-continuity';

/** WAL segment sizes initdb accepts (--wal-segsize 1..1024 MiB, powers of two), in bytes. */
const SEGMENT_SIZES = Array.from({ length: 11 }, (_, i) => 2 ** (20 + i));

/** `POST /wal-archives`: a WAL archive in a storage location (default location when omitted). */
export class CreateWalArchiveDto {
  /** Also the storage prefix `wal/<name>/`. */
  @IsString()
  @Matches(WAL_ARCHIVE_NAME_PATTERN, { message: 'name may hold letters, digits, . _ - (1-100 characters)' })
  name: string;

  @IsOptional()
  @IsUUID('all', { message: 'storageLocationId must be a UUID' })
  storageLocationId?: string;

  /** Encrypt archived WAL (age): recipients or a passphrase secret reference. */
  @IsOptional()
  @ValidateNested()
  @Type(() => EncryptionSettings)
  encryption?: EncryptionSettings;

  /** Secret reference (`env:NAME`, `file:/path`) of the age identity wal-fetch decrypts with. */
  @IsOptional()
  @IsString()
  @Matches(SECRET_REF_PATTERN, { message: 'identitySecret must be env:NAME or file:/absolute/path' })
  identitySecret?: string;

  /** The cluster's wal_segment_size in bytes (power of two, 1 MiB to 1 GiB; default 16 MiB). */
  @IsOptional()
  @IsInt()
  @IsIn(SEGMENT_SIZES, { message: 'segmentSizeBytes must be a power of two from 1 MiB to 1 GiB' })
  segmentSizeBytes?: number;
}

/** A WAL archive as the API shows it. */
export class WalArchiveResponse {
  id: string;
  name: string;
  storageLocationId: string;
  encryption: EncryptionSettings | null;
  identitySecret: string | null;
  segmentSizeBytes: number;
  createdAt: string;

  static of(a: WalArchiveEntity): WalArchiveResponse {
    return {
      id: a.id,
      name: a.name,
      storageLocationId: a.storageLocationId,
      encryption: a.encryption,
      identitySecret: a.identitySecret,
      segmentSizeBytes: a.segmentSizeBytes,
      createdAt: a.createdAt.toISOString(),
    };
  }
}

/** A WAL archive with its state: newest segment, achieved RPO (seconds), continuity and gaps. */
export class WalArchiveStatusResponse extends WalArchiveResponse {
  filesArchived: number;
  segmentsArchived: number;
  newestSegment: string | null;
  newestSegmentAt: string | null;
  /** Seconds since the newest archived segment was stored (null: nothing archived yet). */
  achievedRpoSeconds: number | null;
  baseBackups: number;
  /** postgres-base plans whose cluster archives here (their achieved RPO is `achievedRpoSeconds`). */
  plans: { id: string; name: string; enabled: boolean }[];
  continuity: ContinuityReport;

  static withStatus(a: WalArchiveEntity, s: WalArchiveStatus): WalArchiveStatusResponse {
    return {
      ...WalArchiveResponse.of(a),
      filesArchived: s.filesArchived,
      segmentsArchived: s.segmentsArchived,
      newestSegment: s.newestSegment,
      newestSegmentAt: s.newestSegmentAt?.toISOString() ?? null,
      achievedRpoSeconds: s.achievedRpoSeconds === null ? null : Math.round(s.achievedRpoSeconds * 10) / 10,
      baseBackups: s.baseBackups,
      plans: s.plans,
      continuity: s.continuity,
    };
  }
}
