import { createReadStream } from 'node:fs';
import { createInterface } from 'node:readline';
import { Readable } from 'node:stream';
import { Injectable } from '@nestjs/common';
import type { BackupEngine, EngineBackupResult } from '../engines/backup-engine';
import { FileIndex } from '../engines/file-index';
import { AgeDecryptionKeys, AgeEncryptionKey } from '../pipeline/age-encryption';
import { ArtifactPipeline } from '../pipeline/artifact-pipeline';
import { ManifestSignature, ManifestSigner, SignatureCheck } from '../pipeline/manifest-signer';
import { ArtifactManifest, BackupDetailsHeader, StoredObject } from '../pipeline/manifest';
import { FileIndexEntry } from '../engines/file-index-entry';
import { StorageDriver, UploadOptions } from '../storage/drivers/storage-driver';
import type { BackupEntity } from './backup.entity';

/** Storage keys of a backup's objects, all under `<backupId>/`. */
export interface BackupKeys {
  prefix: string;
  /** `artifact.<ext>.zst`, plus `.age` when encrypted. */
  artifactKey: string;
  /** `details.jsonl.zst`, plus `.age` when encrypted. */
  detailsKey: string;
  manifestKey: string;
  /** `deletions.nul.zst`, plus `.age` when encrypted: an incremental's deletion list (NUL-separated paths). */
  deletionsKey: string;
  /** `moves.nul.zst`, plus `.age` when encrypted: an incremental's move list (NUL-separated pairs `from\0to\0`). */
  movesKey: string;
  /** `globals.sql.zst`, plus `.age` when encrypted: what a database needs from its server (roles), as SQL. */
  globalsKey: string;
  /** `manifest.sig`, written last: a backup whose signature is missing is not complete. */
  signatureKey: string;
}

/** The keys of backup `backupId`'s objects. `extension` is the engine's (`pgdump`, `tar`). */
export function backupKeys(backupId: string, extension: string, encrypted: boolean): BackupKeys {
  const age = encrypted ? '.age' : '';
  return {
    prefix: `${backupId}/`,
    artifactKey: `${backupId}/artifact.${extension}.zst${age}`,
    detailsKey: `${backupId}/details.jsonl.zst${age}`,
    manifestKey: `${backupId}/manifest.json`,
    deletionsKey: `${backupId}/deletions.nul.zst${age}`,
    movesKey: `${backupId}/moves.nul.zst${age}`,
    globalsKey: `${backupId}/globals.sql.zst${age}`,
    signatureKey: `${backupId}/manifest.sig`,
  };
}

/** The signature key that goes with a manifest key. */
export function signatureKeyOf(manifestKey: string): string {
  return manifestKey.replace(/manifest\.json$/, 'manifest.sig');
}

/** Raised when `manifest.json` is not JSON; carries what its signature check said. */
export class ManifestParseError extends Error {
  constructor(
    message: string,
    readonly signature: SignatureCheck,
  ) {
    super(message);
  }
}

/** A manifest as read back from storage, with its exact bytes and what its signature says. */
export interface ReadManifest {
  manifest: ArtifactManifest;
  bytes: Buffer;
  signature: SignatureCheck;
}

/**
 * Writes and reads the objects around an artifact: the details object (JSON lines: a {@link BackupDetailsHeader}
 * then the file index), `manifest.json` and its detached signature `manifest.sig`. Format: docs/artifact-format.md.
 */
@Injectable()
export class BackupObjects {
  constructor(
    private readonly pipeline: ArtifactPipeline,
    private readonly signer: ManifestSigner,
  ) {}

