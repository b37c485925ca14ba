import { Injectable, Logger } from '@nestjs/common';
import { InjectRepository } from '@nestjs/typeorm';
import { isUUID } from 'class-validator';
import { Repository } from 'typeorm';
import type { BackupEntity } from '../backup/backup.entity';
import { BackupPlanRepository, BackupRepository } from '../backup/backup.repository';
import { DrError } from '../errors/dr-error';
import { checkEncryptionSettings, EncryptionSettings } from '../pipeline/backup-encryption';
import { SecretResolver } from '../secrets/secret-resolver';
import { StorageLocationsService } from '../storage/storage-locations.service';
import { WalArchiveStore } from './wal-archive-store';
import { WalArchiveEntity } from './wal-archive.entity';
import { openWalArchiveStore, WalClientConfig } from './wal-client-config';
import { checkContinuity, ContinuityReport, ContinuityStart } from './wal-continuity';
import { parseLsn, parseTimelineHistory, segmentNumberOf, segmentOfLsn, TimelineHistoryEntry } from './wal-names';

/** What `GET /wal-archives/{id}` reports of an archive's state. */
export interface WalArchiveStatus {
  /** WAL files archived (segments, partial segments, history and backup history files). */
  filesArchived: number;
  segmentsArchived: number;
  /** Newest archived segment (highest timeline, then highest segment number) and when it was stored. */
  newestSegment: string | null;
  newestSegmentAt: Date | null;
  /** Seconds since the newest segment was stored: the achieved RPO of the cluster archiving here (null: none yet). */
  achievedRpoSeconds: number | null;
  /** Completed, kept base backups (engine postgres-base) of this archive. */
  baseBackups: number;
  /** The postgres-base backup plans whose cluster archives here: `achievedRpoSeconds` is theirs. */
  plans: { id: string; name: string; enabled: boolean }[];
  continuity: ContinuityReport;
}

/** Body of `POST /wal-archives`, already validated. */
export interface CreateWalArchive {
  name: string;
  storageLocationId?: string;
  encryption?: EncryptionSettings;
  identitySecret?: string;
  segmentSizeBytes?: number;
}

/**
 * WAL archives: records, the client config `dr wal-push` / `dr wal-fetch` read, the archive's state (newest
 * segment, achieved RPO, continuity from the oldest kept base backup), and WAL retention (segments no kept base
 * backup needs are removed).
 */
@Injectable()
export class WalArchivesService {
  private readonly logger = new Logger(WalArchivesService.name);

  constructor(
    @InjectRepository(WalArchiveEntity) private readonly archives: Repository<WalArchiveEntity>,
    private readonly backups: BackupRepository,
    private readonly plans: BackupPlanRepository,
    private readonly locations: StorageLocationsService,
    private readonly secrets: SecretResolver,
  ) {}

  /** @throws DrError CONFLICT (name used), VALIDATION_FAILED (location, encryption) */
  async create(dto: CreateWalArchive): Promise<WalArchiveEntity> {
    const location = await this.locations.resolve(dto.storageLocationId);
    if (dto.encryption) checkEncryptionSettings(dto.encryption, 'encryption');
    if (await this.archives.existsBy({ name: dto.name })) {
      throw new DrError('CONFLICT', `a WAL archive named "${dto.name}" exists`, [{ field: 'name', message: 'already used' }]);
    }
    return this.archives.save(
      this.archives.create({
        name: dto.name,
        storageLocationId: location.id,
        encryption: dto.encryption ? { ...dto.encryption } : null,
        identitySecret: dto.identitySecret ?? null,
        segmentSizeBytes: dto.segmentSizeBytes ?? 16 * 1024 * 1024,
      }),
    );
  }

  async list(): Promise<WalArchiveEntity[]> {
    return this.archives.find({ order: { createdAt: 'ASC' } });
  }

  /** @throws DrError NOT_FOUND */
  async get(id: string): Promise<WalArchiveEntity> {
    const archive = isUUID(id) ? await this.archives.findOneBy({ id }) : null;
    if (!archive) throw DrError.notFound('WAL archive', id);
    return archive;
  }

  /** The JSON for `dr wal-push` / `dr wal-fetch` (`--config`): storage kind and settings, secrets as references only. */
  async clientConfig(archive: WalArchiveEntity): Promise<WalClientConfig> {
    const location = await this.locations.get(archive.storageLocationId);
    return {
      archive: archive.name,
      storage: { kind: location.kind, settings: { ...location.settings } },
      ...(archive.encryption ? { encryption: { ...archive.encryption } } : {}),
      ...(archive.identitySecret ? { identitySecret: archive.identitySecret } : {}),
    };
  }

