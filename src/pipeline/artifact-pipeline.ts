import { createHash, Hash } from 'node:crypto';
import { Readable, Transform, TransformCallback, Writable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { Injectable } from '@nestjs/common';
import { AppConfig } from '../config/app-config';
import { COMPRESSED_BLOCK_BYTES, decompressVerified, ZstdCompressStream } from './zstd-streams';

export { ChecksumMismatchError, CorruptArtifactError } from './zstd-streams';

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

/**
 * The streaming core: engine bytes → zstd → SHA-256 → storage on the way in, and storage → SHA-256 → zstd
 * decompression → engine on the way out. Back-pressure flows end to end, so memory stays bounded (a few 1 MiB
 * blocks per stage plus zstd's window and job buffers) whatever the artifact's size or compression ratio.
 */
@Injectable()
export class ArtifactPipeline {
  constructor(private readonly config: AppConfig) {}

  /**
   * Compresses `source` into `sink`. Frames carry zstd's content checksum, so `zstd -t` can test an artifact alone.
   * With `DR_ZSTD_WORKERS` ≥ 1 (the default) libzstd compresses on its own threads, so the event loop stays free
   * for hashing and I/O.
   * @param onProgress called with the engine bytes read so far (many times; throttle on the caller's side).
   * @throws whatever the source, compressor or sink raised; the caller discards the staged upload.
   */
  async store(source: Readable, sink: Writable, onProgress?: (rawBytes: number) => void, signal?: AbortSignal): Promise<StoredArtifact> {
    const compressor = new ZstdCompressStream({ level: this.config.zstdLevel, workers: this.config.zstdWorkers, onProgress });
    const stored = new MeteringStream(true);
    await pipeline(source, compressor, stored, sink, { signal });
    return { sizeBytes: compressor.rawBytes, storedBytes: stored.bytes, sha256: stored.digest() };
  }

  /**
   * Opens the raw (decompressed) stream of a stored artifact. Output is produced 128 KiB at a time and only as
   * fast as the consumer reads, so a highly compressible artifact (a 100:1 dump) cannot balloon memory.
   * The SHA-256 of the stored bytes is checked when the last byte has been read: on a mismatch the returned
   * stream errors with {@link ChecksumMismatchError} instead of ending, so a consumer never sees a clean end of
   * a corrupt artifact (zstd's per-frame checksum usually stops it earlier).
   * @param onProgress called with the stored bytes read so far.
   */
  openRaw(stored: Readable, key: string, expectedSha256: string, onProgress?: (storedBytes: number) => void): Readable {
    return Readable.from(decompressVerified(stored, key, expectedSha256, onProgress), {
      objectMode: false,
      highWaterMark: COMPRESSED_BLOCK_BYTES, // bytes: a few raw blocks
    });
  }

  /** Reads a stored artifact to the end and returns its size and SHA-256 (verification by checksum). */
  async digest(stored: Readable): Promise<{ bytes: number; sha256: string }> {
    const meter = new MeteringStream(true);
    await pipeline(stored, meter, new Writable({ write: (_c, _e, cb) => cb() }));
    return { bytes: meter.bytes, sha256: meter.digest() };
  }
}

