/**
 * The S3 driver against s3rver 3.7.1 (an S3 emulator) run as a child process: the storage driver contract (100 MiB
 * round trip hashed on the way back, server SIGKILLed mid-upload, health checks while it is down), then what is
 * particular to S3.
 *
 * What s3rver cannot show, and how far these tests go instead:
 * - Object Lock: s3rver has no versioning, no object retention and no legal hold (GET/PUT `?retention`,
 *   `?legal-hold`, `?object-lock` answer 501 NotImplemented) and ignores the `x-amz-object-lock-*` headers. So the
 *   tests check only the requests the driver sends (captured by SDK middleware): the lock mode and retain-until date
 *   on CreateMultipartUpload and PutObject, a CRC32 checksum header on every part and on PutObject (S3 refuses
 *   uploads to an Object Lock bucket without one), and that `delete` refuses an object whose HeadObject answer says
 *   it is retained (the answer is rewritten by middleware). Not tested anywhere: that S3 accepts these requests, that
 *   a locked object really cannot be deleted, the versioned delete (DeleteObject with VersionId) on a real
 *   versioned bucket, and the mapping of S3's AccessDenied refusal to ObjectLockedError.
 * - Server-side encryption and storage classes: s3rver ignores `x-amz-server-side-encryption*` and
 *   `x-amz-storage-class`; only the validation of these settings is tested.
 * - Credentials: s3rver checks that the access key id exists but not the signature, so a wrong secret key is
 *   accepted; the tests use an unknown access key id to get a refusal.
 * - Multipart management: s3rver lacks ListMultipartUploads and AbortMultipartUpload; the test server adds both over
 *   s3rver's own upload store (test/support/s3rver-process.js), so an abort really deletes the stored parts and the
 *   tests check the store. Their S3 behaviour at AWS (paging by key and upload id) is implemented from the API
 *   reference, not observed.
 * - s3rver answers `Range: bytes=0-0` with the whole object; the driver clips it (the contract's first-byte read).
 */
