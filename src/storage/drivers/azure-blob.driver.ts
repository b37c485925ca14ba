import { Readable } from 'node:stream';
import { finished } from 'node:stream/promises';
import { BlobImmutabilityPolicy, BlobItem, BlockBlobClient, ContainerClient } from '@azure/storage-blob';
import { SecretResolver } from '../../secrets/secret-resolver';
import { AzureBlobConnection, AzureBlobStorageError } from './azure-blob.connection';
import { BlockStagingStream } from './azure-block-stream';
import { AZURE_DEFAULT_BLOCK_SIZE_BYTES, AZURE_DEFAULT_CONCURRENCY, AzureBlobStorageSettings } from './azure-blob.settings';
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

export { AzureBlobStorageSettings } from './azure-blob.settings';
export { AzureBlobStorageError } from './azure-blob.connection';

/** Deadline of metadata operations (properties, listing a page, delete, small puts), in ms. */
const CONTROL_DEADLINE_MS = 20_000;
/** Deadline of a block-list commit (a list of up to 50,000 ids), in ms. */
const COMMIT_DEADLINE_MS = 60_000;
/** Deadline of each health-check request, in ms. */
const HEALTH_DEADLINE_MS = 5_000;
/** Slowest transfer rate tolerated for a block or a small object, in bytes per ms (1 MiB/s). */
const MIN_TRANSFER_BYTES_PER_MS = (1 << 20) / 1000;
/** How many `list` positions (continuation markers) a driver remembers. */
const MARKER_CACHE_SIZE = 1000;
/** Body retries of a download whose connection breaks (each resumes where the stream stopped, checked by ETag). */
const DOWNLOAD_BODY_RETRIES = 5;

interface ListedPage {
  items: BlobItem[];
  next?: string;
}

/**
 * Azure Blob Storage, block blobs in one container under an optional prefix.
 *
 * Atomic publish with Azure's own model: an upload stages blocks (`Put Block`, at most `concurrency` in flight,
 * `blockSizeBytes` each) on the final blob name; staged blocks are invisible (the blob does not exist, or keeps
 * its previous content) until `publish()` commits the block list (`Put Block List`), which replaces the blob
 * atomically. Uncommitted blocks are never read by anyone; Azure drops them at the blob's next commit or
 * `Put Blob`, or after 7 days, and {@link removeStaged} deletes the blob names that only have uncommitted blocks.
 *
 * The client is created on first use, when the credential's secret reference is resolved.
 */
export class AzureBlobStorageDriver implements StorageDriver {
  readonly capabilities: StorageCapabilities;
  private readonly root: string;
  private readonly blockSizeBytes: number;
  private readonly concurrency: number;
  private readonly azure: AzureBlobConnection;
  /** `list` positions: `${prefix}\n${nextAfter}` → the continuation marker that resumes right after `nextAfter`. */
  private readonly markers = new Map<string, string>();

  constructor(
    private readonly settings: AzureBlobStorageSettings,
    secrets: SecretResolver,
  ) {
    this.azure = new AzureBlobConnection(settings, secrets);
    const prefix = settings.prefix ?? '';
    this.root = prefix === '' || prefix.endsWith('/') ? prefix : `${prefix}/`;
    this.blockSizeBytes = settings.blockSizeBytes ?? AZURE_DEFAULT_BLOCK_SIZE_BYTES;
    this.concurrency = settings.concurrency ?? AZURE_DEFAULT_CONCURRENCY;
    this.capabilities = { immutability: settings.immutability === true };
  }

