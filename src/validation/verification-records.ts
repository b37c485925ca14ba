import { Injectable } from '@nestjs/common';
import { InjectRepository } from '@nestjs/typeorm';
import { In, Repository } from 'typeorm';
import { JobStatus } from '../jobs/job-status';
import { VerificationEntity } from './verification.entity';

/**
 * What other modules may read of the `verifications` table (owned by the Validation module): which backups have
 * passed a verification. Backup's retention keeps the newest of them.
 */
@Injectable()
export class VerificationRecords {
  constructor(@InjectRepository(VerificationEntity) private readonly verifications: Repository<VerificationEntity>) {}

  /** The ids among `backupIds` with at least one COMPLETED verification that found no problem (any mode). */
  async passedAmong(backupIds: string[]): Promise<Set<string>> {
    if (!backupIds.length) return new Set();
    const passed = await this.verifications.find({ where: { backupId: In(backupIds), status: JobStatus.COMPLETED, ok: true }, select: ['backupId'] });
    return new Set(passed.map((v) => v.backupId));
  }
}
