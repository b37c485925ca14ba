import { Injectable } from '@nestjs/common';
import { isUUID as isUuid } from 'class-validator';
import { InjectRepository } from '@nestjs/typeorm';
import { FindOptionsWhere, Repository } from 'typeorm';
import { validateNested } from '../errors/validation';
import { DrError } from '../errors/dr-error';
import { EngineRegistry } from '../engines/engine-registry';
import { identitiesMatch } from '../pipeline/age-encryption';
import { BackupEncryption } from '../pipeline/backup-encryption';
import { ArtifactManifest, BackupType } from '../pipeline/manifest';
import { FileIndexEntry } from '../engines/file-index-entry';
import { SignatureCheck } from '../pipeline/manifest-signer';
import { StorageLocationsService } from '../storage/storage-locations.service';
import { BackupCopyEntity } from './backup-copy.entity';
import { BackupObjects } from './backup-objects';
import { BackupPlanEntity } from './backup-plan.entity';
import { BackupRunner } from './backup-runner.service';
import { JobStatus } from '../jobs/job-status';
import { BackupEntity, BackupTrigger } from './backup.entity';
import { CreateBackupDto, ListBackupsQuery, ListFilesQuery, Page, SnapshotDiffResponse } from './dto/backup.dto';

/** Backup records: creating (on demand or from a plan), reading, listing and diffing backups. */
@Injectable()
export class BackupsService {
  constructor(
    @InjectRepository(BackupEntity) private readonly backups: Repository<BackupEntity>,
    @InjectRepository(BackupPlanEntity) private readonly plans: Repository<BackupPlanEntity>,
    @InjectRepository(BackupCopyEntity) private readonly copies: Repository<BackupCopyEntity>,
    private readonly engines: EngineRegistry,
    private readonly locations: StorageLocationsService,
    private readonly runner: BackupRunner,
    private readonly objects: BackupObjects,
    private readonly encryption: BackupEncryption,
  ) {}

  /**
   * Validates the request, records a PENDING backup and starts it in the background.
   * @throws DrError VALIDATION_FAILED naming each bad field; PLAN_BUSY when the plan's previous backup still runs.
   */
  async create(dto: CreateBackupDto, createdBy: string | null): Promise<BackupEntity> {
    if (dto.planId) {
      if (dto.engine || dto.source) {
        throw DrError.validation([{ field: 'planId', message: 'give either planId, or engine and source, not both' }]);
      }
      const plan = await this.plans.findOneBy({ id: dto.planId });
      if (!plan) throw DrError.validation([{ field: 'planId', message: `backup plan ${dto.planId} does not exist` }]);
      return this.createFromPlan(plan, 'MANUAL', createdBy, dto.type);
    }
    if (dto.type === 'INCREMENTAL') {
      throw DrError.validation([{ field: 'type', message: 'an INCREMENTAL backup needs planId: its parent is the previous backup of that plan' }]);
    }
    const problems = [];
    if (!dto.engine) problems.push({ field: 'engine', message: 'engine is required (or planId)' });
    if (!dto.source) problems.push({ field: 'source', message: 'source is required (or planId)' });
    if (problems.length) throw DrError.validation(problems);
    const engine = this.engines.get(dto.engine!);
    const source = await validateNested(engine.sourceClass, dto.source, 'source');
    await engine.checkSource(source);
    const location = await this.locations.resolve(dto.storageLocationId);
    const backup = await this.backups.save(
      this.backups.create({
        planId: null,
        engine: engine.name,
        source: { ...source },
        storageLocationId: location.id,
        encryption: location.encryption,
        status: JobStatus.PENDING,
        trigger: 'MANUAL',
        createdBy,
      }),
    );
    void this.runner.start(backup.id);
    return backup;
  }

  /**
   * Records and starts a backup of `plan`, FULL or INCREMENTAL: as `type` asks, or else as the plan's
   * `incrementalsPerFull` says (see {@link chooseType}).
   * @throws DrError PLAN_BUSY when one of its backups is still running; VALIDATION_FAILED on `type` for an engine
   *   without incrementals; INCREMENTAL_NOT_POSSIBLE when `type` is INCREMENTAL and there is no usable parent.
   */
  async createFromPlan(plan: BackupPlanEntity, trigger: BackupTrigger, createdBy: string | null, type?: BackupType): Promise<BackupEntity> {
    const engine = this.engines.get(plan.engine);
    if (type === 'INCREMENTAL' && !engine.supportsIncremental) {
      throw DrError.validation([{ field: 'type', message: `the ${engine.name} engine takes full backups only; type must be FULL` }]);
    }
    const busy = await this.backups.existsBy({ planId: plan.id, status: JobStatus.RUNNING });
    if (busy) throw new DrError('PLAN_BUSY', `a backup of plan "${plan.name}" is still running`);
    const chain = await this.chooseType(plan, engine.supportsIncremental ?? false, type);
    const location = await this.locations.get(plan.storageLocationId);
    const backup = await this.backups.save(
      this.backups.create({
        planId: plan.id,
        engine: plan.engine,
        source: plan.source,
        storageLocationId: plan.storageLocationId,
        encryption: plan.encryption ?? location.encryption,
        status: JobStatus.PENDING,
        trigger,
        createdBy,
        ...chain,
      }),
    );
    void this.runner.start(backup.id);
    return backup;
  }

