import { AuditChainHeadEntity, AuditEntryEntity } from '../audit/audit-entry.entity';
import { ApiKeyEntity } from '../auth/api-key.entity';
import { BackupCopyEntity } from '../backup/backup-copy.entity';
import { BackupPlanEntity } from '../backup/backup-plan.entity';
import { BackupEntity } from '../backup/backup.entity';
import { ScheduleClaimEntity } from '../backup/schedule-claim.entity';
import { VerificationEntity } from '../validation/verification.entity';
import { RecoveryEntity } from '../recovery/recovery.entity';
import { StorageLocationEntity } from '../storage/storage-location.entity';
import { InitialSchema1764000000000 } from './migrations/1764000000000-InitialSchema';
import { RecoveryApproval1764010400000 } from './migrations/1764010400000-RecoveryApproval';
import { AuditTrail1764040000000 } from './migrations/1764040000000-AuditTrail';
import { ExternalRecoveries1795525273144 } from './migrations/1795525273144-ExternalRecoveries';
import { PointInTimeRecovery1795600000000 } from './migrations/1795600000000-PointInTimeRecovery';
import { WalArchiveEntity } from '../wal/wal-archive.entity';
import { IncrementalBackups1795700000000 } from './migrations/1795700000000-IncrementalBackups';
import { RestoreIntegrity1795800000000 } from './migrations/1795800000000-RestoreIntegrity';

/** Every entity of the metadata store. */
export const ENTITIES = [
  ApiKeyEntity,
  StorageLocationEntity,
  BackupPlanEntity,
  BackupEntity,
  BackupCopyEntity,
  ScheduleClaimEntity,
  VerificationEntity,
  RecoveryEntity,
  AuditEntryEntity,
  AuditChainHeadEntity,
  WalArchiveEntity,
];

/** Every migration, in order. The schema changes only through these (never `synchronize`). */
export const MIGRATIONS = [
  InitialSchema1764000000000,
  RecoveryApproval1764010400000,
  AuditTrail1764040000000,
  ExternalRecoveries1795525273144,
  PointInTimeRecovery1795600000000,
  IncrementalBackups1795700000000,
  RestoreIntegrity1795800000000,
];
