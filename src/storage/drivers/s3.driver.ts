import { Readable } from 'node:stream';
import {
  AbortMultipartUploadCommand,
  DeleteObjectCommand,
  GetObjectCommand,
  HeadBucketCommand,
  HeadObjectCommand,
  HeadObjectCommandOutput,
  ListMultipartUploadsCommand,
  ListObjectsV2Command,
  PutObjectCommand,
  S3Client,
} from '@aws-sdk/client-s3';
import { SecretResolver } from '../../secrets/secret-resolver';
import { S3Call, S3MultipartUpload } from './s3-multipart-upload';
import { S3_DEFAULTS, S3StorageSettings } from './s3-storage-settings';
import {
  assertValidKey,
  ByteRange,
  ImmutabilityNotSupportedError,
  ObjectLockedError,
  ObjectNotFoundError,
  ObjectPage,
  ObjectStat,
  StagedUpload,
  StorageCapabilities,
  StorageDriver,
  UploadOptions,
  StagedKeyFilter,
} from './storage-driver';

export { S3_DEFAULTS, S3_STORAGE_CLASSES, S3ObjectLockSettings, S3StorageSettings } from './s3-storage-settings';

/** Waiting for a TCP connection (an unreachable endpoint fails after this, per attempt). */
const CONNECT_TIMEOUT_MS = 5_000;
/** A connection that moves no byte for this long is dropped (a stalled transfer, a black-holed network). */
const SOCKET_IDLE_TIMEOUT_MS = 60_000;
/** Each request is tried this often (connection resets, 5xx, throttling), with the SDK's jittered backoff. */
const MAX_ATTEMPTS = 3;
/** Each step of the health check (HeadBucket, put, delete) must answer within this. */
const HEALTH_STEP_TIMEOUT_MS = 3_000;
const HEALTH_PROBE_KEY = '.health/probe';

/** A failed S3 call: which operation on which bucket and key, the HTTP status and S3 error code when there was an answer. */
export class S3StorageError extends Error {
  constructor(
    message: string,
    readonly operation: string,
    readonly bucket: string,
    readonly key: string,
    /** Absent when no HTTP answer came (connection refused or reset, timeout). */
    readonly httpStatus: number | undefined,
    /** S3's error code (`NoSuchKey`, `AccessDenied`...) or the network error's (`ECONNREFUSED`). */
    readonly code: string | undefined,
  ) {
    super(message);
    this.name = 'S3StorageError';
  }
}

interface SdkError {
  name?: string;
  message?: string;
  code?: string;
  errors?: { message?: string }[];
  $metadata?: { httpStatusCode?: number; requestId?: string };
}

/**
 * Keeps artifacts in an S3 bucket (or an S3-compatible store), under an optional key prefix.
 *
 * Staging: an upload is a multipart upload on the final key, completed only by `publish()` (see
 * {@link S3MultipartUpload}); S3 shows nothing under a key until CompleteMultipartUpload, and then the whole object,
 * so a failed engine run never leaves a complete-looking object. Why not the alternatives:
 * - `@aws-sdk/lib-storage`'s `Upload` completes the upload as soon as its input ends, with no hook to defer it
 *   (holding back its CompleteMultipartUpload, or the PutObject it sends for a one-part body, would mean relying on
 *   its internals), and sends nothing before a first part is full, so a bad bucket or credential would show only
 *   once the engine has produced a part.
 * - A staging key copied on publish writes every byte twice at the store (CopyObject, UploadPartCopy above 5 GiB,
 *   which s3rver cannot even run), and in an Object Lock bucket (always versioned) every staging object would leave
 *   a noncurrent version behind, locked if the bucket has a default retention.
 * Measured against s3rver on the 2-vCPU dev machine (256 MiB, 16 MiB parts, 4 in flight, median of 7 runs, each
 * hashed back): this driver uploaded at 36.5 MiB/s (runs ranged 34-71), lib-storage's `Upload` at 31 MiB/s, one
 * PutObject of the whole buffer at 66 MiB/s (s3rver's own ceiling; a multipart upload also waits 1-4 s for s3rver to
 * copy its parts into the object on Complete); reads with SHA-256 ran at 162 MiB/s. Peak RSS grew by 114 MiB with
 * 80 MiB of part buffers. s3rver's CopyObject of 256 MiB took 0.2-0.3 s, being a local file copy: what a copy costs
 * at AWS could not be measured here.
 *
 * Memory: at most (queueSize + 1) × partSizeBytes per upload in progress; reads stream the HTTP body as it comes.
 * Network: 5 s to connect, 60 s of silence on a connection, 3 attempts per request; an unreachable endpoint fails in
 * seconds. The S3 client is created on first use; its credentials are resolved then, and their values are never
 * put in an error message.
 */