  /**
   * Starts a staged upload (see the class). The stream finishes once every block is staged; `publish()` commits
   * them, with the immutability policy when `retainUntil` is given. `abort()` stops staging, waits for the
   * `Put Block` requests in flight to be answered, then deletes the blob name if it has no committed content (or
   * if its committed content is this upload's own, from a commit whose answer was lost); a blob with other
   * committed content is left as it is, its stale blocks being invisible and dropped by Azure later.
   * @throws ImmutabilityNotSupportedError `retainUntil` without `immutability` in the settings
   * @throws DrError SECRET_UNAVAILABLE when the credential's secret cannot be read (naming the reference)
   */
  async createUpload(key: string, options: UploadOptions = {}): Promise<StagedUpload> {
    assertValidKey(key);
    const policy = this.policyFor(options);
    const container = await this.azure.container();
    const name = this.root + key;
    const blob = container.getBlockBlobClient(name);
    const blockDeadline = this.transferDeadline(this.blockSizeBytes);
    const stream = new BlockStagingStream(this.blockSizeBytes, this.concurrency, async (id, data, index) => {
      await this.azure.call(`stageBlock #${index}`, name, blockDeadline, (abortSignal) => blob.stageBlock(id, data, data.length, { abortSignal }));
    });
    let state: 'open' | 'published' | 'aborted' = 'open';
    let commitTried = false;
    let aborting: Promise<void> | undefined;
    return {
      stream,
      publish: async () => {
        if (state === 'published') return;
        if (state === 'aborted') throw new Error(`the upload of ${name} was aborted`);
        if (stream.errored) throw stream.errored;
        if (!stream.writableFinished) await finished(stream);
        commitTried = true;
        await this.azure.call('commitBlockList', name, COMMIT_DEADLINE_MS, (abortSignal) =>
          blob.commitBlockList(stream.blockIds, { abortSignal, immutabilityPolicy: policy }),
        );
        state = 'published';
        if (policy) await this.confirmLocked(blob, policy);
      },
      abort: () => {
        if (state === 'published') return Promise.resolve();
        state = 'aborted';
        aborting ??= (async () => {
          stream.destroy();
          // Let the Put Block requests in flight be answered, so that no block lands after the cleanup.
          await stream.whenIdle();
          // A commit whose answer was lost may have succeeded: the blob is ours if it is made of our blocks.
          if (commitTried && stream.startedStaging && (await this.committedBy(blob, stream.blockIds[0]))) {
            await this.azure.call('deleteBlob', name, CONTROL_DEADLINE_MS, (abortSignal) => blob.delete({ abortSignal }));
          } else if (stream.startedStaging) {
            await this.discardUncommitted(blob);
          }
        })().catch((error: unknown) => {
          aborting = undefined; // a later abort() tries the cleanup again
          throw error;
        });
        return aborting;
      },
    };
  }

  /**
   * Writes a small object: one `Put Blob` when it fits in a block (atomic by itself), a staged upload otherwise.
   * @throws ImmutabilityNotSupportedError as {@link createUpload}
   */
  async putObject(key: string, body: Buffer, options: UploadOptions = {}): Promise<void> {
    assertValidKey(key);
    if (body.length > this.blockSizeBytes) {
      const upload = await this.createUpload(key, options);
      try {
        upload.stream.end(body);
        await finished(upload.stream);
        await upload.publish();
      } catch (error) {
        await upload.abort().catch(() => undefined);
        throw error;
      }
      return;
    }
    const policy = this.policyFor(options);
    const container = await this.azure.container();
    const blob = container.getBlockBlobClient(this.root + key);
    await this.azure.call('upload', blob.name, this.transferDeadline(body.length), (abortSignal) =>
      blob.upload(body, body.length, { abortSignal, immutabilityPolicy: policy }),
    );
    if (policy) await this.confirmLocked(blob, policy);
  }

  /**
   * Streams the object or an inclusive byte range of it (`Get Blob` with a range). The deadline covers the
   * answer's headers; a connection that breaks mid-body is resumed by the SDK (same ETag) up to 5 times.
   * @throws ObjectNotFoundError when the blob does not exist
   * @throws AzureBlobStorageError 416 when the range starts beyond the end of the object
   */
  async read(key: string, range?: ByteRange): Promise<Readable> {
    assertValidKey(key);
    const validEnd = (end: number | undefined, start: number) => end === undefined || (Number.isSafeInteger(end) && end >= start);
    if (range && !(Number.isSafeInteger(range.start) && range.start >= 0 && validEnd(range.end, range.start))) {
      throw new RangeError(`invalid byte range ${JSON.stringify(range)}`);
    }
    const container = await this.azure.container();
    const blob = container.getBlobClient(this.root + key);
    const offset = range?.start ?? 0;
    const count = range?.end === undefined ? undefined : range.end - offset + 1;
    try {
      const response = await this.azure.call('download', blob.name, CONTROL_DEADLINE_MS, async (deadline) => {
        // The deadline covers the answer's headers only: the body may take as long as the reader wants.
        const headers = new AbortController();
        const onDeadline = () => headers.abort();
        deadline.addEventListener('abort', onDeadline, { once: true });
        try {
          return await blob.download(offset, count, { abortSignal: headers.signal, maxRetryRequests: DOWNLOAD_BODY_RETRIES });
        } finally {
          deadline.removeEventListener('abort', onDeadline);
        }
      });
      return response.readableStreamBody as Readable;
    } catch (error) {
      if (AzureBlobStorageError.isBlobNotFound(error)) throw new ObjectNotFoundError(key);
      throw error;
    }
  }

