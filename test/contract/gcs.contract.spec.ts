/**
 * The GCS driver against the Cloud Storage emulator of firebase-tools (devDependency firebase-tools, its GCS JSON API
 * in Node, no Java), run by test/support/gcs-emulator-server.js with four changes listed there: no security-rules
 * runtime, a chunk-aware resumable-upload PUT handler (and session cancel), metadata written to disk so objects
 * survive SIGKILL, and a private temp dir.
 *
 * What this faithfully tests (the real @google-cloud/storage 7.19 client against an independent server):
 * - the JSON API calls the driver makes and how it reads their answers: single-request (multipart) uploads, object
 *   metadata, paged listing by pageToken, `alt=media` downloads with `Range` (206) and without, deletes and their 404,
 *   404 on reads; object sizes, MD5 and CRC32C computed by the emulator, which the client checks after each upload;
 * - the driver's own logic end to end: atomic publish (nothing under the final name before publish(), a replaced
 *   object readable until then), staging markers, abort, removeStaged, prefix isolation, key validation, listing that
 *   skips internal names and pages in key order, bounded memory on a 100 MiB stream, secrets resolved lazily with
 *   errors naming the reference only;
 * - outages: the emulator process SIGKILLed mid-upload and while idle (connections refused), the client's retries
 *   running out within seconds, and recovery after a restart on the same port with the published data.
 *
 * What it does NOT faithfully test:
 * - The resumable-upload protocol is this project's shim, not the emulator's (the stock emulator finalizes on the
 *   first chunk: firebase-tools PR #9047 reverted, #10325 open). Chunk sizes, `bytes a-b/*` intermediate chunks,
 *   308 + Range, the final chunk with the total, `resumeCRC32C`, X-Goog-Hash and cancel (499) follow Google's
 *   documentation as the shim reads it; real GCS may differ in details (e.g. status codes of odd requests).
 * - `startOffset` and `maxResults` beyond paging: the emulator ignores `startOffset`, so the driver's client-side
 *   filter does the skipping here; against GCS the server does it.
 * - Object Retention Lock, holds and retention policies: the emulator drops `retention` and never refuses a delete;
 *   the locked-delete path is tested with GCS's documented 403 answer given by a proxy in front of the emulator.
 * - Buckets: the emulator creates a bucket on first reference; a missing bucket is tested with GCS's documented 404
 *   given by the proxy; bucket-level settings and IAM (401/403) are untested; credentials are never used (`anonymous: true`): JWT signing, token refresh and
 *   Application Default Credentials are untested (ADC would probe a metadata server, which tests must not do).
 * - Downloads are not CRC32C-checked here: the emulator omits `x-goog-stored-content-encoding`, so the client skips
 *   the check it makes against GCS. The emulator also reads whole objects into memory per request.
 * - Restart semantics: upload sessions do not survive the emulator's restart (GCS keeps them a week); the outage
 *   test does not need them. Network partitions that hang instead of refusing are not simulated.
 */
import { randomBytes } from 'node:crypto';
import { Readable } from 'node:stream';
import { finished, pipeline } from 'node:stream/promises';
import { DrError } from '../../src/errors/dr-error';
import { validateNested } from '../../src/errors/validation';
import { SecretResolver } from '../../src/secrets/secret-resolver';
import { GcsStorageDriver, GcsStorageSettings } from '../../src/storage/drivers/gcs.driver';
import { ImmutabilityNotSupportedError, ObjectLockedError } from '../../src/storage/drivers/storage-driver';
import { startHttpProxy } from '../support/http-proxy';
import { GcsEmulator, gcsEmulatorInstalled, startGcsEmulator } from '../support/gcs-emulator';
import { describeStorageDriverContract, hashStream, randomSource } from './storage-driver-contract';

const MiB = 1 << 20;
const installed = gcsEmulatorInstalled();
if (!installed && process.env.CI) {
  throw new Error('the GCS emulator is not installed: run `npm ci --prefix test/emulators/gcs` (.ci/run does)');
}
if (!installed) console.warn('GCS contract skipped: install the emulator with `npm ci --prefix test/emulators/gcs`');

