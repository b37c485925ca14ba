import { randomBytes } from 'node:crypto';
import { Readable, Writable } from 'node:stream';
import { finished } from 'node:stream/promises';
import { Logger } from '@nestjs/common';
import { ApiError, Bucket, File, FileMetadata, GetFilesOptions, IdempotencyStrategy, Storage, StorageOptions } from '@google-cloud/storage';
import { DrError } from '../../errors/dr-error';
import { Crc32c } from './crc32c';
import { GCS_CHUNK_GRANULARITY_BYTES, GcsStorageSettings } from './gcs.settings';
import { SecretResolver } from '../../secrets/secret-resolver';

export { GcsStorageSettings } from './gcs.settings';
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

const KiB = 1024;
const MiB = 1024 * KiB;
const DEFAULT_CHUNK_SIZE_BYTES = 16 * MiB;
const DEFAULT_REQUEST_TIMEOUT_MS = 120_000;
const HEALTH_TIMEOUT_MS = 5_000;
const STAGING_MARK = '.partial-';
const STAGING_NAME = /(^|\/)\.([^/]*)\.partial-[0-9a-f]{12}$/;

interface Clients {
  /**
   * Retries transient failures and refused connections 3 times, waiting 1, 2 and 4 s (+ up to 1 s of jitter each):
   * an unreachable server fails in about 10 s.
   */
  data: Bucket;
  /** No retry, {@link HEALTH_TIMEOUT_MS} per request. */
  health: Bucket;
}

/**
 * Google Cloud Storage, through the JSON API (@google-cloud/storage 7).
 *
 * Uploads are published atomically by deferring the finalization of a resumable upload: the stream's bytes go to
 * the upload session of the final object name as intermediate chunks of `chunkSizeBytes` (`isPartialUpload`; the
 * last intermediate chunk may be shorter, a multiple of 256 KiB), always holding the last 1..256 KiB back, so
 * nothing exists under the name when the stream ends; `publish()` sends those bytes as the final chunk, which
 * creates the object whole (GCS object writes are atomic, a replaced object stays readable until then) and checks
 * the CRC32C of the whole object end to end. An object of at most 256 KiB is written by one single-request upload
 * in `publish()`. No staging copy is made, so publishing
 * costs no server-side copy and no early-deletion charge in Nearline/Coldline/Archive buckets, and the retention
 * is set when the object is created.
 *
 * An upload session leaves nothing listable, so `createUpload` first writes an empty marker object
 * `<dir>/.<name>.partial-<12 hex>` (custom metadata `drStagingFor`), deleted by `publish()` and `abort()`;
 * `removeStaged` deletes the markers a crashed process left. The abandoned sessions themselves expire in GCS after
 * a week. Listing skips names with a segment that starts with `.` (markers, the health probe), like the local driver.
 *
 * Immutability is GCS Object Retention Lock, per object ({@link GcsStorageSettings.objectRetentionMode}). A
 * bucket-level retention policy or default event-based hold would also cover the markers and the health probe,
 * which then could not be deleted: use per-object retention instead.
 */
export class GcsStorageDriver implements StorageDriver {
  readonly capabilities: StorageCapabilities;
  private readonly logger = new Logger(GcsStorageDriver.name);
  private readonly root: string;
  private readonly chunkSize: number;
  private clients?: Promise<Clients>;

  /** @throws DrError VALIDATION_FAILED for settings that contradict each other */
  constructor(
    private readonly settings: GcsStorageSettings,
    private readonly secrets: SecretResolver,
  ) {
    if (settings.anonymous && (!settings.apiEndpoint || settings.keyFileSecret)) {
      throw DrError.validation([{ field: 'settings.anonymous', message: 'anonymous needs apiEndpoint and excludes keyFileSecret' }]);
    }
    const prefix = (settings.prefix ?? '').replace(/\/+$/, '');
    if (prefix) assertValidKey(prefix);
    this.root = prefix ? `${prefix}/` : '';
    this.chunkSize = settings.chunkSizeBytes ?? DEFAULT_CHUNK_SIZE_BYTES;
    if (this.chunkSize % GCS_CHUNK_GRANULARITY_BYTES !== 0 || this.chunkSize <= 0) {
      throw DrError.validation([{ field: 'settings.chunkSizeBytes', message: 'must be a multiple of 262144 (256 KiB)' }]);
    }
    this.capabilities = { immutability: settings.objectRetentionMode !== undefined };
  }

