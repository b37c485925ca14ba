import { Type } from 'class-transformer';
import { IsIn, IsObject, IsOptional, IsString, Length, Matches, ValidateNested } from 'class-validator';
import { EncryptionSettings } from '../../pipeline/backup-encryption';
import { STORAGE_KINDS, StorageKind, StorageLocationEntity } from '../storage-location.entity';

export class CreateStorageLocationDto {
  @IsString()
  @Length(1, 100)
  @Matches(/^[A-Za-z0-9][A-Za-z0-9._-]*$/, { message: 'name may hold letters, digits, . _ -' })
  name: string;

  @IsIn(STORAGE_KINDS, { message: `kind must be one of: ${STORAGE_KINDS.join(', ')}` })
  kind: StorageKind;

  /** The driver's settings, validated against its kind (e.g. `{"path":"/mnt/nfs"}`, `{"bucket":"b","region":"eu-west-1"}`). */
  @IsObject()
  settings: Record<string, unknown>;

  /** Encrypt backups stored here (age) unless their plan says otherwise. */
  @IsOptional()
  @ValidateNested()
  @Type(() => EncryptionSettings)
  encryption?: EncryptionSettings;
}

export class StorageLocationResponse {
  id: string;
  name: string;
  kind: string;
  settings: Record<string, unknown>;
  encryption: EncryptionSettings | null;
  isDefault: boolean;
  createdAt: string;

  static of(l: StorageLocationEntity): StorageLocationResponse {
    return {
      id: l.id,
      name: l.name,
      kind: l.kind,
      settings: { ...l.settings },
      encryption: l.encryption,
      isDefault: l.isDefault,
      createdAt: l.createdAt.toISOString(),
    };
  }
}
