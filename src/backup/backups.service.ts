import { Injectable } from '@nestjs/common';
import { isUUID as isUuid } from 'class-validator';
import { InjectRepository } from '@nestjs/typeorm';
import { FindOptionsWhere, Repository } from 'typeorm';
import { validateNested } from '../errors/validation';
import { DrError } from '../errors/dr-error';
import { EngineRegistry } from '../engines/engine-registry';
import { ArtifactPipeline } from '../pipeline/artifact-pipeline';
import { ArtifactManifest } from '../pipeline/manifest';
import { StorageLocationsService } from '../storage/storage-locations.service';
import { BackupPlanEntity } from './backup-plan.entity';
import { BackupRunner } from './backup-runner.service';
import { BackupTrigger, JobStatus } from './backup-status';
import { BackupEntity } from './backup.entity';
import { CreateBackupDto, ListBackupsQuery, Page, SnapshotDiffResponse } from './dto/backup.dto';
import { VerificationEntity } from './verification.entity';

/** Backup records: creating (on demand or from a plan), reading, listing, verifying and diffing backups. */
@Injectable()
export class BackupsService {
  constructor(
    @InjectRepository(BackupEntity) private readonly backups: Repository<BackupEntity>,
    @InjectRepository(BackupPlanEntity) private readonly plans: Repository<BackupPlanEntity>,
    @InjectRepository(VerificationEntity) private readonly verifications: Repository<VerificationEntity>,
    private readonly engines: EngineRegistry,
    private readonly locations: StorageLocationsService,
    private readonly runner: BackupRunner,
    private readonly pipeline: ArtifactPipeline,
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
      return this.createFromPlan(plan, 'MANUAL', createdBy);
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
        status: JobStatus.PENDING,
        trigger: 'MANUAL',
        createdBy,
      }),
    );
    void this.runner.start(backup.id);
    return backup;
  }

  /** Records and starts a backup of `plan`. @throws DrError PLAN_BUSY when one of its backups is still running */
  async createFromPlan(plan: BackupPlanEntity, trigger: BackupTrigger, createdBy: string | null): Promise<BackupEntity> {
    const busy = await this.backups.existsBy({ planId: plan.id, status: JobStatus.RUNNING });
    if (busy) throw new DrError('PLAN_BUSY', `a backup of plan "${plan.name}" is still running`);
    const backup = await this.backups.save(
      this.backups.create({
        planId: plan.id,
        engine: plan.engine,
        source: plan.source,
        storageLocationId: plan.storageLocationId,
        status: JobStatus.PENDING,
        trigger,
        createdBy,
      }),
    );
    void this.runner.start(backup.id);
    return backup;
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

  /** The published manifest of a completed backup, read from storage. @throws DrError NOT_FOUND, BACKUP_NOT_RESTORABLE */
  async manifest(id: string): Promise<ArtifactManifest> {
    const backup = await this.requireCompleted(id);
    const driver = this.locations.driverFor(await this.locations.get(backup.storageLocationId));
    try {
      return JSON.parse((await driver.readObject(backup.manifestKey!)).toString('utf8')) as ArtifactManifest;
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
   * Re-reads the stored artifact, checks its size and SHA-256 against the record, and checks that the manifest
   * exists and agrees with the record. The outcome is recorded. @throws DrError NOT_FOUND, BACKUP_NOT_RESTORABLE
   */
  async verify(id: string, createdBy: string | null): Promise<VerificationEntity> {
    const backup = await this.requireCompleted(id);
    const driver = this.locations.driverFor(await this.locations.get(backup.storageLocationId));
    const started = Date.now();
    const problems: string[] = [];
    let bytesRead = 0;
    const artifactKey = backup.artifactKey!;
    const manifestKey = backup.manifestKey!;
    const stat = await driver.stat(artifactKey);
    if (!stat) {
      problems.push(`artifact ${artifactKey} is missing`);
    } else {
      const { bytes, sha256 } = await this.pipeline.digest(await driver.read(artifactKey));
      bytesRead = bytes;
      if (bytes !== backup.storedBytes) problems.push(`artifact ${artifactKey} holds ${bytes} bytes, expected ${backup.storedBytes}`);
      if (sha256 !== backup.sha256) problems.push(`artifact ${artifactKey} has sha256 ${sha256}, expected ${backup.sha256}`);
    }
    let manifest: ArtifactManifest | undefined;
    try {
      manifest = JSON.parse((await driver.readObject(manifestKey)).toString('utf8')) as ArtifactManifest;
    } catch (error) {
      problems.push(`manifest ${manifestKey} is missing or unreadable: ${(error as Error).message}`);
    }
    if (manifest) {
      if (manifest.backupId !== backup.id) problems.push(`manifest ${manifestKey} belongs to backup ${manifest.backupId}`);
      if (manifest.artifact?.sha256 !== backup.sha256) problems.push(`manifest ${manifestKey} records sha256 ${manifest.artifact?.sha256}, the record ${backup.sha256}`);
      if (manifest.artifact?.storedBytes !== backup.storedBytes) problems.push(`manifest ${manifestKey} records ${manifest.artifact?.storedBytes} stored bytes, the record ${backup.storedBytes}`);
      if (manifest.artifact?.key !== artifactKey) problems.push(`manifest ${manifestKey} names artifact ${manifest.artifact?.key}, the record ${artifactKey}`);
    }
    return this.verifications.save(
      this.verifications.create({
        backupId: backup.id,
        mode: 'checksum',
        ok: problems.length === 0,
        problems,
        bytesRead,
        durationMs: Date.now() - started,
        createdBy,
      }),
    );
  }

  /** Compares the file indexes of two configuration snapshots. @throws DrError NOT_FOUND, VALIDATION_FAILED */
  async diff(fromId: string, toId: string): Promise<SnapshotDiffResponse> {
    const [from, to] = await Promise.all([this.requireCompleted(fromId), this.requireCompleted(toId)]);
    for (const [field, b] of [['id', from], ['otherId', to]] as const) {
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
