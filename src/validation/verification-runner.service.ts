import { BeforeApplicationShutdown, Injectable, Logger, OnApplicationBootstrap } from '@nestjs/common';
import { InjectRepository } from '@nestjs/typeorm';
import { plainToInstance } from 'class-transformer';
import { Repository } from 'typeorm';
import { BackupChains } from '../backup/backup-chain';
import { BackupObjects, ManifestParseError } from '../backup/backup-objects';
import type { BackupEntity } from '../backup/backup.entity';
import { BackupsService } from '../backup/backups.service';
import { AppConfig } from '../config/app-config';
import { RecordedContent } from '../engines/backup-engine';
import { EngineRegistry } from '../engines/engine-registry';
import { DrError } from '../errors/dr-error';
import { describeError } from '../jobs/background-jobs';
import { JobLifecycle, JobLifecycles } from '../jobs/job-lifecycle';
import { JobStatus } from '../jobs/job-status';
import { ArtifactPipeline } from '../pipeline/artifact-pipeline';
import { BackupEncryption } from '../pipeline/backup-encryption';
import { StoredObject } from '../pipeline/manifest';
import { StorageDriver } from '../storage/drivers/storage-driver';
import { StorageLocationsService } from '../storage/storage-locations.service';
import { VerificationCompletedEvent, VerificationFailedEvent } from './verification.events';
import { VerificationEntity } from './verification.entity';

/**
 * Runs verifications. Every mode checks the manifest's signature against the trusted keys, the manifest against
 * the backup record, and every object (re-read and hashed: size and SHA-256). `restore` mode then restores the
 * artifact into a scratch target and compares it with what the backup recorded (the file index, the table
 * digests). Differences found are the verification's `problems` (`ok: false`); a verification that cannot run at
 * all (no key to decrypt, the scratch server unreachable) is FAILED with the reason.
 */
@Injectable()
export class VerificationRunner implements OnApplicationBootstrap, BeforeApplicationShutdown {
  private readonly logger = new Logger(VerificationRunner.name);
  private readonly lifecycle: JobLifecycle<VerificationEntity>;

  constructor(
    @InjectRepository(VerificationEntity) verifications: Repository<VerificationEntity>,
    private readonly backups: BackupsService,
    private readonly engines: EngineRegistry,
    private readonly locations: StorageLocationsService,
    private readonly pipeline: ArtifactPipeline,
    private readonly objects: BackupObjects,
    private readonly chains: BackupChains,
    private readonly encryption: BackupEncryption,
    private readonly config: AppConfig,
    lifecycles: JobLifecycles,
  ) {
    this.lifecycle = lifecycles.for(
      {
        kind: 'verification',
        auditTargetType: 'verifications',
        repository: verifications,
        heartbeatMs: 1000,
        recordsDuration: true,
        outcomeEvent: (verification, end) =>
          end.status === JobStatus.COMPLETED ? new VerificationCompletedEvent(verification) : new VerificationFailedEvent(verification, end),
      },
      this.logger,
    );
  }

  /**
   * Reaps the jobs of processes that died, now and every half lease; then, once, removes the scratch trees
   * (`verify-<id>`) of verifications that have ended.
   */
  async onApplicationBootstrap(): Promise<void> {
    await this.lifecycle.bootstrap(async (v) => ({ backupId: v.backupId, mode: v.mode }), true);
  }

  /**
   * Starts a PENDING verification; {@link VERIFICATION_COMPLETED} or {@link VERIFICATION_FAILED} follows its recorded
   * outcome. @returns a promise that settles when it has finished (never rejects).
   */
  start(verificationId: string, storageLocationId: string | null): Promise<void> {
    let bytesRead = 0;
    return this.lifecycle.start(verificationId, {
      progress: () => ({ bytesRead }),
      perform: async (verification, signal) => {
        const backup = await this.backups.get(verification.backupId);
        const location = await this.locations.get(storageLocationId ?? backup.storageLocationId);
        const driver = this.locations.driverFor(location);
        const problems: string[] = [];
        const details: Record<string, unknown> = { location: location.name };
        const intact = await this.checkObjects(backup, driver, problems, details, (n) => (bytesRead += n));
        if (verification.mode === 'restore') {
          if (!intact) problems.push('restore not attempted: the artifact failed its checks above');
          else details.restore = await this.checkRestore(verification.id, backup, driver, problems, signal, storageLocationId);
        }
        const outcome = problems.length ? `${problems.length} problem(s): ${problems[0]}` : 'ok';
        return {
          fields: { ok: problems.length === 0, problems, details, bytesRead },
          outcome: problems.length ? 'FAILURE' : 'SUCCESS',
          details: { backupId: backup.id, mode: verification.mode, ok: problems.length === 0, problems: problems.length },
          log: `verification ${verification.id} (${verification.mode}) of backup ${backup.id}: ${outcome}`,
        };
      },
      failed: async (verification) => ({ fields: { bytesRead }, details: { backupId: verification.backupId, mode: verification.mode } }),
    });
  }

