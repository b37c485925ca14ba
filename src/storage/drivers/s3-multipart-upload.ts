import { Writable } from 'node:stream';
import { finished } from 'node:stream/promises';
import {
  AbortMultipartUploadCommand,
  CompletedPart,
  CompleteMultipartUploadCommand,
  CreateMultipartUploadCommandInput,
  CreateMultipartUploadCommand,
  S3Client,
  UploadPartCommand,
} from '@aws-sdk/client-s3';
import { StagedUpload } from './storage-driver';

/** S3 allows at most 10,000 parts in one multipart upload. */
export const MAX_PARTS = 10_000;

/**
 * Runs one S3 call with the driver's (lazily created) client and turns a failure into the driver's error, which
 * names the operation, bucket, key and HTTP status, carries the S3 error `code`, and never a credential.
 */
export type S3Call = <T>(operation: string, key: string, call: (s3: S3Client) => Promise<T>) => Promise<T>;

/** What a multipart upload needs to know. */
export interface MultipartUploadOptions {
  call: S3Call;
  /** Everything CreateMultipartUpload gets: bucket, full key, encryption, storage class, object lock. */
  create: CreateMultipartUploadCommandInput & { Bucket: string; Key: string };
  /** The key as the caller named it (relative to the location), for messages. */
  displayKey: string;
  /** Bytes per part except the last, 5 MiB to 5 GiB. */
  partSizeBytes: number;
  /** Parts sent at the same time, at least 1. */
  queueSize: number;
  /** Send a CRC32 checksum with every part (S3 requires a checksum on uploads to an Object Lock bucket). */
  checksumParts: boolean;
}

/**
 * A staged upload to S3 driven part by part, completed only by {@link publish}.
 *
 * - {@link S3MultipartUpload.start} sends CreateMultipartUpload at once, so a bad bucket, credential, storage class
 *   or Object Lock setting fails before the caller starts producing data, and the upload in progress can be found
 *   (ListMultipartUploads) and aborted by `removeStaged` if this process dies.
 * - `stream` copies incoming bytes into part buffers of `partSizeBytes`; a full buffer is sent as UploadPart while
 *   the next one fills, with at most `queueSize` parts in flight. When all are in flight, the write callback waits:
 *   back-pressure reaches the producer. Memory is at most (queueSize + 1) × partSizeBytes, buffers are reused.
 * - Ending the stream sends the last (possibly short, possibly empty) part and waits for every part: `finish` means
 *   all bytes are stored as parts, and a part failure errors the stream. Nothing is visible under the key yet.
 * - `publish()` sends CompleteMultipartUpload: S3 makes the whole object visible at once, replacing any older one.
 * - `abort()` cancels parts in flight, waits for them, and sends AbortMultipartUpload (S3 frees the parts).
 *
 * The largest object is partSizeBytes × 10,000 (16 MiB parts: 156 GiB); the part after that fails the stream.
 */
export class S3MultipartUpload implements StagedUpload {
  readonly stream: Writable;
  private readonly parts: CompletedPart[] = [];
  private readonly inFlight = new Set<Promise<void>>();
  private readonly freeBuffers: Buffer[] = [];
  private readonly cancel = new AbortController();
  private buffersAllocated = 0;
  private current: Buffer | undefined;
  private filled = 0;
  private nextPartNumber = 1;
  private failure: Error | undefined;
  /** A write or final callback is pending: a part failure is reported through it rather than by destroying. */
  private busy = false;
  private state: 'open' | 'published' | 'aborted' = 'open';
  private aborting: Promise<void> | undefined;
  private publishing: Promise<void> | undefined;
  /** The CompleteMultipartUpload request, once sent. */
  private completing: Promise<unknown> | undefined;

  private constructor(
    private readonly options: MultipartUploadOptions,
    private readonly uploadId: string,
  ) {
    this.stream = new Writable({
      highWaterMark: 1 << 20,
      write: (chunk: Buffer, _encoding, callback) => this.settle(this.write(chunk), callback),
      final: (callback) => this.settle(this.flush(), callback),
    });
  }

  /**
   * Starts a multipart upload (CreateMultipartUpload).
   * @throws the driver's error when S3 refuses (no bucket, access denied, invalid Object Lock or encryption setting)
   */
  static async start(options: MultipartUploadOptions): Promise<S3MultipartUpload> {
    const created = await options.call('CreateMultipartUpload', options.displayKey, (s3) => s3.send(new CreateMultipartUploadCommand(options.create)));
    if (!created.UploadId) throw new Error(`S3 CreateMultipartUpload for ${options.displayKey} returned no upload id`);
    return new S3MultipartUpload(options, created.UploadId);
  }

  /**
   * Completes the upload: the object appears whole under its key. Call after `stream` has finished; calls made
   * together share one completion.
   * @throws the stream's error when a part failed, or the driver's error when CompleteMultipartUpload fails
   */
  publish(): Promise<void> {
    if (this.state === 'aborted') {
      return Promise.reject(new Error(`upload of ${this.options.displayKey} was aborted; it cannot be published`));
    }
    this.publishing ??= this.complete().catch((error: unknown) => {
      this.publishing = undefined;
      throw error;
    });
    return this.publishing;
  }