  /**
   * Writes what a backup stores besides its artifact: the details object (header, then the file index) and, for an
   * incremental, its deletion and move lists (written, and fsynced, together), then the globals object; each
   * compressed and encrypted like the artifact. @returns every object of the backup, the artifact first.
   */
  async writeAll(
    driver: StorageDriver,
    keys: BackupKeys,
    backup: BackupEntity,
    engine: BackupEngine,
    artifact: StoredObject,
    result: EngineBackupResult,
    options: { tools: Record<string, string>; warnings: string[]; encryption: AgeEncryptionKey | null; uploadOptions: { retainUntil?: Date } },
  ): Promise<StoredObject[]> {
    const { encryption, uploadOptions } = options;
    const lists = result.incremental
      ? Promise.allSettled([
          this.writeList(driver, keys.deletionsKey, 'deletions', result.incremental.deletionsPath, encryption, uploadOptions),
          this.writeList(driver, keys.movesKey, 'moves', result.incremental.movesPath, encryption, uploadOptions),
        ]).then((settled) =>
          settled.map((s) => {
            if (s.status === 'rejected') throw s.reason;
            return s.value;
          }),
        )
      : undefined;
    lists?.catch(() => undefined); // awaited below (also when the details fail, before the cleanup removes them)
    const details = await this.writeDetails(
      driver,
      keys.detailsKey,
      {
        kind: 'dr-backup-details',
        backupId: backup.id,
        engine: engine.name,
        source: backup.source,
        tools: { ...options.tools, ...result.tools, zstd: 'libzstd (zstd-napi)', ...(encryption ? { age: 'age-encryption (typage)' } : {}) },
        warnings: options.warnings,
        ...(result.files ? { fileCount: result.files.count } : {}),
        ...(result.tables ? { tables: result.tables } : {}),
        ...(result.walRange ? { walRange: result.walRange } : {}),
        ...(result.indexOrder ? { indexOrder: result.indexOrder } : {}),
        ...(engine.supportsIncremental ? { backupType: backup.backupType } : {}),
        ...(result.incremental && backup.parentId && backup.fullBackupId
          ? {
              incremental: {
                parentId: backup.parentId,
                fullBackupId: backup.fullBackupId,
                archived: result.incremental.archived,
                touchedDirectories: result.incremental.touchedDirectories,
                deleted: result.incremental.deleted,
                moved: result.incremental.moved,
              },
            }
          : {}),
      },
      result.files,
      encryption,
      uploadOptions,
    ).catch(async (error: Error) => {
      await lists?.catch(() => undefined);
      throw error;
    });
    const objects = [artifact, details];
    if (lists) objects.push(...(await lists));
    if (result.globalsPath) objects.push(await this.writeList(driver, keys.globalsKey, 'globals', result.globalsPath, encryption, uploadOptions));
    return objects;
  }

  /** Deletes every object a backup may have published, the signature and manifest first (nothing left looks complete). */
  async deleteAll(driver: StorageDriver, keys: BackupKeys, onError: (key: string, error: Error) => void): Promise<void> {
    for (const key of [keys.signatureKey, keys.manifestKey, keys.globalsKey, keys.deletionsKey, keys.movesKey, keys.detailsKey, keys.artifactKey]) {
      await driver.delete(key).catch((e: Error) => onError(key, e));
    }
  }

  /**
   * Streams the details object (header line, then one line per indexed member) through the pipeline, compressed
   * and encrypted like the artifact, and publishes it.
   * @returns its description for the manifest.
   */
  async writeDetails(
    driver: StorageDriver,
    key: string,
    header: BackupDetailsHeader,
    files: FileIndex | undefined,
    encryption: AgeEncryptionKey | null,
    upload: UploadOptions,
  ): Promise<StoredObject> {
    const lines = Readable.from(detailsLines(header, files), { objectMode: false });
    const staged = await driver.createUpload(key, upload);
    try {
      const stored = await this.pipeline.store(lines, staged.stream, { encryption });
      await staged.publish();
      return {
        key,
        role: 'details',
        contentType: 'application/x-ndjson',
        rawSizeBytes: stored.sizeBytes,
        sizeBytes: stored.storedBytes,
        sha256: stored.sha256,
      };
    } catch (error) {
      await staged.abort().catch(() => undefined);
      throw error;
    }
  }