  /** `gs://bucket/prefix/`, for messages. */
  get location(): string {
    return `gs://${this.settings.bucket}/${this.root}`;
  }

  /**
   * Starts a deferred-finalization upload (see the class doc). Writes the staging marker first, so it fails here,
   * before any byte is streamed, when the bucket is unreachable or the credentials are wrong.
   * @throws ImmutabilityNotSupportedError when `retainUntil` is given and `objectRetentionMode` is not set
   */
  async createUpload(key: string, options: UploadOptions = {}): Promise<StagedUpload> {
    const name = this.nameOf(key);
    const metadata = this.objectMetadata(options);
    const { data } = await this.getClients();
    const marker = data.file(stagingNameOf(name));
    await marker
      .save(Buffer.alloc(0), { resumable: false, validation: false, metadata: { contentType: 'application/octet-stream', metadata: { drStagingFor: key } } })
      .catch((error: unknown) => {
        throw this.failure('create staging marker for', key, error);
      });
    return new GcsStagedUpload(data.file(name), marker, metadata, this.chunkSize, (op, error) => this.failure(op, key, error), this.logger);
  }

  /** Writes a small object with one single-request upload (atomic in GCS; retried on transient failures). */
  async putObject(key: string, body: Buffer, options?: UploadOptions): Promise<void> {
    const name = this.nameOf(key);
    const metadata = this.objectMetadata(options ?? {});
    const { data } = await this.getClients();
    await data
      .file(name)
      .save(body, { resumable: false, validation: 'crc32c', metadata })
      .catch((error: unknown) => {
        throw this.failure('write', key, error);
      });
  }

  /**
   * Streams the object or an inclusive byte range of it. Resolves once GCS has answered, so a missing object rejects
   * here. A whole-object read is checked against the object's CRC32C by the client (GCS sends it; an emulator may not).
   * @throws ObjectNotFoundError
   */
  async read(key: string, range?: ByteRange): Promise<Readable> {
    const name = this.nameOf(key);
    const { data } = await this.getClients();
    const stream = data.file(name).createReadStream(range ? { start: range.start, end: range.end, decompress: false } : { decompress: false });
    try {
      await new Promise<void>((resolve, reject) => {
        stream.once('error', reject);
        stream.once('response', (res: { statusCode?: number; status?: number }) => {
          const status = res.statusCode ?? res.status ?? 0;
          if (status >= 200 && status < 300) {
            stream.off('error', reject);
            resolve();
          } // otherwise the client reads the error body and emits 'error'
        });
        stream.read(0); // the request starts on the first read
      });
    } catch (error) {
      stream.destroy();
      if (statusOf(error) === 404) throw new ObjectNotFoundError(key);
      throw this.failure('read', key, error);
    }
    return stream;
  }

  /** Reads a small object whole (CRC32C-checked). @throws ObjectNotFoundError */
  async readObject(key: string): Promise<Buffer> {
    const name = this.nameOf(key);
    const { data } = await this.getClients();
    try {
      const [body] = await data.file(name).download({ validation: 'crc32c' });
      return body;
    } catch (error) {
      if (statusOf(error) === 404) throw new ObjectNotFoundError(key);
      throw this.failure('read', key, error);
    }
  }

  /** Size and update time of the object, or null when it does not exist. */
  async stat(key: string): Promise<ObjectStat | null> {
    const name = this.nameOf(key);
    const { data } = await this.getClients();
    try {
      const [metadata] = await data.file(name).getMetadata();
      return statOf(key, metadata);
    } catch (error) {
      if (statusOf(error) === 404) return null;
      throw this.failure('stat', key, error);
    }
  }

