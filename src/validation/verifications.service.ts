import { Injectable } from '@nestjs/common';
import { InjectRepository } from '@nestjs/typeorm';
import { Repository } from 'typeorm';
import { isUUID as isUuid } from 'class-validator';
import { BackupsService } from '../backup/backups.service';
import { DrError } from '../errors/dr-error';
import { JobStatus } from '../jobs/job-status';
import { settleWithin } from '../jobs/background-jobs';
import { BackupEncryption } from '../pipeline/backup-encryption';
import { VerifyBackupDto } from './dto/verification.dto';
import { VerificationRunner } from './verification-runner.service';
import { VerificationEntity } from './verification.entity';

/** Verification records: starting a verification of a backup (or of one of its copies), reading, listing. */
@Injectable()
export class VerificationsService {
  constructor(
    @InjectRepository(VerificationEntity) private readonly verifications: Repository<VerificationEntity>,
    private readonly backups: BackupsService,
    private readonly encryption: BackupEncryption,
    private readonly runner: VerificationRunner,
  ) {}

  /**
   * Starts a verification (see {@link VerificationRunner}) and waits for it, at most `waitSeconds` (`Infinity`:
   * until it ends, for the CLI, which runs it in its own process).
   * @param options.storageLocationId verify the copy kept there instead of the primary objects.
   * @returns the verification, finished or still running.
   * @throws DrError NOT_FOUND, BACKUP_NOT_RESTORABLE; VALIDATION_FAILED for a location holding no completed copy;
   *   DECRYPTION_KEY_UNAVAILABLE for a restore verification of an encrypted backup without its key.
   */
  async verify(id: string, options: VerifyBackupDto, createdBy: string | null): Promise<VerificationEntity> {
    const backup = await this.backups.requireCompleted(id);
    if (options.storageLocationId && options.storageLocationId !== backup.storageLocationId) {
      const copies = await this.backups.copiesOf(id);
      if (!copies.some((c) => c.storageLocationId === options.storageLocationId && c.status === JobStatus.COMPLETED)) {
        throw DrError.validation([{ field: 'storageLocationId', message: `no completed copy of backup ${id} in location ${options.storageLocationId}` }]);
      }
    }
    const mode = options.mode ?? 'checksum';
    if (mode === 'restore') await this.encryption.decryptionKeys(backup.encryption); // refuse now, not after minutes
    const verification = await this.verifications.save(this.verifications.create({ backupId: id, mode, status: JobStatus.PENDING, createdBy }));
    const finished = this.runner.start(verification.id, options.storageLocationId ?? null);
    const wait = options.waitSeconds ?? 30;
    if (wait === Infinity) await finished;
    else await settleWithin(finished, wait * 1000);
    return this.verifications.findOneByOrFail({ id: verification.id });
  }

  /** @throws DrError NOT_FOUND */
  async get(id: string): Promise<VerificationEntity> {
    const verification = isUuid(id) ? await this.verifications.findOneBy({ id }) : null;
    if (!verification) throw DrError.notFound('verification', id);
    return verification;
  }

  /** Verifications of a backup, newest first (at most 100). @throws DrError NOT_FOUND for an unknown backup */
  async listOf(backupId: string): Promise<VerificationEntity[]> {
    await this.backups.get(backupId);
    return this.verifications.find({ where: { backupId }, order: { createdAt: 'DESC' }, take: 100 });
  }
}