  /**
   * Streams a scratch file through the pipeline, compressed and encrypted like the artifact, and publishes it
   * under `key`: an incremental's deletion list (NUL-separated index paths) or move list (pairs `from\0to\0`),
   * or a database's globals (SQL, `application/sql`).
   * @returns its description for the manifest (role `role`).
   * @throws the storage or pipeline error (the staged upload aborted).
   */
  async writeList(
    driver: StorageDriver,
    key: string,
    role: 'deletions' | 'moves' | 'globals',
    listPath: string,
    encryption: AgeEncryptionKey | null,
    upload: UploadOptions,
  ): Promise<StoredObject> {
    const staged = await driver.createUpload(key, upload);
    try {
      const stored = await this.pipeline.store(createReadStream(listPath, { highWaterMark: 1 << 20 }), staged.stream, { encryption });
      await staged.publish();
      return {
        key,
        role,
        contentType: role === 'globals' ? 'application/sql' : 'application/octet-stream',
        rawSizeBytes: stored.sizeBytes,
        sizeBytes: stored.storedBytes,
        sha256: stored.sha256,
      };
    } catch (error) {
      await staged.abort().catch(() => undefined);
      throw error;
    }
  }

  /**
   * Publishes `manifest.json`, then its signature: the backup is complete from that moment.
   * @returns the id of the key that signed it.
   */
  async publishManifest(driver: StorageDriver, keys: BackupKeys, manifest: ArtifactManifest, upload: UploadOptions): Promise<string> {
    const bytes = Buffer.from(`${JSON.stringify(manifest, null, 2)}\n`);
    const signature = this.signer.sign(bytes);
    await driver.putObject(keys.manifestKey, bytes, upload);
    await driver.putObject(keys.signatureKey, Buffer.from(`${JSON.stringify(signature, null, 2)}\n`), upload);
    return signature.keyId;
  }

  /**
   * Reads `manifest.json` and `manifest.sig` and checks the signature over the manifest's raw bytes (before
   * parsing them) against the trusted keys.
   * @throws ObjectNotFoundError when the manifest is missing; ManifestParseError (with the signature check) when
   *   its bytes are not JSON.
   */
  async readManifest(driver: StorageDriver, manifestKey: string): Promise<ReadManifest> {
    const bytes = await driver.readObject(manifestKey);
    let signature: SignatureCheck;
    try {
      const sig = JSON.parse((await driver.readObject(signatureKeyOf(manifestKey))).toString('utf8')) as ManifestSignature;
      signature = this.signer.check(bytes, sig);
    } catch (error) {
      signature = { ok: false, reason: `${signatureKeyOf(manifestKey)} cannot be read: ${(error as Error).message}` };
    }
    let manifest: ArtifactManifest;
    try {
      manifest = JSON.parse(bytes.toString('utf8')) as ArtifactManifest;
    } catch (error) {
      throw new ManifestParseError(`${manifestKey} is not JSON: ${(error as Error).message}`, signature);
    }
    return { manifest, bytes, signature };
  }

  /**
   * Reads the details object: its header, then the file index entry by entry (streamed, decrypted and checked
   * against its SHA-256 as it is read).
   */
  async readDetails(
    driver: StorageDriver,
    object: StoredObject,
    decryption: AgeDecryptionKeys | null,
  ): Promise<{ header: BackupDetailsHeader; files: AsyncIterable<FileIndexEntry> }> {
    const raw = await this.pipeline.openRaw(await driver.read(object.key), object.key, object.sha256, { decryption });
    const lines = createInterface({ input: raw, crlfDelay: Infinity })[Symbol.asyncIterator]();
    const first = await lines.next();
    if (first.done) throw new Error(`${object.key} is empty`);
    const header = JSON.parse(first.value) as BackupDetailsHeader;
    async function* files(): AsyncIterable<FileIndexEntry> {
      for (let next = await lines.next(); !next.done; next = await lines.next()) {
        if (next.value) yield JSON.parse(next.value) as FileIndexEntry;
      }
    }
    return { header, files: files() };
  }
}

/** The details object's lines: the header, then the index (bytes, in blocks of about 64 KiB), one JSON object a line. */
async function* detailsLines(header: BackupDetailsHeader, files: FileIndex | undefined): AsyncIterable<Buffer> {
  yield Buffer.from(`${JSON.stringify(header)}\n`);
  if (!files) return;
  if (files.lines) {
    // already JSON lines (a spooled index): the same bytes, without parsing and writing each entry again
    yield* files.lines();
    return;
  }
  let block = '';
  for await (const entry of files.entries()) {
    block += `${JSON.stringify(entry)}\n`;
    if (block.length >= 65536) {
      yield Buffer.from(block);
      block = '';
    }
  }
  if (block) yield Buffer.from(block);
}