  /**
   * Objects under `prefix` in key order (GCS lists in UTF-8 byte order), `limit` (default 1000) at a time after the
   * key `after`. The server skips to `after` (`startOffset`); the driver also drops keys <= `after` and internal
   * names (a segment starting with `.`), fetching further pages until the page is full.
   */
  async list(prefix: string, options: { after?: string; limit?: number } = {}): Promise<ObjectPage> {
    const limit = options.limit ?? 1000;
    const after = options.after;
    const { data } = await this.getClients();
    const objects: ObjectStat[] = [];
    let pageToken: string | undefined;
    try {
      do {
        const query: GetFilesOptions = { prefix: this.root + prefix, maxResults: Math.min(1000, limit + 2), autoPaginate: false };
        if (after !== undefined) query.startOffset = this.root + after;
        if (pageToken) query.pageToken = pageToken;
        const [files, next] = await data.getFiles(query);
        for (const file of files) {
          const key = file.name.slice(this.root.length);
          if (isInternal(key) || (after !== undefined && compareKeys(key, after) <= 0)) continue;
          objects.push(statOf(key, file.metadata));
        }
        pageToken = (next as { pageToken?: string } | null)?.pageToken;
      } while (pageToken && objects.length <= limit);
    } catch (error) {
      throw this.failure('list', prefix, error);
    }
    const page = objects.slice(0, limit);
    return { objects: page, nextAfter: objects.length > limit ? page[page.length - 1].key : undefined };
  }

  /**
   * Deletes the object; a missing one is fine.
   * @throws ObjectLockedError when a retention (object retention, bucket retention policy) or a hold keeps it
   */
  async delete(key: string): Promise<void> {
    const name = this.nameOf(key);
    const { data } = await this.getClients();
    const file = data.file(name);
    try {
      await file.delete({ ignoreNotFound: true });
    } catch (error) {
      if (statusOf(error) === 403 && /retention|hold/i.test(messageOf(error))) {
        const [metadata] = await file.getMetadata().catch(() => [undefined]);
        const until = metadata?.retention?.retainUntilTime ?? metadata?.retentionExpirationTime;
        throw new ObjectLockedError(key, until ? new Date(until) : undefined);
      }
      throw this.failure('delete', key, error);
    }
  }

  /**
   * Deletes the staging markers under `prefix` (matched on the key they stand for, so `crash/ob` finds the marker
   * of `crash/obj`). The upload sessions they stood for cannot be listed; GCS expires them after a week.
   * @returns how many markers were deleted
   */
  async removeStaged(prefix: string, shouldRemove?: StagedKeyFilter): Promise<number> {
    const { data } = await this.getClients();
    const dir = prefix.slice(0, prefix.lastIndexOf('/') + 1);
    let removed = 0;
    let pageToken: string | undefined;
    try {
      do {
        const query: GetFilesOptions = { prefix: this.root + dir, maxResults: 1000, autoPaginate: false };
        if (pageToken) query.pageToken = pageToken;
        const [files, next] = await data.getFiles(query);
        for (const file of files) {
          const key = file.name.slice(this.root.length);
          if (!STAGING_NAME.test(key) || !key.replace(STAGING_NAME, '$1$2').startsWith(prefix)) continue;
          if (shouldRemove && !(await shouldRemove(key.replace(STAGING_NAME, '$1$2')))) continue;
          await file.delete({ ignoreNotFound: true });
          removed++;
        }
        pageToken = (next as { pageToken?: string } | null)?.pageToken;
      } while (pageToken);
    } catch (error) {
      throw this.failure('remove staging markers under', prefix, error);
    }
    return removed;
  }

  /**
   * Lists one object under the prefix (the bucket exists and is readable), then writes and deletes a small probe
   * `<prefix>/.dr-health/<random>`; no retries, 5 s per request.
   * @throws Error naming the bucket and the failed step
   */
  async checkHealth(): Promise<void> {
    const { health } = await this.getClients();
    const probe = health.file(`${this.root}.dr-health/${randomBytes(6).toString('hex')}`);
    let step = 'list';
    try {
      await health.getFiles({ prefix: this.root, maxResults: 1, autoPaginate: false });
      step = 'write a probe in';
      await probe.save(Buffer.from(new Date().toISOString()), { resumable: false, validation: false });
      step = 'delete the probe in';
      await probe.delete({ ignoreNotFound: true });
    } catch (error) {
      throw this.failure(`health check: ${step}`, '', error);
    }
  }

