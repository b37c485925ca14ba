import { Readable, Writable } from 'node:stream';

/** Metadata of one stored object. */
export interface ObjectStat {
  /** Key relative to the location's root, `/`-separated, e.g. `3f2c.../artifact.tar.zst`. */
  key: string;
  sizeBytes: number;
  modifiedAt: Date;
}

/** An inclusive byte range, as in HTTP `Range: bytes=start-end`. */
export interface ByteRange {
  start: number;
  /** Inclusive; omitted means to the end of the object. */
  end?: number;
}

/** One page of a listing, in key order. */
export interface ObjectPage {
  objects: ObjectStat[];
  /** Pass as `after` to get the next page; absent on the last page. */
  nextAfter?: string;
}

/** Options of an upload. */
export interface UploadOptions {
  /**
   * Make the object undeletable and unchangeable until this time (S3 Object Lock retention, Azure immutability
   * policy). A driver whose store cannot do it throws {@link ImmutabilityNotSupportedError}.
   */
  retainUntil?: Date;
}

/** What a driver's store can do beyond the basic contract. */
export interface StorageCapabilities {
  /** Objects can be locked until a date ({@link UploadOptions.retainUntil}). */
  immutability: boolean;
}

/**
 * An upload in progress. Bytes written to `stream` go to a staging object; nothing is visible under the final
 * key until {@link StagedUpload.publish} succeeds, so a crash or an error never leaves a half-written object
 * under its final name.
 */
export interface StagedUpload {
  readonly stream: Writable;
  /** Makes the object durable and visible under its key, atomically. Call after `stream` has finished. */
  publish(): Promise<void>;
  /** Discards the staged bytes. Safe to call after a failure, and more than once. */
  abort(): Promise<void>;
}

/**
 * What the service needs from a place that keeps artifacts. Drivers know objects, nothing of engines or records.
 * Keys are relative, `/`-separated, without `..` segments; a driver rejects any other key.
 */
export interface StorageDriver {
  readonly capabilities: StorageCapabilities;
  /**
   * Starts a staged upload to `key`, replacing any object there once published. Memory stays bounded whatever
   * the size (a driver buffers at most a few parts).
   * @throws ImmutabilityNotSupportedError when `options.retainUntil` is asked of a store that cannot lock objects
   */
  createUpload(key: string, options?: UploadOptions): Promise<StagedUpload>;
  /** Writes a small object in one call (staged and published atomically). */
  putObject(key: string, body: Buffer, options?: UploadOptions): Promise<void>;
  /** Streams an object or a byte range of it. @throws ObjectNotFoundError */
  read(key: string, range?: ByteRange): Promise<Readable>;
  /** Reads a small object whole. @throws ObjectNotFoundError */
  readObject(key: string): Promise<Buffer>;
  /** The object's metadata, or null when it does not exist. */
  stat(key: string): Promise<ObjectStat | null>;
  /** Objects whose key starts with `prefix`, in key order, `limit` at a time after the key `after`. */
  list(prefix: string, options?: { after?: string; limit?: number }): Promise<ObjectPage>;
  /**
   * Deletes an object; deleting a missing object is not an error.
   * @throws ObjectLockedError when the object is locked (immutability) until a later date
   */
  delete(key: string): Promise<void>;
  /**
   * Removes staging objects left under `prefix` by uploads that never published (a crashed process, a publish that
   * failed). With `shouldRemove`, only those whose (visible) key it accepts: a sweep over a whole location passes
   * a check that the job writing the key has ended. A driver with folders (local) also removes the folders such
   * a sweep leaves empty.
   */
  removeStaged(prefix: string, shouldRemove?: StagedKeyFilter): Promise<number>;
  /** Proves the location is reachable and writable. @throws when it is not */
  checkHealth(): Promise<void>;
}

/** Decides, for the key a staging object would be published under, whether it may be removed. */
export type StagedKeyFilter = (key: string) => Promise<boolean>;

/** Raised when an object does not exist. */
export class ObjectNotFoundError extends Error {
  constructor(readonly key: string) {
    super(`object not found: ${key}`);
  }
}

/** Raised when asked to lock objects in a store that cannot. */
export class ImmutabilityNotSupportedError extends Error {}

/** Raised when deleting an object that is locked until `retainUntil`. */
export class ObjectLockedError extends Error {
  constructor(
    readonly key: string,
    readonly retainUntil?: Date,
  ) {
    super(`object ${key} is locked${retainUntil ? ` until ${retainUntil.toISOString()}` : ''} and cannot be deleted`);
  }
}

/** Raised for a key that is absolute, empty, or has `.`/`..` segments. */
export class InvalidObjectKeyError extends Error {}

/** Validates a storage key. @throws InvalidObjectKeyError */
export function assertValidKey(key: string): void {
  if (!key || key.startsWith('/') || key.includes('\\') || key.includes('\0')) {
    throw new InvalidObjectKeyError(`invalid object key: ${JSON.stringify(key)}`);
  }
  for (const segment of key.split('/')) {
    if (segment === '' || segment === '.' || segment === '..') {
      throw new InvalidObjectKeyError(`invalid object key: ${JSON.stringify(key)}`);
    }
  }
}