  /** Reads a small object whole. @throws ObjectNotFoundError */
  async readObject(key: string): Promise<Buffer> {
    return Buffer.concat(await (await this.read(key)).toArray());
  }

  /** Size and last-modified time of the committed blob, or null when there is none (staged blocks do not count). */
  async stat(key: string): Promise<ObjectStat | null> {
    assertValidKey(key);
    const container = await this.azure.container();
    const blob = container.getBlobClient(this.root + key);
    try {
      const p = await this.azure.call('getProperties', blob.name, CONTROL_DEADLINE_MS, (abortSignal) => blob.getProperties({ abortSignal }));
      return { key, sizeBytes: p.contentLength ?? 0, modifiedAt: p.lastModified ?? new Date(0) };
    } catch (error) {
      if (AzureBlobStorageError.isBlobNotFound(error)) return null;
      throw error;
    }
  }

  /**
   * Committed objects under `prefix`, in Azure's listing order (lexicographic; for the ASCII keys of this
   * service, JavaScript string order), `limit` (default 1000) at a time after `after`. Keys with a segment
   * starting with `.` (the health probe) are left out, as in the local driver.
   *
   * Azure has no StartAfter. Listing after a key uses, in order: the continuation marker this driver returned
   * with that key (remembered for the last 1000 pages: sequential paging costs one request per page), else
   * List Blobs' `startFrom` (service version 2026-02-06+, inclusive) — both then filter out names up to `after`,
   * which keeps the result right on a service that ignores `startFrom` (Azurite 3.35 does), at the cost of
   * reading the names before `after` there.
   */
  async list(prefix: string, options: { after?: string; limit?: number } = {}): Promise<ObjectPage> {
    const limit = options.limit ?? 1000;
    if (!Number.isSafeInteger(limit) || limit < 1) throw new RangeError(`invalid list limit ${limit}`);
    const container = await this.azure.container();
    const afterName = options.after === undefined ? undefined : this.root + options.after;
    let marker = options.after === undefined ? undefined : this.markers.get(`${prefix}\n${options.after}`);
    // startFrom only for a first page, and only inside the prefix (an `after` outside it needs no position)
    const startFrom = afterName?.startsWith(this.root + prefix) && marker === undefined ? afterName : undefined;
    const objects: ObjectStat[] = [];
    let more = true;
    while (more && objects.length < limit) {
      // Never more than what is still needed: a page is always consumed whole, so its marker resumes after our last key.
      const page = await this.listPage(container, this.root + prefix, {
        marker,
        startFrom: marker === undefined ? startFrom : undefined,
        pageSize: limit - objects.length,
      });
      for (const item of page.items) {
        if (afterName !== undefined && item.name <= afterName) continue;
        const key = item.name.slice(this.root.length);
        if (key.split('/').some((segment) => segment.startsWith('.'))) continue;
        objects.push({ key, sizeBytes: item.properties.contentLength ?? 0, modifiedAt: item.properties.lastModified });
      }
      marker = page.next;
      more = marker !== undefined;
    }
    if (!more) return { objects };
    const nextAfter = objects[objects.length - 1].key;
    this.markers.set(`${prefix}\n${nextAfter}`, marker!);
    if (this.markers.size > MARKER_CACHE_SIZE) this.markers.delete(this.markers.keys().next().value!);
    return { objects, nextAfter };
  }