  private nameOf(key: string): string {
    assertValidKey(key);
    return this.root + key;
  }

  private objectMetadata(options: UploadOptions): FileMetadata {
    const metadata: FileMetadata = { contentType: 'application/octet-stream' };
    if (options.retainUntil) {
      if (!this.settings.objectRetentionMode) {
        throw new ImmutabilityNotSupportedError(
          `GCS location ${this.location} cannot lock objects: set objectRetentionMode for a bucket with Object Retention Lock enabled`,
        );
      }
      if (options.retainUntil.getTime() <= Date.now()) throw new RangeError(`retainUntil ${options.retainUntil.toISOString()} is not in the future`);
      metadata.retention = { mode: this.settings.objectRetentionMode, retainUntilTime: options.retainUntil.toISOString() };
    }
    return metadata;
  }

  private getClients(): Promise<Clients> {
    this.clients ??= this.createClients().catch((error: unknown) => {
      this.clients = undefined; // a secret fixed later is picked up by the next call
      throw error;
    });
    return this.clients;
  }

  /** Resolves the key secret (when named) and builds the two clients; no request is made yet. */
  private async createClients(): Promise<Clients> {
    const s = this.settings;
    const base: StorageOptions = { projectId: s.projectId, crc32cGenerator: () => new Crc32c() };
    if (s.apiEndpoint) {
      base.apiEndpoint = s.apiEndpoint.replace(/\/+$/, '');
      base.useAuthWithCustomEndpoint = !s.anonymous;
    }
    if (s.keyFileSecret) {
      const json = await this.secrets.resolve(s.keyFileSecret, 'settings.keyFileSecret');
      let key: { client_email?: unknown; private_key?: unknown; project_id?: unknown };
      try {
        key = JSON.parse(json) as typeof key;
      } catch {
        key = {};
      }
      if (typeof key.client_email !== 'string' || typeof key.private_key !== 'string') {
        throw new DrError('SECRET_UNAVAILABLE', `settings.keyFileSecret: ${s.keyFileSecret} does not hold a service-account JSON key`, [
          { field: 'settings.keyFileSecret', message: `${s.keyFileSecret} does not hold a service-account JSON key (client_email, private_key)` },
        ]);
      }
      base.credentials = { client_email: key.client_email, private_key: key.private_key };
      base.projectId ??= typeof key.project_id === 'string' ? key.project_id : undefined;
    }
    const timeout = s.requestTimeoutMs ?? DEFAULT_REQUEST_TIMEOUT_MS;
    const data = new Storage({
      ...base,
      timeout,
      retryOptions: {
        autoRetry: true,
        maxRetries: 3,
        retryDelayMultiplier: 2,
        maxRetryDelay: 4,
        // A resumable upload counts this from its start, and its retry count is never reset: however long the upload,
        // it gets 3 retries in all (a limit of @google-cloud/storage 7), so the total must not cut them off.
        totalTimeout: 7 * 24 * 3600,
        idempotencyStrategy: IdempotencyStrategy.RetryAlways,
      },
    });
    withTimeout(data, timeout);
    const health = new Storage({ ...base, timeout: HEALTH_TIMEOUT_MS, retryOptions: { autoRetry: false, maxRetries: 0 } });
    withTimeout(health, HEALTH_TIMEOUT_MS);
    return { data: data.bucket(s.bucket), health: health.bucket(s.bucket) };
  }

