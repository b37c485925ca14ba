import { createHash, Hash } from 'node:crypto';
import { createReadStream, createWriteStream } from 'node:fs';
import { rm } from 'node:fs/promises';
import { Readable, Transform, TransformCallback, Writable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { Injectable } from '@nestjs/common';
import { AppConfig } from '../config/app-config';
import { AgeDecryptionKeys, AgeEncryptionKey, createEncryptStream, decryptStream } from './age-encryption';
import { COMPRESSED_BLOCK_BYTES, decompress, verifiedBytes, ZstdCompressStream } from './zstd-streams';

export { ChecksumMismatchError, CorruptArtifactError, SizeMismatchError } from './zstd-streams';

/** Counts bytes and feeds a SHA-256 as they pass, without copying. */
export class MeteringStream extends Transform {
  bytes = 0;
  private readonly hash: Hash | null;

  constructor(
    withHash: boolean,
    private readonly onProgress?: (bytes: number) => void,
  ) {
    super({ highWaterMark: COMPRESSED_BLOCK_BYTES });
    this.hash = withHash ? createHash('sha256') : null;
  }

  override _transform(chunk: Buffer, _encoding: BufferEncoding, callback: TransformCallback): void {
    this.bytes += chunk.length;
    this.hash?.update(chunk);
    this.onProgress?.(this.bytes);
    callback(null, chunk);
  }

  /** Hex SHA-256 of everything that passed; call once, after the stream finished. */
  digest(): string {
    if (!this.hash) throw new Error('stream was created without a hash');
    return this.hash.digest('hex');
  }
}

/** Sizes and checksum of a stored artifact. */
export interface StoredArtifact {
  /** Bytes produced by the engine. */
  sizeBytes: number;
  /** Bytes written to storage. */
  storedBytes: number;
  /** SHA-256 (hex) of the stored bytes. */
  sha256: string;
}

/** Options of {@link ArtifactPipeline.store}. */
export interface StoreOptions {
  /** Called with the engine bytes read so far (many times; throttle on the caller's side). */
  onProgress?: (rawBytes: number) => void;
  signal?: AbortSignal;
  /** Encrypt the compressed stream (age v1) for these recipients or this passphrase; null: do not. */
  encryption?: AgeEncryptionKey | null;
}

/** Options of {@link ArtifactPipeline.openRaw}. */
export interface OpenOptions {
  /** Called with the stored bytes read so far. */
  onProgress?: (storedBytes: number) => void;
  /** Keys for an encrypted object; null or absent: the object is not encrypted. */
  decryption?: AgeDecryptionKeys | null;
  /** Stored size the manifest lists, bytes: a longer or shorter object fails (SizeMismatchError). */
  expectedSize?: number;
  /** Called with the raw (decrypted, decompressed) bytes the consumer has taken so far. */
  onRawProgress?: (rawBytes: number) => void;
}

/** A stored object as the signed manifest lists it (key, stored size in bytes, SHA-256 of the stored bytes). */
export interface ListedObject {
  key: string;
  sizeBytes: number;
  sha256: string;
}

/**
 * The streaming core: engine bytes → zstd → [age] → SHA-256 → storage on the way in, and storage → SHA-256 →
 * [age] → zstd → engine on the way out. Back-pressure flows end to end, so memory stays bounded (a few 1 MiB
 * blocks per stage plus zstd's window and job buffers) whatever the artifact's size or compression ratio.
 */
@Injectable()
export class ArtifactPipeline {
  constructor(private readonly config: AppConfig) {}

  /**
   * Compresses (and encrypts) `source` into `sink`. zstd frames carry their content checksum, so `zstd -t` can
   * test an artifact alone. With `DR_ZSTD_WORKERS` ≥ 1 (the default) libzstd compresses on its own threads.
   * @throws whatever the source, compressor, encrypter or sink raised; the caller discards the staged upload.
   */
  async store(source: Readable, sink: Writable, options: StoreOptions = {}): Promise<StoredArtifact> {
    const compressor = new ZstdCompressStream({ level: this.config.zstdLevel, workers: this.config.zstdWorkers, onProgress: options.onProgress });
    const stored = new MeteringStream(true);
    const stages: NodeJS.ReadWriteStream[] = [compressor];
    if (options.encryption) stages.push(await createEncryptStream(options.encryption));
    await pipeline([source, ...stages, stored, sink], { signal: options.signal });
    return { sizeBytes: compressor.rawBytes, storedBytes: stored.bytes, sha256: stored.digest() };
  }

  /**
   * Opens the raw (decrypted, decompressed) stream of a stored object. Output is produced 128 KiB at a time and
   * only as fast as the consumer reads, so a highly compressible artifact (a 100:1 dump) cannot balloon memory.
   * The SHA-256 of the stored bytes is checked when the last byte has been read: on a mismatch the returned
   * stream errors with {@link ChecksumMismatchError} instead of ending, so a consumer never sees a clean end of a
   * corrupt artifact (age's per-chunk authentication and zstd's frame checksum usually stop it earlier). The stream
   * is therefore proven only once it has ENDED: a consumer applies nothing to a target before that (it extracts
   * into a staging area or spools to scratch first), or is given a stream of an object proven first ({@link prove}).
   * @throws InvalidAgeKeyError when the configured identity is not valid; the stream errors when no key opens it.
   */
  async openRaw(stored: Readable, key: string, expectedSha256: string, options: OpenOptions = {}): Promise<Readable> {
    let compressed: AsyncIterable<Buffer | Uint8Array> = verifiedBytes(stored, key, expectedSha256, options.onProgress, options.expectedSize);
    if (options.decryption) compressed = await decryptStream(compressed, options.decryption);
    const blocks = options.onRawProgress ? counted(decompress(compressed, key), options.onRawProgress) : decompress(compressed, key);
    const raw = Readable.from(blocks, {
      objectMode: false,
      highWaterMark: COMPRESSED_BLOCK_BYTES, // bytes: a few raw blocks
    });
    // A consumer that destroys the stream before reading it (a restore that fails before its first byte) never
    // starts the generators above, so nothing else would close `stored` (an open file handle, a socket).
    raw.once('close', () => stored.destroy());
    return raw;
  }

  /**
   * Proves a stored object before anything is done with it: copies its stored bytes into `spoolPath` (a private
   * scratch file, mode 0600; costs the object's stored size in scratch space) while hashing them, and checks the size
   * and SHA-256 against the manifest's. The copy is what is then applied ({@link openProven}): an object replaced in
   * the store after the check cannot reach the target. The spool is removed when the proof fails.
   * @param onProgress called with the stored bytes read so far.
   * @throws SizeMismatchError, ChecksumMismatchError, or the read/write error.
   */
  async prove(stored: Readable, spoolPath: string, object: ListedObject, onProgress?: (storedBytes: number) => void): Promise<void> {
    try {
      await pipeline(
        Readable.from(verifiedBytes(stored, object.key, object.sha256, onProgress, object.sizeBytes), {
          objectMode: false,
          highWaterMark: COMPRESSED_BLOCK_BYTES,
        }),
        createWriteStream(spoolPath, { flags: 'wx', mode: 0o600, highWaterMark: COMPRESSED_BLOCK_BYTES }),
      );
    } catch (error) {
      stored.destroy();
      await rm(spoolPath, { force: true });
      throw error;
    }
  }

  /**
   * Opens the raw stream of an object proven by {@link prove} from its spool (checked again as it is read, which
   * costs a hash of the stored size); the spool is removed when the stream closes.
   */
  async openProven(spoolPath: string, object: ListedObject, options: Omit<OpenOptions, 'expectedSize'> = {}): Promise<Readable> {
    const raw = await this.openRaw(createReadStream(spoolPath, { highWaterMark: COMPRESSED_BLOCK_BYTES }), object.key, object.sha256, {
      ...options,
      expectedSize: object.sizeBytes,
    });
    raw.once('close', () => void rm(spoolPath, { force: true }));
    return raw;
  }

  /** Reads a stored artifact to the end and returns its size and SHA-256 (verification by checksum). */
  async digest(stored: Readable): Promise<{ bytes: number; sha256: string }> {
    const meter = new MeteringStream(true);
    await pipeline(stored, meter, new Writable({ write: (_c, _e, cb) => cb() }));
    return { bytes: meter.bytes, sha256: meter.digest() };
  }
}

/** `blocks` passed on as they are, `onBytes` told the running total (bytes) of what was taken. */
async function* counted(blocks: AsyncIterable<Buffer>, onBytes: (bytes: number) => void): AsyncGenerator<Buffer> {
  let bytes = 0;
  for await (const block of blocks) {
    yield block;
    bytes += block.length; // counted once the consumer asked for the next one: taken, not just produced
    onBytes(bytes);
  }
}