  /**
   * FULL or INCREMENTAL for the next backup of `plan`. An incremental's parent is the plan's newest COMPLETED
   * backup (full or incremental) of the same engine and source whose file index can be read (it has one, and the
   * key to decrypt it is configured). `requested` INCREMENTAL without such a parent is refused; without
   * `requested`, a plan with `incrementalsPerFull` N takes an incremental while the parent's chain holds fewer than
   * N incrementals, and a full otherwise or when there is no usable parent (then with a warning saying why).
   * @throws DrError INCREMENTAL_NOT_POSSIBLE
   */
  private async chooseType(
    plan: BackupPlanEntity,
    supported: boolean,
    requested: BackupType | undefined,
  ): Promise<Pick<BackupEntity, 'backupType' | 'parentId' | 'fullBackupId' | 'warnings'>> {
    const full = { backupType: 'FULL' as const, parentId: null, fullBackupId: null, warnings: [] };
    if (requested === 'FULL' || !supported) return full;
    if (!requested && !(plan.incrementalsPerFull > 0)) return full;
    const parent = await this.backups.findOne({ where: { planId: plan.id, status: JobStatus.COMPLETED }, order: { startedAt: 'DESC', createdAt: 'DESC' } });
    const problem = parent ? await this.parentProblem(plan, parent) : `plan "${plan.name}" has no completed backup yet`;
    if (problem) {
      if (requested)
        throw new DrError('INCREMENTAL_NOT_POSSIBLE', `no incremental backup of plan "${plan.name}": ${problem}`, [{ field: 'type', message: problem }]);
      return parent ? { ...full, warnings: [`full backup instead of an incremental: ${problem}`] } : full;
    }
    if (!requested) {
      let depth = 0;
      for (
        let b: BackupEntity | null = parent;
        b?.backupType === 'INCREMENTAL' && depth <= plan.incrementalsPerFull;
        b = await this.backups.findOneBy({ id: b.parentId! })
      )
        depth++;
      if (depth >= plan.incrementalsPerFull) return full;
    }
    return { backupType: 'INCREMENTAL', parentId: parent!.id, fullBackupId: parent!.fullBackupId ?? parent!.id, warnings: [] };
  }

  /** Why `parent` cannot be an incremental's parent for `plan`, or null when it can. */
  private async parentProblem(plan: BackupPlanEntity, parent: BackupEntity): Promise<string | null> {
    if (parent.engine !== plan.engine || stableJson(parent.source) !== stableJson(plan.source)) {
      return `the previous backup ${parent.id} was taken of another source; the plan's source changed since`;
    }
    const details = parent.objects.find((o) => o.role === 'details');
    if (!details || parent.fileCount === null) return `the previous backup ${parent.id} has no file index`;
    try {
      const keys = await this.encryption.decryptionKeys(parent.encryption);
      const recipients = parent.encryption?.recipients;
      if (keys && recipients?.length && !parent.encryption?.passphraseSecret && !(await identitiesMatch(keys.identities, recipients))) {
        return `the file index of the previous backup ${parent.id} is encrypted to recipients whose identity is not configured here (DR_AGE_IDENTITY_SECRET)`;
      }
    } catch (error) {
      return `the file index of the previous backup ${parent.id} is encrypted and cannot be read here: ${(error as Error).message}`;
    }
    const driver = this.locations.driverFor(await this.locations.get(parent.storageLocationId));
    if (!(await driver.stat(details.key).catch(() => null)))
      return `the file index of the previous backup ${parent.id} (${details.key}) is missing from storage`;
    return null;
  }

  /** @throws DrError NOT_FOUND */
  async get(id: string): Promise<BackupEntity> {
    const backup = isUuid(id) ? await this.backups.findOneBy({ id }) : null;
    if (!backup) throw DrError.notFound('backup', id);
    return backup;
  }

  async list(query: ListBackupsQuery): Promise<Page<BackupEntity>> {
    const where: FindOptionsWhere<BackupEntity> = {};
    if (query.status) where.status = query.status;
    if (query.planId) where.planId = query.planId;
    if (query.engine) where.engine = query.engine;
    const [items, total] = await this.backups.findAndCount({
      where,
      order: { createdAt: 'DESC', id: 'DESC' },
      skip: (query.page - 1) * query.limit,
      take: query.limit,
    });
    return { items, page: query.page, limit: query.limit, total };
  }

