import { createHash } from 'node:crypto';
import { createReadStream, createWriteStream } from 'node:fs';
import { rename, rm } from 'node:fs/promises';
import { basename, dirname, join } from 'node:path';
import { Readable, Transform, TransformCallback } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import type { AgeDecryptionKeys, AgeEncryptionKey } from '../pipeline/age-encryption';
import { decompress, verifiedBytes, ZstdCompressStream } from '../pipeline/zstd-streams';
import { ObjectNotFoundError, ObjectStat, StorageDriver } from '../storage/storage-driver';
import { parseWalFileName, WalFileName } from './wal-names';
import { InvalidWalFileNameError, WalConflictError, WalFileNotArchivedError } from './wal-errors';
import { sha256OfFile } from './wal-spool';

/** Format name of a WAL file's commit record. */
export const WAL_RECORD_FORMAT = 'dr-wal-file';

/**
 * The commit record of one archived WAL file, stored as `<prefix>/<timeline>/<file>.json` after the data object.
 * A WAL file is archived exactly when its record exists: wal-fetch reads the record first, so a data object
 * without a record (a push that died before its end) is invisible and overwritten by the next push.
 */
export interface WalFileRecord {
  format: typeof WAL_RECORD_FORMAT;
  formatVersion: 1;
  /** The WAL file name (`%f`). */
  name: string;
  kind: WalFileName['kind'];
  timeline: number;
  /** Size (bytes) and SHA-256 (hex) of the raw file as PostgreSQL handed it over. */
  rawBytes: number;
  rawSha256: string;
  /** Key, size (bytes) and SHA-256 of the stored object (zstd, then age when encrypted). */
  storedKey: string;
  storedBytes: number;
  storedSha256: string;
  compression: 'zstd';
  encrypted: boolean;
  /** ISO 8601 time at which the push published the object. */
  pushedAt: string;
}

export { InvalidWalFileNameError, WalConflictError, WalFileNotArchivedError } from './wal-errors';

/** Outcome of {@link WalArchiveStore.push}. */
export interface WalPushResult {
  /** `stored`: newly archived; `already-archived`: the same bytes were archived before (idempotent re-push). */
  outcome: 'stored' | 'already-archived';
  record: WalFileRecord;
}

/** One archived WAL file as listed: its record key and store metadata. */
export interface ArchivedWalFile {
  file: WalFileName;
  recordKey: string;
  /** When the record was stored (the store's modification time). */
  storedAt: Date;
}

/** Settings of a {@link WalArchiveStore}. */
export interface WalArchiveStoreOptions {
  /** Archive name: objects go under `wal/<archive>/`. */
  archive: string;
  /** Encrypt pushed files for these age recipients / with this passphrase; null: not encrypted. */
  encryption: AgeEncryptionKey | null;
  /** Keys to open encrypted files on fetch; null: none available (fetching an encrypted file then fails). */
  decryption: AgeDecryptionKeys | null;
  /** zstd level (-7..19). */
  zstdLevel: number;
  /** libzstd worker threads per pushed file (0, the default: compress on the calling thread). */
  zstdWorkers?: number;
}

/**
 * The WAL archive on a storage driver, shared by `dr wal-push` / `dr wal-fetch` (which run without the service)
 * and by the service (status, continuity, retention). Layout under the driver's root:
 * `wal/<archive>/<timeline hex>/<file>.zst[.age]` (the data) and `wal/<archive>/<timeline hex>/<file>.json` (its
 * {@link WalFileRecord}, written after the data is durably published: the commit point).
 * pgBackRest and WAL-G keep a checksum per archived segment and refuse to overwrite one with different content;
 * this does the same with SHA-256.
 */
export class WalArchiveStore {
  constructor(
    private readonly driver: StorageDriver,
    private readonly options: WalArchiveStoreOptions,
  ) {}

  /** `wal/<archive>/`. */
  get prefix(): string {
    return `wal/${this.options.archive}/`;
  }

  /** Key of the commit record of WAL file `file`. */
  recordKey(file: WalFileName): string {
    return `${this.prefix}${file.timelineHex}/${file.name}.json`;
  }