import { randomBytes } from 'node:crypto';
import { rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { finished, pipeline } from 'node:stream/promises';
import { inspect } from 'node:util';
import { crc32 } from 'node:zlib';
import { ListObjectsV2Command } from '@aws-sdk/client-s3';
import { DrError } from '../../src/errors/dr-error';
import { validateNested } from '../../src/errors/validation';
import { SecretResolver } from '../../src/secrets/secret-resolver';
import { S3StorageDriver, S3StorageError, S3StorageSettings } from '../../src/storage/drivers/s3.driver';
import { ImmutabilityNotSupportedError, ObjectLockedError } from '../../src/storage/drivers/storage-driver';
import { freePort } from '../support/server-process';
import { S3TestServer, startS3Server } from '../support/s3-server';
import { describeStorageDriverContract, hashStream, randomSource } from './storage-driver-contract';

const MiB = 1 << 20;
process.env.DR_TEST_S3_ACCESS_KEY = 'S3RVER'; // s3rver's built-in account
process.env.DR_TEST_S3_SECRET_KEY = 'S3RVER';

let server: S3TestServer;
const drivers: S3StorageDriver[] = [];

beforeAll(async () => {
  server = await startS3Server('dr-test');
});

afterAll(async () => {
  await Promise.all(drivers.map((d) => d.close()));
  await server?.close();
});

/** A driver on the test server, with its own prefix (a fresh location) and client. */
function s3Driver(overrides: Partial<S3StorageSettings> = {}): S3StorageDriver {
  const settings = Object.assign(new S3StorageSettings(), {
    bucket: server.bucket,
    endpoint: server.endpoint,
    forcePathStyle: true,
    prefix: `loc-${randomBytes(4).toString('hex')}`,
    accessKeyIdSecret: 'env:DR_TEST_S3_ACCESS_KEY',
    secretAccessKeySecret: 'env:DR_TEST_S3_SECRET_KEY',
    partSizeBytes: 5 * MiB,
    queueSize: 4,
    ...overrides,
  });
  const driver = new S3StorageDriver(settings, SecretResolver.trustingEveryReference());
  drivers.push(driver);
  return driver;
}

describeStorageDriverContract('S3 (s3rver)', {
  create: async () => s3Driver(),
  server: { stop: () => server.stop(), start: () => server.start() },
  largeObjectBytes: 100 * MiB,
});

interface SentRequest {
  command: string;
  input: Record<string, unknown>;
  headers: Record<string, string>;
}

/** Records every request the driver's client sends (after signing), and how many UploadParts run at once. */
async function recordRequests(driver: S3StorageDriver, partDelayMs = 0) {
  const s3 = await driver.s3Client();
  const sent: SentRequest[] = [];
  let partsInFlight = 0;
  let maxPartsInFlight = 0;
  s3.middlewareStack.add(
    (next, context) => async (args) => {
      if (context.commandName !== 'UploadPartCommand') return next(args);
      partsInFlight++;
      maxPartsInFlight = Math.max(maxPartsInFlight, partsInFlight);
      try {
        await new Promise((r) => setTimeout(r, partDelayMs)); // parts that take a while, so overlap is visible
        return await next(args);
      } finally {
        partsInFlight--;
      }
    },
    { step: 'initialize', name: 'testPartConcurrency' },
  );
  s3.middlewareStack.add(
    (next, context) => async (args) => {
      const request = args.request as { headers: Record<string, string> };
      sent.push({ command: context.commandName ?? '', input: args.input as Record<string, unknown>, headers: { ...request.headers } });
      return next(args);
    },
    { step: 'finalizeRequest', priority: 'low', name: 'testCapture' },
  );
  return { sent, maxPartsInFlight: () => maxPartsInFlight, commands: () => sent.map((r) => r.command) };
}

const crc32Base64 = (data: Buffer) => {
  const out = Buffer.alloc(4);
  out.writeUInt32BE(crc32(data));
  return out.toString('base64');
};

describe('S3 driver specifics (s3rver)', () => {
  it('uploads parts of the configured size, queueSize at a time, stored on the server but invisible until publish', async () => {
    const driver = s3Driver({ partSizeBytes: 5 * MiB, queueSize: 3 });
    const { sent, maxPartsInFlight } = await recordRequests(driver, 150);
    const source = randomSource(26 * MiB);
    const upload = await driver.createUpload('parts/obj.bin');
    await pipeline(source.stream, upload.stream);

    const parts = sent.filter((r) => r.command === 'UploadPartCommand');
    expect(parts.map((p) => (p.input.Body as Buffer).length)).toEqual([5, 5, 5, 5, 5, 1].map((n) => n * MiB));
    expect(parts.map((p) => p.input.PartNumber).sort((a, b) => Number(a) - Number(b))).toEqual([1, 2, 3, 4, 5, 6]);
    expect(maxPartsInFlight()).toBe(3);
    expect(server.pendingUploads()).toHaveLength(1); // the parts are on the server...
    expect(await driver.stat('parts/obj.bin')).toBeNull(); // ...and nothing under the key
    expect(sent.some((r) => r.command === 'CompleteMultipartUploadCommand')).toBe(false);

    await Promise.all([upload.publish(), upload.publish()]); // one completion, shared
    await upload.abort(); // a no-op once published
    expect(sent.filter((r) => r.command === 'CompleteMultipartUploadCommand')).toHaveLength(1);
    expect(server.pendingUploads()).toHaveLength(0);
    expect(await hashStream(await driver.read('parts/obj.bin'))).toEqual({ bytes: 26 * MiB, sha256: source.sha256() });
    // no checksum headers without Object Lock (s3rver would store aws-chunked framing otherwise)
    expect(parts.every((p) => !Object.keys(p.headers).some((h) => h.toLowerCase().startsWith('x-amz-checksum')))).toBe(true);
  });

  it('abort and removeStaged free the parts the server holds', async () => {
    const driver = s3Driver();
    const before = server.pendingUploads().length;
    const aborted = await driver.createUpload('free/a.bin');
    aborted.stream.write(Buffer.alloc(12 * MiB, 1)); // two full parts go out
    await new Promise((r) => setTimeout(r, 300));
    expect(server.pendingUploads()).toHaveLength(before + 1);
    await aborted.abort();
    expect(server.pendingUploads()).toHaveLength(before);
    await expect(aborted.publish()).rejects.toThrow(/aborted/);

    const crashed = await driver.createUpload('free/b.bin');
    crashed.stream.write(Buffer.alloc(6 * MiB, 2));
    await new Promise((r) => setTimeout(r, 300));
    expect(await driver.removeStaged('free/')).toBe(1);
    expect(server.pendingUploads()).toHaveLength(before);
    await crashed.abort(); // the upload is already gone: still not an error

    const early = await driver.createUpload('free/c.bin');
    early.stream.write(Buffer.alloc(MiB));
    const publishing = early.publish().then(
      () => undefined,
      (e: Error) => e,
    ); // wrong order: the stream has not ended
    await early.abort(); // does not wait for that publish, which fails instead
    expect(await publishing).toMatchObject({ message: 'upload of free/c.bin was aborted' });
    expect(server.pendingUploads()).toHaveLength(before);
    expect(await driver.stat('free/c.bin')).toBeNull();
  });

  it('isolates two locations (prefixes) in one bucket', async () => {
    const a = s3Driver({ prefix: 'iso-a' });
    const b = s3Driver({ prefix: 'iso-b/' });
    await a.putObject('same/key', Buffer.from('from a'));
    await b.putObject('same/key', Buffer.from('from b'));
    await a.putObject('only-a', Buffer.from('a'));
    expect((await a.readObject('same/key')).toString()).toBe('from a');
    expect((await b.readObject('same/key')).toString()).toBe('from b');
    expect((await a.list('')).objects.map((o) => o.key)).toEqual(['only-a', 'same/key']);
    expect((await b.list('')).objects.map((o) => o.key)).toEqual(['same/key']);
    expect(await b.stat('only-a')).toBeNull();

    const inFlight = await a.createUpload('same/staged');
    expect(await b.removeStaged('same/')).toBe(0);
    expect(await a.removeStaged('same/')).toBe(1);
    await inFlight.abort();

    await b.delete('same/key');
    expect((await a.readObject('same/key')).toString()).toBe('from a');
    const raw = await (await a.s3Client()).send(new ListObjectsV2Command({ Bucket: server.bucket, Prefix: 'iso-' }));
    expect(raw.Contents?.map((c) => c.Key)).toEqual(['iso-a/only-a', 'iso-a/same/key']);
  });

  it('skips hidden keys while filling a page, and clips the body of a server that ignores Range', async () => {
    const driver = s3Driver();
    for (const key of ['.hidden/1', '.hidden/2', 'b', 'c/.x', 'd']) await driver.putObject(key, Buffer.from(key));
    const first = await driver.list('', { limit: 1 });
    expect(first).toMatchObject({ objects: [{ key: 'b' }], nextAfter: 'b' });
    const second = await driver.list('', { after: first.nextAfter, limit: 1 });
    expect(second).toMatchObject({ objects: [{ key: 'd' }] });
    expect(second.nextAfter).toBeUndefined();

    const body = randomBytes(3 * MiB);
    await driver.putObject('range/full', body);
    let dropped = 0;
    (await driver.s3Client()).middlewareStack.add(
      (next) => async (args) => {
        const headers = (args.request as { headers: Record<string, string> }).headers;
        for (const name of Object.keys(headers)) if (name.toLowerCase() === 'range') dropped += Number(delete headers[name]); // a proxy dropping it
        return next(args);
      },
      { step: 'build', name: 'testDropRange' },
    );
    const read = async (start: number, end?: number) => Buffer.concat(await (await driver.read('range/full', { start, end })).toArray());
    expect((await read(MiB + 3, 2 * MiB + 9)).equals(body.subarray(MiB + 3, 2 * MiB + 10))).toBe(true);
    expect((await read(3 * MiB - 5)).equals(body.subarray(3 * MiB - 5))).toBe(true);
    expect(dropped).toBe(2); // both answers were the whole object (200, no Content-Range)
  });

  it('takes credentials from env: and file: references, resolved on first use; a missing one is named, never a value', async () => {
    const secretFile = join(tmpdir(), `dr-s3-secret-${randomBytes(4).toString('hex')}`);
    writeFileSync(secretFile, 'S3RVER\n', { mode: 0o600 });
    const fromFile = s3Driver({ accessKeyIdSecret: `file:${secretFile}`, secretAccessKeySecret: `file:${secretFile}` });
    await fromFile.putObject('cred/ok', Buffer.from('ok')).finally(() => rmSync(secretFile));
    expect((await fromFile.readObject('cred/ok')).toString()).toBe('ok');

    delete process.env.DR_TEST_S3_LATE_KEY;
    const late = s3Driver({ accessKeyIdSecret: 'env:DR_TEST_S3_LATE_KEY' }); // constructing reads nothing
    const missing = await late.checkHealth().then(
      () => undefined,
      (e: unknown) => e,
    );
    expect(missing).toBeInstanceOf(DrError);
    expect(missing).toMatchObject({ code: 'SECRET_UNAVAILABLE' });
    expect((missing as Error).message).toMatch(/settings\.accessKeyIdSecret: environment variable DR_TEST_S3_LATE_KEY is not set/);
    process.env.DR_TEST_S3_LATE_KEY = 'S3RVER';
    await expect(late.checkHealth()).resolves.toBeUndefined(); // resolved again on the next use

    const secretValue = 'AKIADRTESTSECRET0042';
    process.env.DR_TEST_S3_WRONG_KEY = secretValue;
    const wrong = s3Driver({ accessKeyIdSecret: 'env:DR_TEST_S3_WRONG_KEY' });
    const refused = await wrong.putObject('cred/no', Buffer.from('no')).then(
      () => undefined,
      (e: unknown) => e,
    );
    expect(refused).toBeInstanceOf(S3StorageError);
    expect(refused).toMatchObject({ operation: 'PutObject', httpStatus: 403, code: 'InvalidAccessKeyId' });
    expect((refused as Error).message).toMatch(/^S3 PutObject s3:\/\/dr-test\/loc-[0-9a-f]+\/cred\/no failed: HTTP 403 InvalidAccessKeyId/);
    // the SDK's own error carries the access key id (AWSAccessKeyId); the driver's does not, in any form
    const shown = `${(refused as Error).message} ${(refused as Error).stack} ${JSON.stringify(refused)} ${inspect(refused, { depth: 5 })}`;
    expect(shown).not.toContain(secretValue);
    expect(shown).not.toContain('S3RVER');
  });

  it('refuses retainUntil with ImmutabilityNotSupportedError when objectLock is not configured, before any request', async () => {
    const driver = s3Driver();
    const { commands } = await recordRequests(driver);
    expect(driver.capabilities.immutability).toBe(false);
    const retainUntil = new Date(Date.now() + 86_400_000);
    await expect(driver.createUpload('lock/a', { retainUntil })).rejects.toBeInstanceOf(ImmutabilityNotSupportedError);
    await expect(driver.putObject('lock/b', Buffer.from('b'), { retainUntil })).rejects.toBeInstanceOf(ImmutabilityNotSupportedError);
    expect(commands()).toEqual([]);
  });

  it('with objectLock: sends the lock mode and date, a CRC32 per part, and refuses to delete a retained object', async () => {
    const driver = s3Driver({ objectLock: { mode: 'COMPLIANCE' }, partSizeBytes: 5 * MiB });
    expect(driver.capabilities.immutability).toBe(true);
    const { sent } = await recordRequests(driver);
    const retainUntil = new Date(Date.UTC(2031, 0, 2, 3, 4, 5));
    const upload = await driver.createUpload('lock/artifact', { retainUntil });
    const body = randomBytes(7 * MiB);
    upload.stream.end(body);
    await finished(upload.stream);
    await upload.publish();
    await driver.putObject('lock/manifest', Buffer.from('{}'), { retainUntil });

    const header = (r: SentRequest, name: string) => r.headers[name] ?? r.headers[name.toLowerCase()];
    const create = sent.find((r) => r.command === 'CreateMultipartUploadCommand')!;
    expect(header(create, 'x-amz-object-lock-mode')).toBe('COMPLIANCE');
    expect(header(create, 'x-amz-object-lock-retain-until-date')).toBe('2031-01-02T03:04:05Z');
    expect(header(create, 'x-amz-checksum-algorithm')).toBe('CRC32');
    const parts = sent.filter((r) => r.command === 'UploadPartCommand');
    expect(parts.map((p) => header(p, 'x-amz-checksum-crc32'))).toEqual([crc32Base64(body.subarray(0, 5 * MiB)), crc32Base64(body.subarray(5 * MiB))]);
    const put = sent.find((r) => r.command === 'PutObjectCommand')!;
    expect(header(put, 'x-amz-object-lock-mode')).toBe('COMPLIANCE');
    expect(header(put, 'x-amz-checksum-crc32')).toBe(crc32Base64(Buffer.from('{}')));
    expect((await driver.readObject('lock/artifact')).equals(body)).toBe(true);

    // What S3 would answer for a retained object (s3rver cannot): delete must refuse without sending DeleteObject.
    (await driver.s3Client()).middlewareStack.add(
      (next, context) => async (args) => {
        const result = await next(args);
        if (context.commandName === 'HeadObjectCommand')
          Object.assign(result.output as object, { ObjectLockMode: 'COMPLIANCE', ObjectLockRetainUntilDate: retainUntil });
        return result;
      },
      { step: 'initialize', name: 'testRetainedHead' },
    );
    const refused = await driver.delete('lock/artifact').then(
      () => undefined,
      (e: unknown) => e,
    );
    expect(refused).toBeInstanceOf(ObjectLockedError);
    expect(refused).toMatchObject({ key: 'lock/artifact', retainUntil });
    expect(sent.some((r) => r.command === 'DeleteObjectCommand')).toBe(false);
    expect(await driver.stat('lock/artifact')).not.toBeNull();
  });

  it('fails within seconds, naming operation, bucket, key and status, for a missing bucket or an unreachable server', async () => {
    const noBucket = s3Driver({ bucket: 'no-such-bucket' });
    const missing = await noBucket.createUpload('a/b').then(
      () => undefined,
      (e: unknown) => e,
    );
    expect(missing).toMatchObject({ operation: 'CreateMultipartUpload', bucket: 'no-such-bucket', httpStatus: 404, code: 'NoSuchBucket' });
    expect((missing as Error).message).toMatch(/^S3 CreateMultipartUpload s3:\/\/no-such-bucket\/loc-[0-9a-f]+\/a\/b failed: HTTP 404 NoSuchBucket: /);
    await expect(noBucket.checkHealth()).rejects.toThrow(/HeadBucket s3:\/\/no-such-bucket\/.* HTTP 404/);

    const port = await freePort();
    const unreachable = s3Driver({ endpoint: `http://127.0.0.1:${port}` });
    const started = Date.now();
    await expect(unreachable.createUpload('a/b')).rejects.toThrow(
      new RegExp(`^S3 CreateMultipartUpload s3://dr-test/loc-[0-9a-f]+/a/b failed: no answer from http://127.0.0.1:${port}: .*ECONNREFUSED`),
    );
    await expect(unreachable.checkHealth()).rejects.toThrow(/HeadBucket/);
    // (the network error's `code` is lost inside jest's sandbox, where the SDK re-wraps errors from another realm)
    await expect(unreachable.read('a/b')).rejects.toMatchObject({ message: expect.stringContaining('ECONNREFUSED'), httpStatus: undefined });
    expect(Date.now() - started).toBeLessThan(10_000);
  });

  it('validates its settings', async () => {
    const ok = await validateNested(
      S3StorageSettings,
      {
        bucket: 'my-backups',
        prefix: 'dr/prod/',
        region: 'eu-west-1',
        endpoint: 'http://minio:9000',
        forcePathStyle: true,
        accessKeyIdSecret: 'env:S3_KEY',
        secretAccessKeySecret: 'file:/run/secrets/s3',
        partSizeBytes: 64 * MiB,
        queueSize: 8,
        serverSideEncryption: 'aws:kms',
        kmsKeyId: 'arn:aws:kms:eu-west-1:111122223333:key/abcd',
        storageClass: 'STANDARD_IA',
        objectLock: { mode: 'GOVERNANCE' },
      },
      'settings',
    );
    expect(ok).toBeInstanceOf(S3StorageSettings);
    expect(await validateNested(S3StorageSettings, { bucket: 'b-1' }, 'settings')).toMatchObject({ bucket: 'b-1' });

    const fieldsOf = async (value: Record<string, unknown>) =>
      validateNested(S3StorageSettings, { bucket: 'my-backups', ...value }, 'settings').then(
        () => [],
        (e: DrError) => [...new Set(e.details.map((d) => d.field))],
      );
    expect(await fieldsOf({ bucket: 'Bad_Bucket' })).toEqual(['settings.bucket']);
    for (const prefix of ['/abs', 'a//b', '../x', 'a/./b', 'a/..']) expect(await fieldsOf({ prefix })).toEqual(['settings.prefix']);
    expect(await fieldsOf({ endpoint: 'http://user:pass@minio:9000' })).toEqual(['settings.endpoint']);
    expect(await fieldsOf({ endpoint: 'ftp://minio' })).toEqual(['settings.endpoint']);
    expect(await fieldsOf({ accessKeyIdSecret: 'AKIAPLAINVALUE', secretAccessKeySecret: 'env:X' })).toEqual(['settings.accessKeyIdSecret']);
    expect(await fieldsOf({ accessKeyIdSecret: 'env:X' })).toEqual(['settings.secretAccessKeySecret']);
    expect(await fieldsOf({ sessionTokenSecret: 'env:T' })).toEqual(['settings.accessKeyIdSecret', 'settings.secretAccessKeySecret']);
    expect(await fieldsOf({ partSizeBytes: 4 * MiB })).toEqual(['settings.partSizeBytes']);
    expect(await fieldsOf({ partSizeBytes: 6 * 1024 * MiB })).toEqual(['settings.partSizeBytes']);
    expect(await fieldsOf({ queueSize: 0 })).toEqual(['settings.queueSize']);
    expect(await fieldsOf({ queueSize: 17 })).toEqual(['settings.queueSize']);
    expect(await fieldsOf({ serverSideEncryption: 'aws:kms:dsse' })).toEqual(['settings.serverSideEncryption']);
    expect(await fieldsOf({ serverSideEncryption: 'AES256', kmsKeyId: 'k' })).toEqual(['settings.kmsKeyId']);
    expect(await fieldsOf({ storageClass: 'GLACIER' })).toEqual(['settings.storageClass']);
    expect(await fieldsOf({ storageClass: 'CHEAP' })).toEqual(['settings.storageClass']);
    expect(await fieldsOf({ objectLock: { mode: 'FOREVER' } })).toEqual(['settings.objectLock.mode']);
    expect(await fieldsOf({ objectLock: true })).toEqual(['settings.objectLock']);
  });
});