export class S3StorageDriver implements StorageDriver {
  readonly capabilities: StorageCapabilities;
  private readonly bucket: string;
  /** `''` or the key prefix ending with `/`. */
  private readonly root: string;
  private readonly partSizeBytes: number;
  private readonly queueSize: number;
  #client: Promise<S3Client> | undefined;
  /** Resolved credential values, scrubbed from every error message. */
  #secretValues: string[] = [];

  constructor(
    private readonly settings: S3StorageSettings,
    private readonly secrets: SecretResolver,
  ) {
    this.bucket = settings.bucket;
    this.root = settings.prefix ? `${settings.prefix.replace(/\/+$/, '')}/` : '';
    this.partSizeBytes = settings.partSizeBytes ?? S3_DEFAULTS.partSizeBytes;
    this.queueSize = settings.queueSize ?? S3_DEFAULTS.queueSize;
    this.capabilities = { immutability: settings.objectLock !== undefined };
  }

  /**
   * The S3 client, created on the first call (credential references are resolved then). Exposed for diagnostics and
   * tests (e.g. adding SDK middleware).
   * @throws DrError SECRET_UNAVAILABLE naming the reference (never a value) when a credential cannot be read
   */
  s3Client(): Promise<S3Client> {
    this.#client ??= this.createClient().catch((error: unknown) => {
      this.#client = undefined; // a later call tries again (e.g. once the secret file exists)
      throw error;
    });
    return this.#client;
  }

  /** Closes the client's connections. The driver stays usable: a later call creates a new client. */
  async close(): Promise<void> {
    const client = this.#client;
    this.#client = undefined;
    (await client?.catch(() => undefined))?.destroy();
  }

  /**
   * Starts a multipart upload to `key` (CreateMultipartUpload is sent now). With `retainUntil`, the object is locked
   * in the configured Object Lock mode until that date once published, and every part carries a CRC32 checksum.
   * @throws ImmutabilityNotSupportedError for `retainUntil` when the location has no `objectLock` setting
   * @throws S3StorageError when S3 refuses the upload; InvalidObjectKeyError for a bad key
   */
  async createUpload(key: string, options: UploadOptions = {}): Promise<StagedUpload> {
    assertValidKey(key);
    return S3MultipartUpload.start({
      call: this.call,
      create: { Bucket: this.bucket, Key: this.root + key, ...this.writeParams(options), ...this.checksumParams() },
      displayKey: key,
      partSizeBytes: this.partSizeBytes,
      queueSize: this.queueSize,
      checksumParts: this.settings.objectLock !== undefined,
    });
  }

  /**
   * Writes a small object (up to 5 GiB, held in memory by the caller) with one PutObject, which S3 applies atomically.
   * @throws ImmutabilityNotSupportedError, S3StorageError, InvalidObjectKeyError as {@link createUpload}
   */
  async putObject(key: string, body: Buffer, options: UploadOptions = {}): Promise<void> {
    assertValidKey(key);
    const params = {
      Bucket: this.bucket,
      Key: this.root + key,
      Body: body,
      ContentLength: body.length,
      ...this.writeParams(options),
      ...this.checksumParams(),
    };
    await this.call('PutObject', key, (s3) => s3.send(new PutObjectCommand(params)));
  }

  /**
   * Streams an object, or the inclusive byte range `range` of it (GetObject with a `Range` header). The body is not
   * buffered: bytes flow as the consumer reads; a consumer that stops reading for 60 s loses the connection (the
   * stream errors). A server that ignores or widens the range is clipped to it.
   * @throws ObjectNotFoundError; S3StorageError (416 InvalidRange when `start` is past the end)
   */
  async read(key: string, range?: ByteRange): Promise<Readable> {
    assertValidKey(key);
    if (
      range &&
      (!Number.isSafeInteger(range.start) || range.start < 0 || (range.end !== undefined && !(Number.isSafeInteger(range.end) && range.end >= range.start)))
    ) {
      throw new RangeError(`invalid byte range ${JSON.stringify(range)} for ${key}`);
    }
    const Range = range ? `bytes=${range.start}-${range.end ?? ''}` : undefined;
    const output = await this.call('GetObject', key, (s3) => s3.send(new GetObjectCommand({ Bucket: this.bucket, Key: this.root + key, Range }))).catch(
      this.notFound(key),
    );
    const body = output.Body as Readable;
    return range ? clipToRange(body, range, output.ContentRange, `S3 GetObject s3://${this.bucket}/${this.root}${key}`) : body;
  }

  /** Reads a small object whole into memory. @throws ObjectNotFoundError, S3StorageError */
  async readObject(key: string): Promise<Buffer> {
    assertValidKey(key);
    const output = await this.call('GetObject', key, (s3) => s3.send(new GetObjectCommand({ Bucket: this.bucket, Key: this.root + key }))).catch(
      this.notFound(key),
    );
    const bytes = await output.Body!.transformToByteArray();
    return Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  }

  /**
   * The object's size (bytes) and last modification (HeadObject), or null when it does not exist (a HEAD answer has
   * no body: a missing bucket is a 404 too, and also gives null; `checkHealth` tells them apart).
   * @throws S3StorageError
   */
  async stat(key: string): Promise<ObjectStat | null> {
    const head = await this.head(key);
    return head && { key, sizeBytes: head.ContentLength ?? 0, modifiedAt: head.LastModified ?? new Date(0) };
  }

  /**
   * One page of the objects whose key starts with `prefix` (ListObjectsV2, StartAfter, MaxKeys), in key order, keys
   * relative to the location. Keys with a segment starting with `.` (the health probe) are not listed, as in the
   * local driver; uploads in progress are not objects and never appear.
   * @param options.limit objects per page, default 1000. @throws S3StorageError
   */
  async list(prefix: string, options: { after?: string; limit?: number } = {}): Promise<ObjectPage> {
    const limit = Math.max(1, options.limit ?? 1000);
    const objects: ObjectStat[] = [];
    let token: string | undefined;
    // One object past the limit tells whether another page exists; hidden keys are skipped on the way.
    while (objects.length <= limit) {
      const page = await this.call('ListObjectsV2', prefix, (s3) =>
        s3.send(
          new ListObjectsV2Command({
            Bucket: this.bucket,
            Prefix: this.root + prefix,
            StartAfter: token === undefined && options.after !== undefined ? this.root + options.after : undefined,
            ContinuationToken: token,
            MaxKeys: Math.min(1000, limit + 1 - objects.length),
          }),
        ),
      );
      for (const entry of page.Contents ?? []) {
        const key = entry.Key!.slice(this.root.length);
        if (key.split('/').some((segment) => segment.startsWith('.'))) continue;
        objects.push({ key, sizeBytes: entry.Size ?? 0, modifiedAt: entry.LastModified ?? new Date(0) });
      }
      if (!page.IsTruncated || !page.NextContinuationToken) break;
      token = page.NextContinuationToken;
    }
    const pageObjects = objects.slice(0, limit);
    return { objects: pageObjects, nextAfter: objects.length > limit ? pageObjects[pageObjects.length - 1].key : undefined };
  }

  /**
   * Deletes an object; a missing object is not an error. Without `objectLock`: DeleteObject. With it (a versioned
   * bucket, where a plain DeleteObject only adds a delete marker and keeps the locked data), the current version is
   * looked up and, unless it is under retention or legal hold, deleted for good (DeleteObject with its VersionId,
   * which needs `s3:DeleteObjectVersion`).
   * @throws ObjectLockedError when the object is under retention or legal hold, or S3 refuses for that reason
   * @throws S3StorageError otherwise
   */
  async delete(key: string): Promise<void> {
    assertValidKey(key);
    let versionId: string | undefined;
    if (this.settings.objectLock) {
      const head = await this.head(key);
      if (!head) return;
      const until = head.ObjectLockRetainUntilDate;
      const retained = head.ObjectLockMode !== undefined && until !== undefined && until.getTime() > Date.now();
      if (retained || head.ObjectLockLegalHoldStatus === 'ON') throw new ObjectLockedError(key, retained ? until : undefined);
      versionId = head.VersionId;
    }
    await this.call('DeleteObject', key, (s3) => s3.send(new DeleteObjectCommand({ Bucket: this.bucket, Key: this.root + key, VersionId: versionId }))).catch(
      (error: unknown) => {
        if (error instanceof S3StorageError && isLockRefusal(error)) throw new ObjectLockedError(key);
        throw error;
      },
    );
  }

  /**
   * Aborts every multipart upload in progress under `prefix` (ListMultipartUploads, then AbortMultipartUpload): the
   * uploads of a process that died before publish or abort. Call only for prefixes no live upload writes to.
   * @returns how many uploads were aborted. @throws S3StorageError
   */
  async removeStaged(prefix: string, shouldRemove?: StagedKeyFilter): Promise<number> {
    let removed = 0;
    let keyMarker: string | undefined;
    let uploadIdMarker: string | undefined;
    for (;;) {
      const page = await this.call('ListMultipartUploads', prefix, (s3) =>
        s3.send(new ListMultipartUploadsCommand({ Bucket: this.bucket, Prefix: this.root + prefix, KeyMarker: keyMarker, UploadIdMarker: uploadIdMarker })),
      );
      for (const upload of page.Uploads ?? []) {
        const key = upload.Key!.slice(this.root.length);
        if (shouldRemove && !(await shouldRemove(key))) continue;
        const aborted = await this.call('AbortMultipartUpload', key, (s3) =>
          s3.send(new AbortMultipartUploadCommand({ Bucket: this.bucket, Key: upload.Key, UploadId: upload.UploadId })),
        ).then(
          () => true,
          (error: unknown) => {
            if (error instanceof S3StorageError && error.code === 'NoSuchUpload') return false; // gone meanwhile
            throw error;
          },
        );
        if (aborted) removed++;
      }
      if (!page.IsTruncated || (page.NextKeyMarker === undefined && page.NextUploadIdMarker === undefined)) return removed;
      keyMarker = page.NextKeyMarker;
      uploadIdMarker = page.NextUploadIdMarker;
    }
  }

  /**
   * Proves the bucket is reachable and writable: HeadBucket, then PutObject and DeleteObject of `.health/probe` (its
   * version, in a versioned bucket), each answering within 3 s.
   * @throws S3StorageError naming the failed step; DrError SECRET_UNAVAILABLE when a credential cannot be read
   */
  async checkHealth(): Promise<void> {
    await this.timed('HeadBucket', '', (s3, abortSignal) => s3.send(new HeadBucketCommand({ Bucket: this.bucket }), { abortSignal }));
    const Key = this.root + HEALTH_PROBE_KEY;
    const body = Buffer.from(new Date().toISOString());
    const put = await this.timed('PutObject', HEALTH_PROBE_KEY, (s3, abortSignal) =>
      s3.send(new PutObjectCommand({ Bucket: this.bucket, Key, Body: body, ContentLength: body.length, ...this.checksumParams() }), { abortSignal }),
    );
    await this.timed('DeleteObject', HEALTH_PROBE_KEY, (s3, abortSignal) =>
      s3.send(new DeleteObjectCommand({ Bucket: this.bucket, Key, VersionId: put.VersionId }), { abortSignal }),
    );
  }

  private async createClient(): Promise<S3Client> {
    const s = this.settings;
    let credentials: { accessKeyId: string; secretAccessKey: string; sessionToken?: string } | undefined;
    if (s.accessKeyIdSecret !== undefined || s.secretAccessKeySecret !== undefined) {
      if (s.accessKeyIdSecret === undefined || s.secretAccessKeySecret === undefined) {
        throw new Error('S3 settings: accessKeyIdSecret and secretAccessKeySecret must be given together');
      }
      const [accessKeyId, secretAccessKey, sessionToken] = await Promise.all([
        this.secrets.resolve(s.accessKeyIdSecret, 'settings.accessKeyIdSecret'),
        this.secrets.resolve(s.secretAccessKeySecret, 'settings.secretAccessKeySecret'),
        s.sessionTokenSecret === undefined ? undefined : this.secrets.resolve(s.sessionTokenSecret, 'settings.sessionTokenSecret'),
      ]);
      credentials = { accessKeyId, secretAccessKey, ...(sessionToken ? { sessionToken } : {}) };
      this.#secretValues = [accessKeyId, secretAccessKey, sessionToken ?? ''].filter((v) => v.length >= 4);
    }
    return new S3Client({
      region: s.region ?? S3_DEFAULTS.region,
      endpoint: s.endpoint,
      forcePathStyle: s.forcePathStyle ?? false,
      credentials,
      // Checksums only where S3 requires them (or where we ask, for Object Lock): otherwise the SDK sends streamed
      // bodies aws-chunked with a trailing checksum, which some S3-compatible stores (s3rver) store verbatim.
      requestChecksumCalculation: 'WHEN_REQUIRED',
      responseChecksumValidation: 'WHEN_REQUIRED',
      maxAttempts: MAX_ATTEMPTS,
      retryMode: 'standard',
      // The SDK's default sends parts of 2 MiB and more with `Expect: 100-continue`, each on a new connection without
      // keep-alive (a new TCP and TLS handshake per part). CreateMultipartUpload has already proved the credentials
      // and bucket, so parts go straight out on kept-alive connections (against s3rver, 8 interleaved runs of 256 MiB:
      // parts sent at a median 74 MiB/s this way, 64 MiB/s with the header).
      expectContinueHeader: false,
      requestHandler: { connectionTimeout: CONNECT_TIMEOUT_MS, socketTimeout: SOCKET_IDLE_TIMEOUT_MS },
    });
  }

  /** Runs one SDK call; a failure becomes an {@link S3StorageError}. Shared with {@link S3MultipartUpload}. */
  private readonly call: S3Call = async (operation, key, send) => {
    const s3 = await this.s3Client();
    try {
      return await send(s3);
    } catch (error) {
      throw this.describe(operation, key, error as SdkError);
    }
  };

  /** {@link call} with a deadline: the request is cancelled after {@link HEALTH_STEP_TIMEOUT_MS}. */
  private async timed<T>(operation: string, key: string, send: (s3: S3Client, signal: AbortSignal) => Promise<T>): Promise<T> {
    const signal = AbortSignal.timeout(HEALTH_STEP_TIMEOUT_MS);
    return this.call(operation, key, (s3) => send(s3, signal)).catch((error: unknown) => {
      if (!signal.aborted) throw error;
      throw new S3StorageError(
        `S3 ${operation} ${this.where(key)} failed: no answer within ${HEALTH_STEP_TIMEOUT_MS} ms from ${this.endpointName()}`,
        operation,
        this.bucket,
        this.root + key,
        undefined,
        'Timeout',
      );
    });
  }

  private async head(key: string): Promise<HeadObjectCommandOutput | null> {
    assertValidKey(key);
    return this.call('HeadObject', key, (s3) => s3.send(new HeadObjectCommand({ Bucket: this.bucket, Key: this.root + key }))).catch((error: unknown) => {
      if (error instanceof S3StorageError && error.httpStatus === 404) return null;
      throw error;
    });
  }

  private writeParams(options: UploadOptions) {
    const s = this.settings;
    if (options.retainUntil && !s.objectLock) {
      throw new ImmutabilityNotSupportedError(`S3 location ${this.where('')} cannot lock objects: set objectLock (the bucket must have Object Lock enabled)`);
    }
    return {
      ...(s.serverSideEncryption ? { ServerSideEncryption: s.serverSideEncryption } : {}),
      ...(s.kmsKeyId ? { SSEKMSKeyId: s.kmsKeyId } : {}),
      ...(s.storageClass ? { StorageClass: s.storageClass } : {}),
      ...(options.retainUntil && s.objectLock ? { ObjectLockMode: s.objectLock.mode, ObjectLockRetainUntilDate: options.retainUntil } : {}),
    };
  }

  /** S3 refuses uploads to an Object Lock bucket without a body checksum (Content-MD5 or x-amz-checksum-*). */
  private checksumParams() {
    return this.settings.objectLock ? ({ ChecksumAlgorithm: 'CRC32' } as const) : {};
  }

  private notFound(key: string) {
    return (error: unknown): never => {
      if (error instanceof S3StorageError && (error.code === 'NoSuchKey' || error.code === 'NotFound')) throw new ObjectNotFoundError(key);
      throw error;
    };
  }

  private describe(operation: string, key: string, error: SdkError): S3StorageError {
    const status = error.$metadata?.httpStatusCode;
    const code = status === undefined ? (error.code ?? error.name) : error.name;
    const detail = error.message || error.errors?.map((e) => e.message).join('; ') || code || 'unknown error';
    const answer = status === undefined ? `no answer from ${this.endpointName()}` : `HTTP ${status}${code ? ` ${code}` : ''}`;
    const message = `S3 ${operation} ${this.where(key)} failed: ${answer}: ${detail}`;
    return new S3StorageError(this.redact(message), operation, this.bucket, this.root + key, status, code);
  }

  private where(key: string): string {
    return `s3://${this.bucket}/${this.root}${key}`;
  }

  private endpointName(): string {
    return this.settings.endpoint ?? `AWS S3 (${this.settings.region ?? S3_DEFAULTS.region})`;
  }

  private redact(text: string): string {
    return this.#secretValues.reduce((out, secret) => out.split(secret).join('[redacted]'), text);
  }
}