  /** Parses `%f`. @throws InvalidWalFileNameError */
  static parseName(name: string): WalFileName {
    const file = parseWalFileName(name);
    if (!file) throw new InvalidWalFileNameError(`"${name}" is not a WAL segment, .partial, .history or .backup file name`);
    return file;
  }

  /** The record of an archived file, or null when it is not archived. */
  async record(file: WalFileName): Promise<WalFileRecord | null> {
    try {
      return JSON.parse((await this.driver.readObject(this.recordKey(file))).toString('utf8')) as WalFileRecord;
    } catch (error) {
      if (error instanceof ObjectNotFoundError) return null;
      throw error;
    }
  }

  /**
   * Archives the file at `path` under `name`: SHA-256 of the raw file, then (unless already archived) raw →
   * zstd → [age] → SHA-256 → staged upload → publish (durable: fsync / completed upload), then the commit record.
   * Resolves only when both are durably stored.
   * @throws WalConflictError when `name` is archived with a different SHA-256; InvalidWalFileNameError.
   */
  async push(path: string, name: string = basename(path)): Promise<WalPushResult> {
    const file = WalArchiveStore.parseName(name);
    const raw = await sha256OfFile(path);
    const existing = await this.record(file);
    if (existing) {
      if (existing.rawSha256 === raw.sha256 && existing.rawBytes === raw.bytes) return { outcome: 'already-archived', record: existing };
      throw new WalConflictError(
        `${name} is already archived in ${this.prefix} with a different content (sha256 ${existing.rawSha256}, ${existing.rawBytes} bytes; ` +
          `this file: sha256 ${raw.sha256}, ${raw.bytes} bytes); refusing to overwrite it. Two clusters may be archiving to the same archive.`,
      );
    }
    const encrypted = this.options.encryption !== null;
    const storedKey = `${this.prefix}${file.timelineHex}/${name}.zst${encrypted ? '.age' : ''}`;
    const upload = await this.driver.createUpload(storedKey);
    const rawMeter = new HashingStream();
    const storedMeter = new HashingStream();
    try {
      const stages: NodeJS.ReadWriteStream[] = [rawMeter, new ZstdCompressStream({ level: this.options.zstdLevel, workers: this.options.zstdWorkers ?? 0 })];
      if (this.options.encryption) stages.push(await (await age()).createEncryptStream(this.options.encryption));
      await pipeline([createReadStream(path, { highWaterMark: 1 << 20 }), ...stages, storedMeter, upload.stream]);
      const rawSha256 = rawMeter.digest();
      if (rawSha256 !== raw.sha256 || rawMeter.bytes !== raw.bytes) {
        throw new Error(`${path} changed while it was archived (sha256 ${raw.sha256} then ${rawSha256})`);
      }
      await upload.publish();
    } catch (error) {
      await upload.abort().catch(() => undefined);
      throw error;
    }
    const record: WalFileRecord = {
      format: WAL_RECORD_FORMAT,
      formatVersion: 1,
      name,
      kind: file.kind,
      timeline: file.timeline,
      rawBytes: raw.bytes,
      rawSha256: raw.sha256,
      storedKey,
      storedBytes: storedMeter.bytes,
      storedSha256: storedMeter.digest(),
      compression: 'zstd',
      encrypted,
      pushedAt: new Date().toISOString(),
    };
    await this.driver.putObject(this.recordKey(file), Buffer.from(JSON.stringify(record, null, 1)));
    return { outcome: 'stored', record };
  }