  /**
   * Deletes the blob (and its snapshots); a missing blob is fine.
   * @throws ObjectLockedError when an immutability policy or legal hold protects it (409 BlobImmutableDueTo...)
   */
  async delete(key: string): Promise<void> {
    assertValidKey(key);
    const container = await this.azure.container();
    const blob = container.getBlockBlobClient(this.root + key);
    try {
      await this.azure.call('deleteBlob', blob.name, CONTROL_DEADLINE_MS, (abortSignal) => blob.delete({ abortSignal, deleteSnapshots: 'include' }));
    } catch (error) {
      if (AzureBlobStorageError.isBlobNotFound(error)) return;
      if (AzureBlobStorageError.isImmutable(error)) {
        const p = await blob.getProperties({ abortSignal: AbortSignal.timeout(CONTROL_DEADLINE_MS) }).catch(() => undefined);
        throw new ObjectLockedError(key, p?.immutabilityPolicyExpiresOn);
      }
      throw error;
    }
  }

  /**
   * Deletes the blob names under `prefix` that have uncommitted blocks and no committed content: what a process
   * that died mid-upload of a new object leaves. Found by listing the prefix twice in step, with and without
   * uncommitted blobs; each is checked again (`Get Blob Properties` 404) just before its `Delete Blob`.
   *
   * Not counted nor touched: uncommitted blocks staged on a blob that has committed content (an interrupted
   * replacement). Removing them would mean re-committing the blob (a new version, a new ETag, and with
   * immutability a new unprotected version); they are invisible, do not disturb later uploads (their ids are
   * unique to their upload), and Azure drops them at the blob's next commit or after 7 days.
   * @returns how many blob names were removed
   */
  async removeStaged(prefix: string, shouldRemove?: StagedKeyFilter): Promise<number> {
    const container = await this.azure.container();
    const full = this.root + prefix;
    const committed = this.names(container, full, false);
    let nextCommitted = await committed.next();
    let removed = 0;
    for await (const name of this.names(container, full, true)) {
      while (!nextCommitted.done && nextCommitted.value < name) nextCommitted = await committed.next();
      if (!nextCommitted.done && nextCommitted.value === name) continue;
      if (shouldRemove && !(await shouldRemove(name.slice(this.root.length)))) continue;
      if (await this.discardUncommitted(container.getBlockBlobClient(name))) removed++;
    }
    return removed;
  }

  /**
   * The container answers a listing, and a probe object `.health/probe` can be written and deleted; each request
   * has a 5 s deadline. @throws AzureBlobStorageError (or DrError SECRET_UNAVAILABLE) naming what failed
   */
  async checkHealth(): Promise<void> {
    const container = await this.azure.container();
    await this.azure.call('listBlobs', undefined, HEALTH_DEADLINE_MS, (abortSignal) =>
      container
        .listBlobsFlat({ prefix: `${this.root}.health/`, abortSignal })
        .byPage({ maxPageSize: 1 })
        .next(),
    );
    const probe = container.getBlockBlobClient(`${this.root}.health/probe`);
    const body = Buffer.from(new Date().toISOString());
    await this.azure.call('upload', probe.name, HEALTH_DEADLINE_MS, (abortSignal) => probe.upload(body, body.length, { abortSignal }));
    try {
      await this.azure.call('deleteBlob', probe.name, HEALTH_DEADLINE_MS, (abortSignal) => probe.delete({ abortSignal }));
    } catch (error) {
      // a container-wide immutability policy may protect the probe too: it was written, which is what matters
      if (!AzureBlobStorageError.isBlobNotFound(error) && !AzureBlobStorageError.isImmutable(error)) throw error;
    }
  }

  /** Lists one page of blob names under `prefix` (`marker` from the previous page). */
  private async listPage(
    container: ContainerClient,
    prefix: string,
    options: { marker?: string; startFrom?: string; pageSize: number; includeUncommitted?: boolean },
  ): Promise<ListedPage> {
    const result = await this.azure.call('listBlobs', undefined, CONTROL_DEADLINE_MS, (abortSignal) =>
      container
        .listBlobsFlat({ prefix, abortSignal, startFrom: options.startFrom, includeUncommitedBlobs: options.includeUncommitted })
        .byPage({ continuationToken: options.marker, maxPageSize: Math.min(options.pageSize, 5000) })
        .next(),
    );
    if (result.done) return { items: [] };
    return { items: result.value.segment.blobItems, next: result.value.continuationToken || undefined };
  }