  /** An Error whose message names the operation, the object and the cause, never a credential or a session URL. */
  private failure(op: string, key: string, error: unknown): Error {
    if (error instanceof DrError || error instanceof ObjectNotFoundError || error instanceof ObjectLockedError) return error;
    const target = `gs://${this.settings.bucket}/${this.root}${key}`;
    const status = statusOf(error);
    let reason = scrub(messageOf(error)).slice(0, 500);
    if (/default credentials/i.test(reason)) {
      reason = 'no credentials: keyFileSecret is not set and Application Default Credentials were not found';
    } else if (status === 404 && !key) {
      reason = `bucket ${this.settings.bucket} does not exist (404)`;
    } else if (status === 401 || status === 403) {
      reason = `access denied (${status}): ${reason}`;
    }
    const wrapped = new Error(`GCS ${op} ${target} failed: ${reason}`);
    (wrapped as Error & { status?: number }).status = status;
    return wrapped;
  }
}

/**
 * The upload behind {@link GcsStorageDriver.createUpload}: bytes go on, in multiples of 256 KiB, to a partial
 * resumable upload of the final name (which sends them in chunks of `chunkSize`); the last 1..256 KiB are held until
 * `publish()`.
 */
class GcsStagedUpload implements StagedUpload {
  readonly stream: Writable;
  private readonly held: Buffer[] = [];
  private heldBytes = 0;
  /** Bytes sent as intermediate chunks. */
  private sentBytes = 0;
  private partial?: Writable;
  private sessionUri?: string;
  private sentCrc32c?: string;
  private settled = false;

  constructor(
    private readonly target: File,
    private readonly marker: File,
    private readonly metadata: FileMetadata,
    private readonly chunkSize: number,
    private readonly failure: (op: string, error: unknown) => Error,
    private readonly logger: Logger,
  ) {
    this.stream = new Writable({
      write: (chunk: Buffer, _encoding, callback) => {
        void this.accept(chunk).then(() => callback(), callback);
      },
      final: (callback) => {
        void this.endPartial().then(() => callback(), callback);
      },
      destroy: (error, callback) => {
        this.partial?.destroy();
        callback(error);
      },
    });
  }

  async publish(): Promise<void> {
    if (this.settled) throw new Error(`upload of ${this.target.name} was already published or aborted`);
    if (!this.stream.writableFinished) await finished(this.stream);
    const tail = Buffer.concat(this.held);
    try {
      if (!this.partial) {
        await this.target.save(tail, { resumable: false, validation: 'crc32c', metadata: this.metadata });
      } else {
        const final = this.target.createWriteStream({
          resumable: true,
          uri: this.sessionUri,
          offset: this.sentBytes,
          resumeCRC32C: this.sentCrc32c,
          chunkSize: this.chunkSize,
          validation: 'crc32c',
          metadata: this.metadata,
        });
        final.end(tail);
        await finished(final);
      }
    } catch (error) {
      throw this.failure('publish', error);
    }
    this.settled = true;
    this.held.length = 0;
    await this.marker.delete({ ignoreNotFound: true }).catch((error: unknown) => {
      this.logger.warn(`${this.failure('delete staging marker', error).message}; removeStaged will collect it`);
    });
  }

  async abort(): Promise<void> {
    if (this.settled) return;
    this.settled = true;
    this.held.length = 0;
    this.stream.destroy();
    if (this.sessionUri) {
      // Cancelling frees the session at once (GCS answers 499); a failure only leaves it to expire.
      await fetch(this.sessionUri, { method: 'DELETE', signal: AbortSignal.timeout(HEALTH_TIMEOUT_MS) }).catch(() => undefined);
    }
    await this.marker.delete({ ignoreNotFound: true }).catch((error: unknown) => {
      throw this.failure('delete staging marker', error);
    });
  }

  /**
   * Holds `chunk`, then forwards all held bytes but the last 1..256 KiB, in a multiple of 256 KiB: whatever the
   * partial upload sends as its last intermediate chunk is then a size GCS accepts, and the final chunk is never empty.
   */
  private async accept(chunk: Buffer): Promise<void> {
    this.held.push(chunk);
    this.heldBytes += chunk.length;
    if (this.heldBytes <= GCS_CHUNK_GRANULARITY_BYTES) return;
    const forward = Math.floor((this.heldBytes - 1) / GCS_CHUNK_GRANULARITY_BYTES) * GCS_CHUNK_GRANULARITY_BYTES;
    const partial = this.startPartial();
    for (const buffer of this.take(forward)) {
      if (partial.destroyed) throw new Error('the resumable upload stream was closed');
      if (!partial.write(buffer)) await drained(partial);
    }
  }