/** S3's answers when a delete is refused because of Object Lock. */
function isLockRefusal(error: S3StorageError): boolean {
  return (error.code === 'AccessDenied' || error.code === 'InvalidRequest') && /object ?lock|retention|legal hold|WORM/i.test(error.message);
}

/**
 * Returns `body` when the server sent exactly the asked range; otherwise the asked bytes of it: HTTP lets a server
 * ignore `Range` (200 with the whole object) and some S3 emulators widen it (s3rver answers `bytes=0-0` with
 * everything). The rest of the body is not read: the connection is closed once the range is through.
 * @throws Error when the server's range starts elsewhere than asked
 */
function clipToRange(body: Readable, range: ByteRange, contentRange: string | undefined, what: string): Readable {
  const sent = /^bytes (\d+)-(\d+)\/(\d+|\*)$/.exec(contentRange ?? '');
  const wanted = range.end === undefined ? Infinity : range.end - range.start + 1;
  if (sent && Number(sent[1]) !== range.start) {
    body.destroy();
    throw new Error(`${what} answered bytes ${sent[1]}-${sent[2]} to a request for bytes ${range.start}-${range.end ?? ''}`);
  }
  if (sent && Number(sent[2]) - Number(sent[1]) + 1 <= wanted) return body;
  return Readable.from(window(body, sent ? 0 : range.start, wanted), { objectMode: false });
}

async function* window(source: Readable, skip: number, length: number): AsyncGenerator<Buffer> {
  let toSkip = skip;
  let left = length;
  for await (const chunk of source as AsyncIterable<Buffer>) {
    let piece = chunk;
    if (toSkip > 0) {
      const skipped = Math.min(toSkip, piece.length);
      toSkip -= skipped;
      piece = piece.subarray(skipped);
    }
    if (piece.length === 0) continue;
    if (piece.length >= left) {
      yield piece.subarray(0, left);
      return; // leaving the loop destroys the source: the rest is not downloaded
    }
    left -= piece.length;
    yield piece;
  }
}