(installed ? describe : describe.skip)('GCS (firebase-tools storage emulator, test/emulators/gcs)', () => {
  const BUCKET = 'dr-contract';
  let emulator: GcsEmulator;

  beforeAll(async () => {
    emulator = await startGcsEmulator(BUCKET);
  }, 60_000);

  afterAll(async () => {
    await emulator?.close();
  });

  function driver(settings: Partial<GcsStorageSettings> = {}): GcsStorageDriver {
    return new GcsStorageDriver(
      { bucket: BUCKET, prefix: `t-${randomBytes(4).toString('hex')}`, apiEndpoint: emulator.apiEndpoint, anonymous: true, projectId: 'dr-test', ...settings },
      SecretResolver.trustingEveryReference(),
    );
  }

  describeStorageDriverContract('GCS (firebase-tools storage emulator)', {
    create: async () => driver(),
    server: { stop: () => emulator.stop(), start: () => emulator.start() },
    largeObjectBytes: 100 * MiB,
    slowTimeoutMs: 120_000,
  });

  describe('GCS driver specifics', () => {
    it('uploads in resumable chunks of chunkSizeBytes and finalizes only in publish()', async () => {
      const chunk = 1 * MiB;
      const d = driver({ chunkSizeBytes: chunk });
      const total = 3 * chunk + 123_457;
      const source = randomSource(total);
      const upload = await d.createUpload('chunks/obj');
      await pipeline(source.stream, upload.stream);
      const before = (await emulator.sessionRequests()).filter((r) => r.object.endsWith('/chunks/obj'));
      expect(before.map((r) => [r.contentRange, r.bytes, r.status])).toEqual([
        [`bytes 0-${chunk - 1}/*`, chunk, 308],
        [`bytes ${chunk}-${2 * chunk - 1}/*`, chunk, 308],
        [`bytes ${2 * chunk}-${3 * chunk - 1}/*`, chunk, 308],
      ]);
      expect(await d.stat('chunks/obj')).toBeNull();
      await upload.publish();
      const after = (await emulator.sessionRequests()).filter((r) => r.object.endsWith('/chunks/obj'));
      expect(after.slice(3).map((r) => [r.contentRange, r.bytes, r.status])).toEqual([[`bytes ${3 * chunk}-${total - 1}/${total}`, total - 3 * chunk, 200]]);
      expect(await hashStream(await d.read('chunks/obj'))).toEqual({ bytes: total, sha256: source.sha256() });
    });

    it('ends the intermediate chunks on a 256 KiB boundary and never sends an empty final chunk', async () => {
      const granule = 256 * 1024;
      const d = driver({ chunkSizeBytes: 4 * granule });
      const body = randomBytes(6 * granule); // ends on a boundary: the last 256 KiB are the final chunk
      const upload = await d.createUpload('boundary/obj');
      upload.stream.end(body);
      await finished(upload.stream);
      expect(await d.stat('boundary/obj')).toBeNull();
      await upload.publish();
      expect((await d.readObject('boundary/obj')).equals(body)).toBe(true);
      const requests = (await emulator.sessionRequests()).filter((r) => r.object.endsWith('/boundary/obj'));
      expect(requests.map((r) => [r.contentRange, r.status])).toEqual([
        [`bytes 0-${4 * granule - 1}/*`, 308],
        [`bytes ${4 * granule}-${5 * granule - 1}/*`, 308],
        [`bytes ${5 * granule}-${6 * granule - 1}/${6 * granule}`, 200],
      ]);
    });

    it('abort() after intermediate chunks cancels the session and leaves nothing', async () => {
      const d = driver({ chunkSizeBytes: 256 * 1024 });
      const upload = await d.createUpload('cancel/obj');
      await pipeline(Readable.from([randomBytes(MiB)]), upload.stream);
      await upload.abort();
      await upload.abort();
      const requests = (await emulator.sessionRequests()).filter((r) => r.object.endsWith('/cancel/obj'));
      expect(requests.at(-1)).toMatchObject({ contentRange: 'DELETE', status: 499 });
      expect(await d.stat('cancel/obj')).toBeNull();
      expect(await d.removeStaged('cancel/')).toBe(0);
    });

    it('keeps locations with different prefixes in the same bucket apart', async () => {
      const a = driver({ prefix: 'iso/a' });
      const ab = driver({ prefix: 'iso/a-b/' });
      const root = driver({ prefix: undefined });
      await a.putObject('same/key', Buffer.from('from a'));
      await ab.putObject('same/key', Buffer.from('from a-b'));
      expect((await a.readObject('same/key')).toString()).toBe('from a');
      expect((await ab.readObject('same/key')).toString()).toBe('from a-b');
      expect((await a.list('')).objects.map((o) => o.key)).toEqual(['same/key']);
      expect((await ab.list('')).objects.map((o) => o.key)).toEqual(['same/key']);
      await a.delete('same/key');
      expect(await a.stat('same/key')).toBeNull();
      expect((await ab.readObject('same/key')).toString()).toBe('from a-b');
      expect((await root.list('iso/')).objects.map((o) => o.key)).toEqual(['iso/a-b/same/key']);
    });

    it('names the secret reference, and never its value, when the key secret is missing or not a key', async () => {
      const missing = driver({ anonymous: undefined, keyFileSecret: 'env:DR_TEST_GCS_KEY_THAT_IS_NOT_SET' });
      const error = await missing.stat('x').catch((e: unknown) => e);
      expect(error).toBeInstanceOf(DrError);
      expect(error).toMatchObject({ code: 'SECRET_UNAVAILABLE' });
      expect((error as Error).message).toContain('DR_TEST_GCS_KEY_THAT_IS_NOT_SET');

      const noFile = driver({ anonymous: undefined, keyFileSecret: 'file:/nonexistent/dr-gcs-key.json' });
      await expect(noFile.createUpload('x')).rejects.toThrow('/nonexistent/dr-gcs-key.json');

      process.env.DR_TEST_GCS_KEY_GARBAGE = 'sEcReT-VALUE-123 {not json';
      try {
        const garbage = driver({ anonymous: undefined, keyFileSecret: 'env:DR_TEST_GCS_KEY_GARBAGE' });
        const bad = await garbage.list('').catch((e: unknown) => e);
        expect(bad).toMatchObject({ code: 'SECRET_UNAVAILABLE' });
        expect((bad as Error).message).toContain('env:DR_TEST_GCS_KEY_GARBAGE');
        expect(JSON.stringify({ message: (bad as Error).message, details: (bad as DrError).details })).not.toContain('sEcReT-VALUE');
      } finally {
        delete process.env.DR_TEST_GCS_KEY_GARBAGE;
      }
    });

    it('refuses retainUntil without objectRetentionMode, and advertises immutability with it', async () => {
      const plain = driver();
      expect(plain.capabilities.immutability).toBe(false);
      await expect(plain.createUpload('lock/x', { retainUntil: new Date(Date.now() + 60_000) })).rejects.toBeInstanceOf(ImmutabilityNotSupportedError);
      await expect(plain.putObject('lock/x', Buffer.from('x'), { retainUntil: new Date(Date.now() + 60_000) })).rejects.toBeInstanceOf(
        ImmutabilityNotSupportedError,
      );
      expect(driver({ objectRetentionMode: 'Locked' }).capabilities.immutability).toBe(true);
    });

    it('validates settings: bucket name, prefix, secret reference, chunk size, retention mode; anonymous only with an endpoint', async () => {
      const problems = async (value: object) =>
        (
          await validateNested(GcsStorageSettings, value, 'settings').then(
            () => [],
            (e: DrError) => e.details,
          )
        ).map((p) => p.field);
      expect(await problems({ bucket: 'acme-dr', prefix: 'prod/eu/', chunkSizeBytes: 8 * MiB, keyFileSecret: 'file:/etc/dr/gcs.json' })).toEqual([]);
      expect(await problems({ bucket: 'Bad_Bucket!' })).toEqual(['settings.bucket']);
      expect(await problems({ bucket: 'acme', prefix: 'a/../b' })).toEqual(['settings.prefix']);
      expect(await problems({ bucket: 'acme', keyFileSecret: '{"private_key":"x"}' })).toEqual(['settings.keyFileSecret']);
      expect(await problems({ bucket: 'acme', chunkSizeBytes: 1_000_000 })).toEqual(['settings.chunkSizeBytes']);
      expect(await problems({ bucket: 'acme', objectRetentionMode: 'Forever' })).toEqual(['settings.objectRetentionMode']);
      expect(() => new GcsStorageDriver({ bucket: 'acme', anonymous: true }, SecretResolver.trustingEveryReference())).toThrow(DrError);
    });

    // The emulator keeps no retention and creates any bucket on first reference, so these two answers of real GCS
    // are given by a proxy in front of it, in the shapes Google documents (JSON API error responses,
    // https://cloud.google.com/storage/docs/json_api/v1/status-codes; object retention:
    // https://cloud.google.com/storage/docs/object-lock): what is tested is the driver's reading of them.
    it('a retained object cannot be deleted: GCS answers 403 retentionPolicyNotMet and the driver throws ObjectLockedError with the date', async () => {
      const until = new Date(Date.now() + 86_400_000).toISOString();
      const upstream = new URL(emulator.apiEndpoint).host;
      const proxy = await startHttpProxy(upstream, {
        answer: (req) => {
          if (req.method === 'DELETE' && req.url!.includes('/o/')) {
            return {
              status: 403,
              headers: { 'content-type': 'application/json' },
              body: JSON.stringify({
                error: {
                  code: 403,
                  message: `Object '${BUCKET}/locked' is subject to object retention and cannot be deleted, overwritten or archived until ${until}`,
                  errors: [{ domain: 'global', reason: 'retentionPolicyNotMet', message: 'object retention' }],
                },
              }),
            };
          }
          if (req.method === 'GET' && req.url!.includes('/o/') && !req.url!.includes('alt=media')) {
            return {
              status: 200,
              headers: { 'content-type': 'application/json' },
              body: JSON.stringify({
                kind: 'storage#object',
                bucket: BUCKET,
                name: 'locked',
                size: '1',
                retention: { mode: 'Locked', retainUntilTime: until },
              }),
            };
          }
          return undefined;
        },
      });
      try {
        const d = new GcsStorageDriver(
          { bucket: BUCKET, prefix: 'lock-test', apiEndpoint: proxy.origin, anonymous: true, projectId: 'dr-test', objectRetentionMode: 'Locked' },
          SecretResolver.trustingEveryReference(),
        );
        const error = await d.delete('locked').catch((e: unknown) => e);
        expect(error).toBeInstanceOf(ObjectLockedError);
        expect((error as ObjectLockedError).message).toContain('locked');
        expect((error as ObjectLockedError).retainUntil?.toISOString()).toBe(until);
        // a 403 that is not about retention stays an access error, never a lock
        const denied = await startHttpProxy(upstream, {
          answer: (req) =>
            req.method === 'DELETE'
              ? {
                  status: 403,
                  headers: { 'content-type': 'application/json' },
                  body: JSON.stringify({ error: { code: 403, message: 'caller does not have storage.objects.delete access' } }),
                }
              : undefined,
        });
        try {
          const plain = new GcsStorageDriver(
            { bucket: BUCKET, prefix: 'lock-test', apiEndpoint: denied.origin, anonymous: true, projectId: 'dr-test' },
            SecretResolver.trustingEveryReference(),
          );
          const other = await plain.delete('x').catch((e: unknown) => e);
          expect(other).not.toBeInstanceOf(ObjectLockedError);
          expect((other as Error).message).toMatch(/access denied \(403\)/);
        } finally {
          await denied.close();
        }
      } finally {
        await proxy.close();
      }
    });

    it('checkHealth names a missing bucket: GCS answers 404 on the listing and the driver says the bucket does not exist', async () => {
      const proxy = await startHttpProxy(new URL(emulator.apiEndpoint).host, {
        answer: (req) =>
          req.url!.startsWith('/storage/v1/b/dr-missing-bucket/')
            ? {
                status: 404,
                headers: { 'content-type': 'application/json' },
                body: JSON.stringify({
                  error: { code: 404, message: 'The specified bucket does not exist.', errors: [{ domain: 'global', reason: 'notFound' }] },
                }),
              }
            : undefined,
      });
      try {
        const missing = new GcsStorageDriver(
          { bucket: 'dr-missing-bucket', apiEndpoint: proxy.origin, anonymous: true, projectId: 'dr-test' },
          SecretResolver.trustingEveryReference(),
        );
        await expect(missing.checkHealth()).rejects.toThrow(/health check: list .*bucket dr-missing-bucket does not exist \(404\)/);
        // the same driver on the emulator's existing bucket is healthy: the failure above is the bucket's
        const present = new GcsStorageDriver(
          { bucket: BUCKET, apiEndpoint: proxy.origin, anonymous: true, projectId: 'dr-test' },
          SecretResolver.trustingEveryReference(),
        );
        await expect(present.checkHealth()).resolves.toBeUndefined();
      } finally {
        await proxy.close();
      }
    });

    (process.env.DR_GCS_THROUGHPUT ? it : it.skip)(
      'throughput of a 256 MiB object (set DR_GCS_THROUGHPUT=1 to run)',
      async () => {
        const d = driver();
        const size = 256 * MiB;
        const source = randomSource(size);
        let started = Date.now();
        const upload = await d.createUpload('throughput/obj');
        await pipeline(source.stream, upload.stream);
        await upload.publish();
        const uploadMs = Date.now() - started;
        started = Date.now();
        const back = await hashStream(await d.read('throughput/obj'));
        const downloadMs = Date.now() - started;
        expect(back).toEqual({ bytes: size, sha256: source.sha256() });
        const rate = (ms: number) => `${(size / MiB / (ms / 1000)).toFixed(1)} MiB/s`;
        console.log(`GCS emulator, 256 MiB: upload ${uploadMs} ms (${rate(uploadMs)}), download ${downloadMs} ms (${rate(downloadMs)})`);
      },
      300_000,
    );
  });
});
