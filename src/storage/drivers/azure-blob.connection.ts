import { AnonymousCredential, BlobServiceClient, ContainerClient, StoragePipelineOptions, StorageSharedKeyCredential } from '@azure/storage-blob';
import { SecretResolver } from '../../secrets/secret-resolver';
import { AzureBlobStorageSettings } from './azure-blob.settings';

/**
 * Retries of every request (the SDK's exponential policy, on network errors, 500 and 503): 4 tries, the 2nd at
 * once, then 0.8 s and 2.4 s later, so a refused connection fails after about 3 s. Each operation also has a
 * deadline ({@link AzureBlobConnection.call}) covering all its tries, because the SDK puts no client-side time
 * limit on a request: without it a black-holed server would hang until the kernel gives up on the connection.
 */
const RETRY_OPTIONS = { maxTries: 4, retryDelayInMs: 800, maxRetryDelayInMs: 4_000 };

/**
 * A failed Azure request: the operation, the container, the blob and what Azure (or the network) said. Messages
 * never hold credentials (keys and SAS signatures are scrubbed; the SDK's request object is not attached).
 */
export class AzureBlobStorageError extends Error {
  constructor(
    message: string,
    readonly operation: string,
    /** HTTP status, absent for network failures and timeouts. */
    readonly statusCode: number | undefined,
    /** Azure error code (`BlobNotFound`, `AuthorizationFailure`...), network error code (`ECONNREFUSED`) or `TIMEOUT`. */
    readonly code: string | undefined,
  ) {
    super(message);
    this.name = 'AzureBlobStorageError';
  }

  /** A 404 about the blob (not about the container). */
  static isBlobNotFound(error: unknown): boolean {
    return error instanceof AzureBlobStorageError && error.statusCode === 404 && error.code !== 'ContainerNotFound';
  }

  /** A 409 `BlobImmutableDueToPolicy` / `BlobImmutableDueToLegalHold`. */
  static isImmutable(error: unknown): boolean {
    return error instanceof AzureBlobStorageError && error.statusCode === 409 && /^BlobImmutable/.test(error.code ?? '');
  }
}

/**
 * The SDK client of one location's container, created on first use from the settings' credential: the secret
 * reference is resolved then, and again after Azure refuses a request with 403 (a rotated key or SAS is picked up).
 * Runs every request under a deadline and turns failures into {@link AzureBlobStorageError}.
 */
export class AzureBlobConnection {
  private connecting?: Promise<ContainerClient>;
  /** Every secret value resolved so far, scrubbed from messages. */
  private readonly scrubbed = new Set<string>();

  constructor(
    private readonly settings: AzureBlobStorageSettings,
    private readonly secrets: SecretResolver,
  ) {}

  /**
   * The container client. @throws DrError SECRET_UNAVAILABLE naming the reference when the secret cannot be
   * read; Error when a connection string cannot be parsed (the value is not quoted)
   */
  container(): Promise<ContainerClient> {
    this.connecting ??= this.connect().catch((error: unknown) => {
      this.connecting = undefined;
      throw error;
    });
    return this.connecting;
  }

  /**
   * Runs one SDK call with an `AbortSignal` that fires after `deadlineMs` (all retries included).
   * @param operation what is done, for the message (`stageBlock #3`, `commitBlockList`)
   * @param blobName the blob concerned, if any, for the message
   * @throws AzureBlobStorageError naming operation, container, blob, HTTP status and Azure error code
   */
  async call<T>(operation: string, blobName: string | undefined, deadlineMs: number, run: (signal: AbortSignal) => Promise<T>): Promise<T> {
    const signal = AbortSignal.timeout(deadlineMs);
    try {
      return await run(signal);
    } catch (error) {
      const e = error as { statusCode?: unknown; code?: unknown; details?: { errorCode?: unknown }; message?: unknown; name?: unknown };
      const statusCode = typeof e.statusCode === 'number' ? e.statusCode : undefined;
      const code = [e.details?.errorCode, e.code].find((c): c is string => typeof c === 'string' && c.length > 0);
      const timedOut = e.name === 'AbortError' && signal.aborted;
      const said = timedOut
        ? `no answer within ${deadlineMs} ms`
        : String(e.message ?? error)
            .split('\n')[0]
            .trim();
      const where = `container ${this.settings.container}${blobName === undefined ? '' : `, blob ${blobName}`}`;
      const what = [statusCode && `HTTP ${statusCode}`, code && !said.includes(code) ? code : undefined, said].filter(Boolean).join(' ');
      let message = `Azure Blob ${operation} failed (${where}): ${what}`;
      if (code === 'InvalidBlobOrBlock' && operation.startsWith('stageBlock')) {
        message += ' (another client may have staged blocks with ids of another length on this blob: they expire after 7 days)';
      }
      if (statusCode === 403) this.connecting = undefined;
      throw new AzureBlobStorageError(this.scrub(message), operation, statusCode, timedOut ? 'TIMEOUT' : code);
    }
  }

  private async connect(): Promise<ContainerClient> {
    const s = this.settings;
    const options: StoragePipelineOptions = { retryOptions: RETRY_OPTIONS, keepAliveOptions: { enable: true } };
    let service: BlobServiceClient;
    if (s.connectionStringSecret) {
      const value = await this.secrets.resolve(s.connectionStringSecret, 'settings.connectionStringSecret');
      this.remember(value, secretParts(value, ';', /^(AccountKey|SharedAccessSignature)=/i));
      try {
        service = BlobServiceClient.fromConnectionString(value, options);
      } catch {
        const ref = s.connectionStringSecret;
        throw new Error(`settings.connectionStringSecret (${ref}) does not hold a valid Azure Storage connection string`);
      }
    } else if (s.accountKeySecret) {
      const value = await this.secrets.resolve(s.accountKeySecret, 'settings.accountKeySecret');
      this.remember(value, []);
      service = new BlobServiceClient(s.accountUrl!, new StorageSharedKeyCredential(s.accountName!, value), options);
    } else if (s.sasTokenSecret) {
      const token = (await this.secrets.resolve(s.sasTokenSecret, 'settings.sasTokenSecret')).replace(/^\?/, '');
      this.remember(token, secretParts(token, '&', /^sig=/i));
      service = new BlobServiceClient(`${s.accountUrl!.replace(/\/+$/, '')}?${token}`, new AnonymousCredential(), options);
    } else {
      throw new Error('the Azure Blob storage settings name no credential');
    }
    return service.getContainerClient(s.container);
  }

  private remember(value: string, parts: string[]): void {
    for (const secret of [value, ...parts]) if (secret.length >= 8) this.scrubbed.add(secret);
  }

  private scrub(text: string): string {
    let out = text.replace(/(sig|AccountKey|SharedAccessSignature)=[^&;\s]+/gi, '$1=***');
    for (const secret of this.scrubbed) out = out.split(secret).join('***');
    return out;
  }
}

/** Values of the `name=value` parts of `text` (split on `separator`) whose `name=` matches, raw and URL-decoded. */
function secretParts(text: string, separator: string, name: RegExp): string[] {
  return text
    .split(separator)
    .filter((part) => name.test(part))
    .flatMap((part) => {
      const value = part.slice(part.indexOf('=') + 1);
      let decoded = value;
      try {
        decoded = decodeURIComponent(value);
      } catch {
        // not URL-encoded
      }
      return [value, decoded, ...secretParts(decoded, '&', /^sig=/i)];
    });
}
