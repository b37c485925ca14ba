import { Injectable } from '@nestjs/common';
import { InjectRepository } from '@nestjs/typeorm';
import { Readable } from 'node:stream';
import { Repository } from 'typeorm';
import { ChainMember } from '../engines/backup-engine';
import { ArtifactPipeline } from '../pipeline/artifact-pipeline';
import { BackupEncryption } from '../pipeline/backup-encryption';
import { StoredObject, StoredObjectRole } from '../pipeline/manifest';
import { StorageLocationsService } from '../storage/storage-locations.service';
import { StorageDriver } from '../storage/drivers/storage-driver';
import { BackupObjects } from './backup-objects';
import { JobStatus } from '../jobs/job-status';
import { BackupEntity } from './backup.entity';

/** How {@link BackupChains.open} reads the members. */
export interface ChainReadOptions {
  /** Read every member from this location (its copies) instead of each member's primary location. */
  storageLocationId?: string | null;
  /** Read a member whose manifest signature does not verify (a warning is added) instead of failing. */
  trustUnsignedManifest: boolean;
  /** Warnings of the read, appended to. */
  warnings: string[];
  /** Called with the stored bytes read by each object opened (a delta). */
  onRead?: (bytes: number) => void;
  /** Called with the raw (decompressed) bytes of each artifact as the restore takes them (a delta). */
  onRaw?: (bytes: number) => void;
}

/**
 * The chain of an incremental backup: its full, then each incremental up to it, following `parentId`. Each
 * member is opened like a single backup's restore: manifest read and its signature checked, the object checked
 * against the manifest, then read through size and SHA-256 check → age → zstd. The same manifest checks serve a
 * single backup's restore ({@link checkedObject}).
 */
@Injectable()
export class BackupChains {
  constructor(
    @InjectRepository(BackupEntity) private readonly backups: Repository<BackupEntity>,
    private readonly locations: StorageLocationsService,
    private readonly pipeline: ArtifactPipeline,
    private readonly objects: BackupObjects,
    private readonly encryption: BackupEncryption,
  ) {}

  /**
   * The records of `backup`'s chain, full first (just `backup` for a full).
   * @throws Error naming the member whose record is missing or not COMPLETED (deleted, failed).
   */
  async chainOf(backup: BackupEntity): Promise<BackupEntity[]> {
    const chain = [backup];
    for (let current = backup; current.backupType === 'INCREMENTAL';) {
      const parent = await this.backups.findOneBy({ id: current.parentId! });
      if (!parent) throw new Error(`chain member ${current.parentId} (parent of ${current.id}) is missing: no such backup`);
      if (parent.status !== JobStatus.COMPLETED) {
        throw new Error(
          `chain member ${parent.id} (parent of ${current.id}) is ${parent.status}, not COMPLETED${parent.deletionReason ? ` (${parent.deletionReason})` : ''}`,
        );
      }
      if (chain.length > 100_000) throw new Error(`the chain of backup ${backup.id} does not end in a full backup`);
      chain.unshift(parent);
      current = parent;
    }
    return chain;
  }

  /**
   * Checks every member of `chain` before anything is read: each manifest's signature (a member whose signature
   * does not verify is refused unless `trustUnsignedManifest`, then a warning names it) and that it lists each
   * object the member's record names, with the same key, size and SHA-256.
   * @throws Error naming the member and what failed.
   */
  async checkManifests(chain: BackupEntity[], options: ChainReadOptions): Promise<void> {
    for (const backup of chain) {
      const driver = await this.driverOf(backup, options);
      for (const role of rolesOf(backup)) {
        await this.checkedObject(backup, role, driver, {
          trustUnsignedManifest: options.trustUnsignedManifest,
          warnings: role === 'artifact' ? options.warnings : [],
        });
      }
    }
  }