  /**
   * The published manifest of a completed backup, read from storage, and whether its signature verifies.
   * @throws DrError NOT_FOUND, BACKUP_NOT_RESTORABLE
   */
  async manifest(id: string): Promise<{ manifest: ArtifactManifest; signature: SignatureCheck }> {
    const backup = await this.requireCompleted(id);
    const driver = this.locations.driverFor(await this.locations.get(backup.storageLocationId));
    try {
      const { manifest, signature } = await this.objects.readManifest(driver, backup.manifestKey!);
      return { manifest, signature };
    } catch (error) {
      throw new DrError('BACKUP_NOT_RESTORABLE', `manifest ${backup.manifestKey} cannot be read: ${(error as Error).message}`);
    }
  }

  /** @throws DrError NOT_FOUND, or BACKUP_NOT_RESTORABLE when the backup is not COMPLETED. */
  async requireCompleted(id: string): Promise<BackupEntity> {
    const backup = await this.get(id);
    if (backup.status !== JobStatus.COMPLETED) {
      throw new DrError('BACKUP_NOT_RESTORABLE', `backup ${id} is ${backup.status}, not COMPLETED`);
    }
    return backup;
  }

  /**
   * A page of a backup's file index (filesystem, configuration), read from its details object (decrypted with the
   * configured key when the backup is encrypted), optionally only paths starting with `prefix`.
   * @throws DrError NOT_FOUND, BACKUP_NOT_RESTORABLE, VALIDATION_FAILED (an engine without a file index),
   *   DECRYPTION_KEY_UNAVAILABLE
   */
  async files(id: string, query: ListFilesQuery): Promise<Page<FileIndexEntry>> {
    const backup = await this.requireCompleted(id);
    const details = backup.objects.find((o) => o.role === 'details');
    if (!details || backup.fileCount === null) {
      throw DrError.validation([{ field: 'id', message: `backup ${id} (${backup.engine}) has no file index` }]);
    }
    const driver = this.locations.driverFor(await this.locations.get(backup.storageLocationId));
    const { files } = await this.objects.readDetails(driver, details, await this.encryption.decryptionKeys(backup.encryption));
    const skip = (query.page - 1) * query.limit;
    const items: FileIndexEntry[] = [];
    let total = 0;
    for await (const entry of files) {
      if (query.prefix && !entry.path.startsWith(query.prefix)) continue;
      if (total >= skip && items.length < query.limit) items.push(entry);
      total++;
    }
    return { items, page: query.page, limit: query.limit, total };
  }

  /** The copies of a backup (3-2-1), in the order they were made. */
  async copiesOf(backupId: string): Promise<BackupCopyEntity[]> {
    return this.copies.find({ where: { backupId }, order: { createdAt: 'ASC' } });
  }

  /** Compares the file indexes of two configuration snapshots. @throws DrError NOT_FOUND, VALIDATION_FAILED */
  async diff(fromId: string, toId: string): Promise<SnapshotDiffResponse> {
    const [from, to] = await Promise.all([this.requireCompleted(fromId), this.requireCompleted(toId)]);
    for (const [field, b] of [
      ['id', from],
      ['otherId', to],
    ] as const) {
      if (!b.fileIndex) {
        throw DrError.validation([{ field, message: `backup ${b.id} (${b.engine}) has no file index; diff needs configuration snapshots` }]);
      }
    }
    const before = new Map(from.fileIndex!.filter((f) => f.type !== 'directory').map((f) => [f.path, f]));
    const after = new Map(to.fileIndex!.filter((f) => f.type !== 'directory').map((f) => [f.path, f]));
    const added = [...after.keys()].filter((p) => !before.has(p)).sort();
    const removed = [...before.keys()].filter((p) => !after.has(p)).sort();
    const changed: SnapshotDiffResponse['changed'] = [];
    let unchanged = 0;
    for (const [path, a] of after) {
      const b = before.get(path);
      if (!b) continue;
      if (b.sha256 !== a.sha256 || b.mode !== a.mode || b.linkTarget !== a.linkTarget) {
        changed.push({
          path,
          before: { sha256: b.sha256, mode: b.mode, sizeBytes: b.sizeBytes },
          after: { sha256: a.sha256, mode: a.mode, sizeBytes: a.sizeBytes },
        });
      } else unchanged++;
    }
    changed.sort((x, y) => x.path.localeCompare(y.path));
    return { from: from.id, to: to.id, added, removed, changed, unchanged };
  }
}

/** JSON with object keys sorted, to compare two sources whatever their key order. */
function stableJson(value: unknown): string {
  return JSON.stringify(value, (_key, v: unknown) =>
    v && typeof v === 'object' && !Array.isArray(v) ? Object.fromEntries(Object.entries(v).sort(([a], [b]) => (a < b ? -1 : 1))) : v,
  );
}
