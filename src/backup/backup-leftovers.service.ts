import { Injectable, Logger } from '@nestjs/common';
import { InjectRepository } from '@nestjs/typeorm';
import { In, Repository } from 'typeorm';
import { AppConfig } from '../config/app-config';
import { sweepScratch } from '../jobs/scratch-sweep';
import { StorageLocationsService } from '../storage/storage-locations.service';
import { BackupCopyEntity } from './backup-copy.entity';
import { JobStatus } from '../jobs/job-status';
import { BackupEntity } from './backup.entity';

const ACTIVE = [JobStatus.PENDING, JobStatus.RUNNING];
const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;

/** What one sweep removed. */
export interface LeftoverCounts {
  /** Staged (never published) objects, over every storage location. */
  staged: number;
  /** Scratch files and folders. */
  scratch: number;
}

/**
 * Removes what backups and copies that have ended left behind after a fault (a process killed,
 * a publish whose rename failed, a cleanup that failed): staged objects under `<backupId>/` in every storage
 * location (local `.partial-*` files, S3 multipart uploads, Azure uncommitted blocks, GCS staging markers) and the
 * empty folders left with them, and their scratch files. Only what belongs to a job that has ended (its record is
 * no longer PENDING or RUNNING) is removed, so a sweep never races a job another replica is running. Run at start,
 * after the stale-job reapers.
 */
@Injectable()
export class BackupLeftovers {
  private readonly logger = new Logger(BackupLeftovers.name);

  constructor(
    @InjectRepository(BackupEntity) private readonly backups: Repository<BackupEntity>,
    @InjectRepository(BackupCopyEntity) private readonly copies: Repository<BackupCopyEntity>,
    private readonly locations: StorageLocationsService,
    private readonly config: AppConfig,
  ) {}

  /** Sweeps every storage location and the scratch directory; a location that cannot be reached is logged and skipped. */
  async sweep(): Promise<LeftoverCounts> {
    const counts: LeftoverCounts = { staged: 0, scratch: 0 };
    for (const location of await this.locations.list()) {
      try {
        const driver = this.locations.driverFor(location);
        counts.staged += await driver.removeStaged('', (key) => this.writerEnded(key, location.id));
      } catch (error) {
        this.logger.warn(`leftovers in storage location ${location.name}: ${(error as Error).message}`);
      }
    }
    const removed = await sweepScratch(this.config.scratchDir, (id) => this.jobEnded(id));
    counts.scratch = removed.length;
    if (counts.staged || counts.scratch) {
      this.logger.warn(`removed what ended jobs left: ${counts.staged} staged object(s), ${counts.scratch} scratch file(s)/folder(s)`);
    }
    return counts;
  }

  /**
   * Whether the job that may be writing `key` (a backup's object, `<backupId>/...`, or a copy of it into
   * `locationId`) has ended. Keys of anything else (WAL archives, the health probe) are never swept here.
   */
  private async writerEnded(key: string, locationId: string): Promise<boolean> {
    const id = key.split('/')[0];
    if (!UUID.test(id)) return false;
    const backup = await this.backups.findOne({ where: { id }, select: { id: true, status: true } });
    if (!backup || ACTIVE.includes(backup.status)) return false;
    return !(await this.copies.exist({ where: { backupId: id, storageLocationId: locationId, status: In(ACTIVE) } }));
  }

  /** Whether `id` is a backup or copy that has ended (verifications sweep their own scratch files). */
  private async jobEnded(id: string): Promise<boolean> {
    for (const repository of [this.backups, this.copies] as Repository<{ id: string; status: JobStatus }>[]) {
      const row = await repository.findOne({ where: { id }, select: { id: true, status: true } });
      if (row) return !ACTIVE.includes(row.status);
    }
    return false;
  }
}