  /**
   * Restores WAL file `name` to `destination`: record → stored object (SHA-256 checked) → [age] → zstd → a temp
   * file beside `destination` (raw SHA-256 checked) → rename into place. Nothing appears under
   * `destination` unless the whole file was restored and checked.
   * @throws WalFileNotArchivedError when `name` is not archived; InvalidWalFileNameError; an error naming the
   *   checksum that failed.
   */
  async fetch(name: string, destination: string): Promise<WalFileRecord> {
    const file = WalArchiveStore.parseName(name);
    const record = await this.record(file);
    if (!record) throw new WalFileNotArchivedError(`${name} is not in the archive ${this.prefix}`);
    let stored: AsyncIterable<Buffer | Uint8Array>;
    try {
      stored = verifiedBytes(await this.driver.read(record.storedKey), record.storedKey, record.storedSha256);
    } catch (error) {
      if (error instanceof ObjectNotFoundError) {
        throw new Error(`${name}: its record exists but its data object ${record.storedKey} is missing from the store`);
      }
      throw error;
    }
    if (record.encrypted) {
      if (!this.options.decryption) throw new Error(`${name} is encrypted and no age identity is configured (identitySecret)`);
      stored = await (await age()).decryptStream(stored, this.options.decryption);
    }
    const temp = join(dirname(destination), `.${basename(destination)}.dr-fetch-${process.pid}`);
    const rawMeter = new HashingStream();
    try {
      // No fsync: PostgreSQL treats a restored file as temporary (RECOVERYXLOG) and fetches it again after a crash.
      await pipeline(Readable.from(decompress(stored, record.storedKey)), rawMeter, createWriteStream(temp, { mode: 0o600 }));
      const rawSha256 = rawMeter.digest();
      if (rawSha256 !== record.rawSha256 || rawMeter.bytes !== record.rawBytes) {
        throw new Error(`${name}: restored content has sha256 ${rawSha256} (${rawMeter.bytes} bytes), archived ${record.rawSha256} (${record.rawBytes} bytes)`);
      }
      await rename(temp, destination);
    } catch (error) {
      await rm(temp, { force: true });
      throw error;
    }
    return record;
  }

  /** Every archived WAL file (by its commit record), in key order (timeline, then name). Pages through the store. */
  async list(): Promise<ArchivedWalFile[]> {
    const files: ArchivedWalFile[] = [];
    let after: string | undefined;
    do {
      const page = await this.driver.list(this.prefix, { after, limit: 1000 });
      for (const object of page.objects) {
        const parsed = this.fromRecordKey(object);
        if (parsed) files.push(parsed);
      }
      after = page.nextAfter;
    } while (after);
    return files;
  }

  /** Deletes an archived file: the record first (so it is no longer visible), then the data. */
  async remove(file: WalFileName): Promise<void> {
    const record = await this.record(file);
    await this.driver.delete(this.recordKey(file));
    if (record) await this.driver.delete(record.storedKey);
  }

  /** Reads a small archived file whole (a timeline history file). @throws WalFileNotArchivedError */
  async readSmall(name: string): Promise<Buffer> {
    const file = WalArchiveStore.parseName(name);
    const record = await this.record(file);
    if (!record) throw new WalFileNotArchivedError(`${name} is not in the archive ${this.prefix}`);
    let stored: AsyncIterable<Buffer | Uint8Array> = verifiedBytes(await this.driver.read(record.storedKey), record.storedKey, record.storedSha256);
    if (record.encrypted) {
      if (!this.options.decryption) throw new Error(`${name} is encrypted and no age identity is configured`);
      stored = await (await age()).decryptStream(stored, this.options.decryption);
    }
    const chunks: Buffer[] = [];
    for await (const chunk of decompress(stored, record.storedKey)) chunks.push(Buffer.from(chunk));
    return Buffer.concat(chunks);
  }

  private fromRecordKey(object: ObjectStat): ArchivedWalFile | null {
    if (!object.key.endsWith('.json')) return null;
    const file = parseWalFileName(basename(object.key).slice(0, -'.json'.length));
    return file ? { file, recordKey: object.key, storedAt: object.modifiedAt } : null;
  }
}

/** The age streams, loaded only for an encrypted archive (the library costs about 0.12 s of start-up). */
async function age(): Promise<typeof import('../pipeline/age-encryption')> {
  return import('../pipeline/age-encryption');
}

/** Passes bytes through, counting them and feeding a SHA-256. */
class HashingStream extends Transform {
  bytes = 0;
  private readonly hash = createHash('sha256');

  override _transform(chunk: Buffer, _encoding: BufferEncoding, callback: TransformCallback): void {
    this.bytes += chunk.length;
    this.hash.update(chunk);
    callback(null, chunk);
  }

  digest(): string {
    return this.hash.digest('hex');
  }
}