  /**
   * Discards the upload: parts in flight are cancelled, then AbortMultipartUpload frees what S3 holds. A no-op once
   * published (a CompleteMultipartUpload already sent is waited for first; a publish still waiting for the stream
   * fails instead); calls made together share one abort, and a call after a failed abort tries again.
   * @throws the driver's error when AbortMultipartUpload fails (e.g. the server is unreachable)
   */
  async abort(): Promise<void> {
    await this.completing?.catch(() => undefined);
    if (this.state === 'published') return;
    this.state = 'aborted';
    this.aborting ??= this.discard().catch((error: unknown) => {
      this.aborting = undefined;
      throw error;
    });
    return this.aborting;
  }

  private async complete(): Promise<void> {
    if (this.state === 'published') return;
    if (!this.stream.writableFinished) {
      await finished(this.stream).catch((error: Error) => {
        throw this.failure ?? error; // the part failure or the abort that ended the stream, rather than "premature close"
      });
    }
    if (this.failure) throw this.failure;
    if (this.state === 'aborted') throw new Error(`upload of ${this.options.displayKey} was aborted; it cannot be published`);
    const parts = [...this.parts].sort((a, b) => a.PartNumber! - b.PartNumber!);
    const { Bucket, Key } = this.options.create;
    this.completing = this.options.call('CompleteMultipartUpload', this.options.displayKey, (s3) =>
      s3.send(new CompleteMultipartUploadCommand({ Bucket, Key, UploadId: this.uploadId, MultipartUpload: { Parts: parts } })),
    );
    await this.completing;
    this.state = 'published';
    this.releaseBuffers();
  }

  private async discard(): Promise<void> {
    this.failure ??= new Error(`upload of ${this.options.displayKey} was aborted`);
    if (!this.stream.destroyed) this.stream.destroy();
    this.cancel.abort();
    await Promise.allSettled(this.inFlight);
    this.releaseBuffers();
    const { Bucket, Key } = this.options.create;
    await this.options
      .call('AbortMultipartUpload', this.options.displayKey, (s3) => s3.send(new AbortMultipartUploadCommand({ Bucket, Key, UploadId: this.uploadId })))
      .catch((error: Error & { code?: string }) => {
        if (error.code !== 'NoSuchUpload') throw error; // already aborted (e.g. by removeStaged)
      });
  }

  private settle(work: Promise<void>, callback: (error?: Error | null) => void): void {
    this.busy = true;
    work.then(
      () => {
        this.busy = false;
        callback(this.failure);
      },
      (error: Error) => {
        this.busy = false;
        this.failure ??= error;
        callback(this.failure);
      },
    );
  }

  private async write(chunk: Buffer): Promise<void> {
    let offset = 0;
    while (offset < chunk.length) {
      if (this.failure) return;
      this.current ??= this.takeBuffer();
      const copied = chunk.copy(this.current, this.filled, offset);
      this.filled += copied;
      offset += copied;
      if (this.filled === this.options.partSizeBytes) await this.dispatch();
    }
  }

  /** The last part (the only one, possibly empty, for a small object), then every part in flight. */
  private async flush(): Promise<void> {
    if (this.filled > 0 || this.nextPartNumber === 1) await this.dispatch();
    await Promise.allSettled(this.inFlight);
  }

  /** Sends the current buffer as the next part, after waiting for a free slot when `queueSize` parts are in flight. */
  private async dispatch(): Promise<void> {
    while (this.inFlight.size >= this.options.queueSize) await Promise.race(this.inFlight);
    if (this.failure) return;
    const partNumber = this.nextPartNumber++;
    if (partNumber > MAX_PARTS) {
      throw new Error(
        `upload of ${this.options.displayKey} exceeds ${MAX_PARTS} parts of ${this.options.partSizeBytes} bytes; ` +
          "raise the location's partSizeBytes for objects this large",
      );
    }
    const buffer = this.current ?? Buffer.alloc(0);
    const body = buffer.subarray(0, this.filled);
    this.current = undefined;
    this.filled = 0;
    const sent: Promise<void> = this.sendPart(partNumber, body)
      .then(
        (part) => void this.parts.push(part),
        (error: Error) => this.fail(error),
      )
      .finally(() => {
        this.inFlight.delete(sent);
        if (buffer.length > 0 && this.state === 'open') this.freeBuffers.push(buffer);
      });
    this.inFlight.add(sent);
  }

  private async sendPart(partNumber: number, body: Buffer): Promise<CompletedPart> {
    const { Bucket, Key } = this.options.create;
    const checksum = this.options.checksumParts ? ({ ChecksumAlgorithm: 'CRC32' } as const) : {};
    const output = await this.options.call('UploadPart', this.options.displayKey, (s3) =>
      s3.send(new UploadPartCommand({ Bucket, Key, UploadId: this.uploadId, PartNumber: partNumber, Body: body, ContentLength: body.length, ...checksum }), {
        abortSignal: this.cancel.signal,
      }),
    );
    return { PartNumber: partNumber, ETag: output.ETag, ...(output.ChecksumCRC32 ? { ChecksumCRC32: output.ChecksumCRC32 } : {}) };
  }

  /** A part failed (after the SDK's retries): the stream errors now, or through the pending write callback. */
  private fail(error: Error): void {
    if (this.failure) return;
    this.failure = error;
    if (!this.busy && !this.stream.destroyed) this.stream.destroy(error);
  }

  private takeBuffer(): Buffer {
    const reused = this.freeBuffers.pop();
    if (reused) return reused;
    if (this.buffersAllocated > this.options.queueSize) throw new Error('part buffer pool exhausted (bug)');
    this.buffersAllocated++;
    return Buffer.allocUnsafeSlow(this.options.partSizeBytes);
  }

  private releaseBuffers(): void {
    this.freeBuffers.length = 0;
    this.current = undefined;
  }
}