  /** Every blob name under `prefix`, page by page, with or without the names that only have uncommitted blocks. */
  private async *names(container: ContainerClient, prefix: string, includeUncommitted: boolean): AsyncGenerator<string> {
    let marker: string | undefined;
    do {
      const page = await this.listPage(container, prefix, { marker, pageSize: 5000, includeUncommitted });
      for (const item of page.items) yield item.name;
      marker = page.next;
    } while (marker);
  }

  /**
   * Removes the uncommitted blocks of a blob that has no committed content, by deleting the blob name (Azure
   * accepts `Delete Blob` there; it is also what its troubleshooting guide suggests). A blob with committed
   * content is left alone (see {@link removeStaged}). @returns whether a blob name was deleted
   */
  private async discardUncommitted(blob: BlockBlobClient): Promise<boolean> {
    try {
      await this.azure.call('getProperties', blob.name, CONTROL_DEADLINE_MS, (abortSignal) => blob.getProperties({ abortSignal }));
      return false;
    } catch (error) {
      if (!AzureBlobStorageError.isBlobNotFound(error)) throw error;
    }
    try {
      await this.azure.call('deleteBlob', blob.name, CONTROL_DEADLINE_MS, (abortSignal) => blob.delete({ abortSignal }));
      return true;
    } catch (error) {
      if (AzureBlobStorageError.isBlobNotFound(error)) return false;
      throw error;
    }
  }

  /** Whether the blob's committed content starts with the block `firstBlockId` (ids are unique to an upload). */
  private async committedBy(blob: BlockBlobClient, firstBlockId: string): Promise<boolean> {
    try {
      const list = await this.azure.call('getBlockList', blob.name, CONTROL_DEADLINE_MS, (abortSignal) => blob.getBlockList('committed', { abortSignal }));
      return list.committedBlocks?.[0]?.name === firstBlockId;
    } catch (error) {
      if (AzureBlobStorageError.isBlobNotFound(error)) return false;
      throw error;
    }
  }

  private policyFor(options: UploadOptions): BlobImmutabilityPolicy | undefined {
    const until = options.retainUntil;
    if (!until) return undefined;
    if (!this.capabilities.immutability) {
      throw new ImmutabilityNotSupportedError(
        `Azure container ${this.settings.container} is not set up for immutability (settings.immutability): ` + 'cannot lock objects until a date',
      );
    }
    if (!(until.getTime() > Date.now())) throw new RangeError(`retainUntil ${until.toISOString()} is not in the future`);
    return { expiriesOn: until, policyMode: this.settings.immutabilityMode ?? 'Unlocked' };
  }

  /**
   * Checks that the blob just written carries the policy (a service without version-level immutability may
   * ignore the headers: Azurite does). If not, deletes it, so that no unprotected object stands where a
   * protected one was asked for. @throws ImmutabilityNotSupportedError
   */
  private async confirmLocked(blob: BlockBlobClient, policy: BlobImmutabilityPolicy): Promise<void> {
    const p = await this.azure.call('getProperties', blob.name, CONTROL_DEADLINE_MS, (abortSignal) => blob.getProperties({ abortSignal }));
    const until = p.immutabilityPolicyExpiresOn?.getTime();
    if (until !== undefined && until >= policy.expiriesOn!.getTime() - 1000) return;
    await this.azure.call('deleteBlob', blob.name, CONTROL_DEADLINE_MS, (abortSignal) => blob.delete({ abortSignal })).catch(() => undefined);
    throw new ImmutabilityNotSupportedError(
      `Azure stored ${blob.name} in container ${this.settings.container} without the requested immutability policy ` +
        '(is version-level immutability enabled on the container or account?); the unprotected object was deleted',
    );
  }

  /** Deadline (ms) of a request carrying `bytes`: 30 s plus the time at 1 MiB/s. */
  private transferDeadline(bytes: number): number {
    return 30_000 + Math.ceil(bytes / MIN_TRANSFER_BYTES_PER_MS);
  }
}