  /**
   * The `role` object of `backup` as its record names it, once its manifest has been read from `driver`, the
   * manifest's signature checked against the trusted keys, and the manifest found to list the object with the same
   * key, stored size and SHA-256 (so what is then read is proven against the signed manifest).
   * @throws Error when the signature does not verify (unless `trustUnsignedManifest`: then a warning is added), or
   *   the record and the manifest disagree.
   */
  async checkedObject(
    backup: BackupEntity,
    role: StoredObjectRole,
    driver: StorageDriver,
    options: Pick<ChainReadOptions, 'trustUnsignedManifest' | 'warnings'>,
  ): Promise<StoredObject> {
    const object: StoredObject | undefined = backup.objects.find((o) => o.role === role);
    if (!object) throw new Error(`backup ${backup.id} has no ${role} object`);
    const { manifest, signature } = await this.objects.readManifest(driver, backup.manifestKey!);
    if (!signature.ok) {
      if (!options.trustUnsignedManifest) {
        throw new Error(
          `the manifest's signature of backup ${backup.id} does not verify (${signature.reason}); restore refused (set "trustUnsignedManifest": true to restore anyway)`,
        );
      }
      options.warnings.push(`backup ${backup.id} restored although its manifest's signature does not verify: ${signature.reason}`);
    }
    const listed = manifest.objects?.find((o) => o.role === role);
    if (!listed || listed.key !== object.key || listed.sha256 !== object.sha256 || listed.sizeBytes !== object.sizeBytes) {
      throw new Error(`manifest ${backup.manifestKey} does not describe the ${role} object the backup record names`);
    }
    return object;
  }

  /** The chain's members, each opened when the restore reaches it. */
  open(chain: BackupEntity[], options: ChainReadOptions): ChainMember[] {
    return chain.map((backup) => ({
      backupId: backup.id,
      type: backup.backupType,
      openArtifact: async () => (await this.openObject(backup, 'artifact', options))!,
      openDeletions: () => (backup.backupType === 'INCREMENTAL' ? this.openObject(backup, 'deletions', options) : Promise.resolve(null)),
      // incrementals made before move detection have no move list
      openMoves: () =>
        backup.backupType === 'INCREMENTAL' && backup.objects.some((o) => o.role === 'moves')
          ? this.openObject(backup, 'moves', options)
          : Promise.resolve(null),
    }));
  }

  /**
   * Opens one object of a member after {@link checkedObject}'s checks (again: the manifest may have changed since
   * {@link checkManifests}), read through size and SHA-256 check → age → zstd.
   * @throws Error when any check fails or the object cannot be read
   */
  private async openObject(backup: BackupEntity, role: StoredObjectRole, options: ChainReadOptions): Promise<Readable | null> {
    const driver = await this.driverOf(backup, options);
    const object = await this.checkedObject(backup, role, driver, { trustUnsignedManifest: options.trustUnsignedManifest, warnings: [] });
    const decryption = await this.encryption.decryptionKeys(backup.encryption);
    let read = 0;
    let taken = 0;
    const onRaw = role === 'artifact' ? options.onRaw : undefined;
    return this.pipeline.openRaw(await driver.read(object.key), object.key, object.sha256, {
      decryption,
      expectedSize: object.sizeBytes,
      onProgress: (n) => {
        options.onRead?.(n - read);
        read = n;
      },
      onRawProgress: onRaw
        ? (n) => {
            onRaw(n - taken);
            taken = n;
          }
        : undefined,
    });
  }

  private async driverOf(backup: BackupEntity, options: Pick<ChainReadOptions, 'storageLocationId'>): Promise<StorageDriver> {
    return this.locations.driverFor(await this.locations.get(options.storageLocationId ?? backup.storageLocationId));
  }
}

/** The objects a chain restore reads of a member. */
function rolesOf(backup: BackupEntity): StoredObjectRole[] {
  if (backup.backupType !== 'INCREMENTAL') return ['artifact'];
  return backup.objects.some((o) => o.role === 'moves') ? ['moves', 'deletions', 'artifact'] : ['deletions', 'artifact'];
}