  private startPartial(): Writable {
    if (this.partial) return this.partial;
    const partial = this.target.createWriteStream({
      resumable: true,
      isPartialUpload: true,
      chunkSize: this.chunkSize,
      validation: 'crc32c',
      metadata: this.metadata,
    });
    partial.on('uri', (uri: string) => (this.sessionUri = uri));
    partial.on('crc32c', (crc32c: string) => (this.sentCrc32c = crc32c));
    partial.on('error', (error: unknown) => this.stream.destroy(this.failure('upload', error)));
    this.partial = partial;
    return partial;
  }

  /** Ends the intermediate chunks: every forwarded byte is at GCS when this resolves. */
  private async endPartial(): Promise<void> {
    if (!this.partial) return;
    this.partial.end();
    await finished(this.partial);
    if (!this.sessionUri || this.sentCrc32c === undefined) throw new Error('resumable upload ended without a session URI or a CRC32C');
  }

  /** Removes the first `bytes` held bytes, as buffers without copying. */
  private take(bytes: number): Buffer[] {
    const out: Buffer[] = [];
    let left = bytes;
    while (left > 0) {
      const head = this.held[0];
      if (head.length <= left) {
        out.push(head);
        this.held.shift();
        left -= head.length;
      } else {
        out.push(head.subarray(0, left));
        this.held[0] = head.subarray(left);
        left = 0;
      }
    }
    this.heldBytes -= bytes;
    this.sentBytes += bytes;
    return out;
  }
}

/** Resolves when `stream` drains; rejects when it fails or closes first. */
function drained(stream: Writable): Promise<void> {
  return new Promise((resolve, reject) => {
    const settle = (error?: Error) => {
      stream.off('drain', onDrain).off('error', onError).off('close', onClose);
      if (error) reject(error);
      else resolve();
    };
    const onDrain = () => settle();
    const onError = (error: Error) => settle(error);
    const onClose = () => settle(new Error('the resumable upload stream was closed'));
    stream.on('drain', onDrain).on('error', onError).on('close', onClose);
  });
}

/** Adds `timeout` (ms) to every request of the client, resumable-upload requests included. */
function withTimeout(storage: Storage, timeout: number): void {
  storage.interceptors.push({
    request: (reqOpts) => {
      const opts = reqOpts as { timeout?: number };
      opts.timeout ??= timeout;
      return reqOpts as ReturnType<Storage['interceptors'][number]['request']>;
    },
  });
}

function stagingNameOf(name: string): string {
  const slash = name.lastIndexOf('/');
  return `${name.slice(0, slash + 1)}.${name.slice(slash + 1)}${STAGING_MARK}${randomBytes(6).toString('hex')}`;
}

/** Names the driver keeps for itself: a segment starting with `.` (staging markers, the health probe). */
function isInternal(key: string): boolean {
  return key.startsWith('.') || key.includes('/.');
}

/** Compares keys in UTF-8 byte order, the order GCS lists in. */
function compareKeys(a: string, b: string): number {
  return Buffer.compare(Buffer.from(a), Buffer.from(b));
}

function statOf(key: string, metadata: FileMetadata): ObjectStat {
  return { key, sizeBytes: Number(metadata.size ?? 0), modifiedAt: new Date(metadata.updated ?? metadata.timeCreated ?? 0) };
}

function statusOf(error: unknown): number | undefined {
  const code = (error as ApiError | undefined)?.code;
  return typeof code === 'number' ? code : undefined;
}

function messageOf(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}

/** Drops resumable-session ids (a session URL lets anyone holding it write the object). */
function scrub(message: string): string {
  return message.replace(/upload_id=[^&\s"']+/g, 'upload_id=<redacted>');
}