  /**
   * The signature, the manifest against the record, and every object's size and SHA-256.
   * @returns whether the artifact itself is intact (a restore can be tried).
   */
  private async checkObjects(
    backup: BackupEntity,
    driver: StorageDriver,
    problems: string[],
    details: Record<string, unknown>,
    onRead: (bytes: number) => void,
  ): Promise<boolean> {
    const manifestKey = backup.manifestKey!;
    try {
      const { manifest, signature } = await this.objects.readManifest(driver, manifestKey);
      if (signature.ok) details.signedBy = signature.keyId;
      else problems.push(`manifest ${manifestKey}: signature not valid: ${signature.reason}`);
      if (manifest.backupId !== backup.id) problems.push(`manifest ${manifestKey} belongs to backup ${manifest.backupId}`);
      const listed = new Map((manifest.objects ?? []).map((o) => [o.key, o]));
      for (const object of backup.objects) {
        const inManifest = listed.get(object.key);
        if (!inManifest) problems.push(`manifest ${manifestKey} does not list ${object.key}`);
        else if (inManifest.sha256 !== object.sha256 || inManifest.sizeBytes !== object.sizeBytes) {
          problems.push(
            `manifest ${manifestKey} records ${object.key} as ${inManifest.sizeBytes} bytes sha256 ${inManifest.sha256}, the backup record ${object.sizeBytes} bytes sha256 ${object.sha256}`,
          );
        }
        listed.delete(object.key);
      }
      for (const key of listed.keys()) problems.push(`manifest ${manifestKey} lists ${key}, which the backup record does not`);
    } catch (error) {
      if (error instanceof ManifestParseError && !error.signature.ok) {
        problems.push(`manifest ${manifestKey}: signature not valid: ${error.signature.reason}`);
      }
      problems.push(`manifest ${manifestKey} is missing or unreadable: ${(error as Error).message}`);
    }
    let artifactIntact = true;
    for (const object of backup.objects) {
      const problem = await this.checkObject(driver, object, onRead);
      if (problem) {
        problems.push(problem);
        artifactIntact = false; // every role is needed by a restore (artifact, details, lists, globals)
      }
    }
    details.objects = backup.objects.length;
    return artifactIntact;
  }

  /** Re-reads one object and compares size and SHA-256 with the record. @returns the problem, or null */
  private async checkObject(driver: StorageDriver, object: StoredObject, onRead: (bytes: number) => void): Promise<string | null> {
    const stat = await driver.stat(object.key);
    if (!stat) return `${object.key} (${object.role}) is missing`;
    const { bytes, sha256 } = await this.pipeline.digest(await driver.read(object.key));
    onRead(bytes);
    if (bytes !== object.sizeBytes) return `${object.key} (${object.role}) holds ${bytes} bytes, recorded ${object.sizeBytes}`;
    if (sha256 !== object.sha256) return `${object.key} (${object.role}) has sha256 ${sha256}, recorded ${object.sha256}`;
    return null;
  }

  /** Restores into the engine's scratch target and compares with what was recorded. */
  private async checkRestore(
    verificationId: string,
    backup: BackupEntity,
    driver: StorageDriver,
    problems: string[],
    signal: AbortSignal,
    storageLocationId: string | null = null,
  ): Promise<Record<string, unknown>> {
    const engine = this.engines.get(backup.engine);
    const decryption = await this.encryption.decryptionKeys(backup.encryption);
    const artifact = backup.objects.find((o) => o.role === 'artifact')!;
    const recorded: RecordedContent = { tables: backup.tables ?? undefined };
    const detailsObject = backup.objects.find((o) => o.role === 'details');
    if (detailsObject && backup.fileCount !== null) {
      recorded.files = (await this.objects.readDetails(driver, detailsObject, decryption)).files;
    }
    const source = plainToInstance(engine.sourceClass, backup.source);
    const context = { signal, runId: verificationId, scratchDir: this.config.scratchDir };
    if (backup.backupType === 'INCREMENTAL' && engine.verifyChainRestore) {
      // an incremental restores from its chain: full, then each incremental; a missing or corrupt member is a problem
      try {
        const warnings: string[] = [];
        const chain = await this.chains.chainOf(backup);
        const members = this.chains.open(chain, { storageLocationId, trustUnsignedManifest: false, warnings });
        const check = await engine.verifyChainRestore(members, recorded, context);
        problems.push(...check.problems);
        return { ...check.checked, chain: chain.map((b) => b.id), scratchTarget: check.scratchTarget };
      } catch (error) {
        if (error instanceof DrError || signal.aborted) throw error;
        problems.push(`restore of the chain into a scratch target failed: ${describeError(error)}`);
        return {};
      }
    }
    try {
      const raw = await this.pipeline.openRaw(await driver.read(artifact.key), artifact.key, artifact.sha256, { decryption, expectedSize: artifact.sizeBytes });
      const check = await engine.verifyRestore(source, raw, recorded, { signal, runId: verificationId, scratchDir: this.config.scratchDir });
      problems.push(...check.problems);
      return { ...check.checked, scratchTarget: check.scratchTarget };
    } catch (error) {
      if (error instanceof DrError || signal.aborted) throw error; // cannot verify (configuration), or shutdown
      problems.push(`restore into a scratch target failed: ${describeError(error)}`);
      return {};
    }
  }

  /** Marks FAILED the verifications whose process died. @returns their ids */
  reapStale(): Promise<string[]> {
    return this.lifecycle.reapStale(async (v) => ({ backupId: v.backupId, mode: v.mode }));
  }

  /** The promise of a verification's end, if it runs in this process. */
  finished(id: string): Promise<void> | undefined {
    return this.lifecycle.finished(id);
  }

  async beforeApplicationShutdown(): Promise<void> {
    await this.lifecycle.shutdown();
  }
}