  /** The archive's store, opened as wal-fetch would (with decryption keys when the identity can be read). */
  async storeOf(archive: WalArchiveEntity): Promise<WalArchiveStore> {
    const config = await this.clientConfig(archive);
    const driver = this.locations.driverFor(await this.locations.get(archive.storageLocationId));
    const decrypt = Boolean(config.identitySecret || config.encryption?.passphraseSecret);
    return (await openWalArchiveStore(config, { encrypt: false, decrypt }, this.secrets, driver)).store;
  }

  /** Completed, not deleted base backups of the archive, oldest first. */
  async baseBackupsOf(archiveId: string): Promise<BackupEntity[]> {
    const rows = await this.backups.completedOfEngine('postgres-base');
    return rows.filter((b) => !b.deletedAt && b.walRange?.walArchiveId === archiveId);
  }

  /**
   * The archive's state: newest segment, achieved RPO, continuity. Reads the store's listing (and history files).
   * Continuity is checked from `from` when given, else from the oldest kept base backup's start.
   */
  async status(archive: WalArchiveEntity, from?: ContinuityStart): Promise<WalArchiveStatus> {
    const store = await this.storeOf(archive);
    const files = await store.list();
    const segments = files.filter((f) => f.file.kind === 'segment');
    let newest: (typeof files)[number] | null = null;
    for (const f of segments) {
      if (
        !newest ||
        f.file.timeline > newest.file.timeline ||
        (f.file.timeline === newest.file.timeline &&
          segmentNumberOf(f.file.segmentHex!, archive.segmentSizeBytes) > segmentNumberOf(newest.file.segmentHex!, archive.segmentSizeBytes))
      ) {
        newest = f;
      }
    }
    const histories = new Map<number, TimelineHistoryEntry[]>();
    for (const f of files.filter((x) => x.file.kind === 'history')) {
      try {
        histories.set(f.file.timeline, parseTimelineHistory((await store.readSmall(f.file.name)).toString('utf8')));
      } catch (error) {
        this.logger.warn(`WAL archive ${archive.name}: cannot read ${f.file.name}: ${(error as Error).message}`);
      }
    }
    const bases = await this.baseBackupsOf(archive.id);
    const oldest = from ?? bases[0]?.walRange;
    const continuity = checkContinuity(
      files.map((f) => f.file),
      histories,
      archive.segmentSizeBytes,
      oldest ? { timeline: oldest.timeline, startLsn: oldest.startLsn } : null,
    );
    return {
      filesArchived: files.length,
      segmentsArchived: segments.length,
      newestSegment: newest?.file.name ?? null,
      newestSegmentAt: newest?.storedAt ?? null,
      achievedRpoSeconds: newest ? Math.max(0, (Date.now() - newest.storedAt.getTime()) / 1000) : null,
      baseBackups: bases.length,
      plans: (await this.plans.ofEngine('postgres-base'))
        .filter((p) => (p.source as { walArchiveId?: string }).walArchiveId === archive.id)
        .map((p) => ({ id: p.id, name: p.name, enabled: p.enabled })),
      continuity,
    };
  }

  /**
   * WAL retention follows base backup retention: removes the segments (every timeline), partial segments and
   * backup history files older than the start segment of the oldest kept base backup. History files are kept
   * (small, and needed to follow timelines). Does nothing while the archive has no kept base backup.
   * @returns the names removed.
   */
  async applyRetention(archive: WalArchiveEntity): Promise<string[]> {
    const oldest = (await this.baseBackupsOf(archive.id))[0]?.walRange;
    const startLsn = oldest ? parseLsn(oldest.startLsn) : null;
    if (startLsn === null) return [];
    const keepFrom = segmentOfLsn(startLsn, archive.segmentSizeBytes);
    const store = await this.storeOf(archive);
    const removed: string[] = [];
    for (const f of await store.list()) {
      if (f.file.kind === 'history' || !f.file.segmentHex) continue;
      if (segmentNumberOf(f.file.segmentHex, archive.segmentSizeBytes) < keepFrom) {
        await store.remove(f.file);
        removed.push(f.file.name);
      }
    }
    if (removed.length) this.logger.log(`WAL archive ${archive.name}: retention removed ${removed.length} WAL files older than the oldest kept base backup`);
    return removed;
  }

  /** Applies WAL retention to every archive of the given base backups (after base backup retention deleted some). */
  async applyRetentionFor(archiveIds: Iterable<string>): Promise<void> {
    for (const id of new Set(archiveIds)) {
      const archive = await this.archives.findOneBy({ id });
      if (archive) await this.applyRetention(archive).catch((error: Error) => this.logger.warn(`WAL retention of ${archive.name} failed: ${error.message}`));
    }
  }
}
