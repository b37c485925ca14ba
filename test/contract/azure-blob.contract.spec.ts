/**
 * The Azure Blob driver against Azurite 3.35 (a child process), through the storage contract and Azure-specific tests.
 *
 * What Azurite cannot show, so what is NOT tested against a real implementation here:
 * - Immutability. Azurite implements neither blob immutability policies nor legal holds: `Set Blob Immutability
 *   Policy` answers 501, and the `x-ms-immutability-policy-*` headers of `Put Blob` / `Put Block List` are
 *   silently ignored. Tested on Azurite: the driver refuses `retainUntil` unless configured for immutability, and,
 *   configured, refuses to publish an object the service did not lock (it deletes it and throws). Tested through a
 *   proxy that plays Azure's documented answers (marked "simulated"): the commit carries the policy headers, a
 *   reported policy is accepted, and `409 BlobImmutableDueToPolicy` on delete becomes ObjectLockedError. Never
 *   tested: a real locked blob refusing deletion, `Locked` vs `Unlocked` semantics, the container's
 *   version-level-immutability prerequisites, and the exact error Azure gives when the container lacks them.
 * - A commit that Azure performed but whose answer was lost: simulated by the proxy (it forwards Put Block List and
 *   answers 500), to show that abort() then removes what that commit created.
 * - Azure's 7-day garbage collection of uncommitted blocks, its 100,000-uncommitted-block limit, and whether the
 *   real service accepts `Delete Blob` on a name with only uncommitted blocks (Azurite does; the driver relies
 *   on it in abort() and removeStaged()).
 * - List Blobs `startFrom` (service version 2026-02-06): Azurite ignores it, so listing after a key that the
 *   driver has no continuation marker for is tested through the driver's own filtering only.
 * - Durability under a crash: Azurite saves its metadata every 5 s, so the harness flushes it before SIGKILL
 *   (see test/support/azurite-server.ts); the real service persists what it acknowledges.
 * - Throughput, throttling (503/500 retries), TLS and networks slower than the loopback.
 */
import { generateBlobSASQueryParameters, BlobServiceClient, ContainerSASPermissions, StorageSharedKeyCredential } from '@azure/storage-blob';
import { plainToInstance } from 'class-transformer';
import { validate } from 'class-validator';
import { finished, pipeline } from 'node:stream/promises';
import { SecretResolver } from '../../src/secrets/secret-resolver';
import { DrError } from '../../src/errors/dr-error';
import { toFieldProblems } from '../../src/errors/validation';
import { AzureBlobStorageDriver, AzureBlobStorageSettings } from '../../src/storage/drivers/azure-blob.driver';
import { ImmutabilityNotSupportedError, ObjectLockedError, StorageDriver } from '../../src/storage/drivers/storage-driver';
import { AZURITE_ACCOUNT, AZURITE_KEY, AzuriteServer, startAzurite } from '../support/azurite-server';
import { startHttpProxy } from '../support/http-proxy';
import { freePort } from '../support/server-process';
import { describeStorageDriverContract, hashStream, randomSource } from './storage-driver-contract';

const MiB = 1 << 20;
const ENV = { key: 'DR_TEST_AZURE_ACCOUNT_KEY', connection: 'DR_TEST_AZURE_CONNECTION_STRING', sas: 'DR_TEST_AZURE_SAS', missing: 'DR_TEST_AZURE_NOT_SET' };
const secrets = SecretResolver.trustingEveryReference();
let azurite: AzuriteServer;

beforeAll(async () => {
  azurite = await startAzurite(['contract', 'azure']);
  process.env[ENV.key] = AZURITE_KEY;
  process.env[ENV.connection] = azurite.connectionString;
  const sas = generateBlobSASQueryParameters(
    { containerName: 'azure', permissions: ContainerSASPermissions.parse('racwdl'), expiresOn: new Date(Date.now() + 3600_000) },
    new StorageSharedKeyCredential(AZURITE_ACCOUNT, AZURITE_KEY),
  );
  process.env[ENV.sas] = sas.toString();
}, 60_000);

afterAll(async () => {
  await azurite?.close();
  for (const name of Object.values(ENV)) delete process.env[name];
});

function settings(overrides: Partial<AzureBlobStorageSettings> = {}): AzureBlobStorageSettings {
  return plainToInstance(AzureBlobStorageSettings, {
    container: 'azure',
    accountUrl: azurite.accountUrl,
    accountName: AZURITE_ACCOUNT,
    accountKeySecret: `env:${ENV.key}`,
    ...overrides,
  });
}

function driver(overrides: Partial<AzureBlobStorageSettings> = {}): AzureBlobStorageDriver {
  return new AzureBlobStorageDriver(settings(overrides), secrets);
}

async function upload(d: StorageDriver, key: string, body: Buffer): Promise<void> {
  const u = await d.createUpload(key);
  u.stream.end(body);
  await finished(u.stream);
  await u.publish();
}

/** Waits until `atLeast` blocks are staged (uncommitted) on the blob `name` of the `azure` container. */
async function blocksStaged(name: string, atLeast: number): Promise<void> {
  const blob = rawContainer().getBlockBlobClient(name);
  for (const deadline = Date.now() + 10_000; Date.now() < deadline; await new Promise((r) => setTimeout(r, 50))) {
    const list = await blob.getBlockList('uncommitted').catch(() => undefined);
    if ((list?.uncommittedBlocks?.length ?? 0) >= atLeast) return;
  }
  throw new Error(`${atLeast} blocks not staged on ${name} within 10 s`);
}

/** The container as the service sees it, with the development key (no driver involved). */
function rawContainer(name = 'azure') {
  return new BlobServiceClient(azurite.accountUrl, new StorageSharedKeyCredential(AZURITE_ACCOUNT, AZURITE_KEY)).getContainerClient(name);
}

// 1 MiB blocks: the contract's crashed upload writes 2 MiB, which must reach Azure as staged blocks for
// removeStaged to have something to remove (with the 8 MiB default they are still in the dead process's memory:
// see "removeStaged counts only what reached Azure" below).
describeStorageDriverContract('Azure Blob (Azurite)', {
  create: async () => driver({ container: 'contract', prefix: 'run/', blockSizeBytes: MiB, concurrency: 4 }),
  server: { stop: () => azurite.stop(), start: () => azurite.start() },
  largeObjectBytes: 100 * MiB,
});

describe('Azure Blob driver (Azurite)', () => {
  it('stages blocks of the configured size in parallel, up to the concurrency, and commits them in order', async () => {
    const proxy = await startHttpProxy(new URL(azurite.accountUrl).host, {
      delayMs: (req) => (req.url!.includes('comp=block&') ? 150 : 0),
    });
    try {
      const d = driver({ accountUrl: `${proxy.origin}/${AZURITE_ACCOUNT}`, prefix: 'parallel/', blockSizeBytes: MiB, concurrency: 3 });
      const source = randomSource(5 * MiB + MiB / 2);
      const u = await d.createUpload('obj');
      await pipeline(source.stream, u.stream);
      const staged = proxy.requests.filter((r) => r.method === 'PUT' && r.url.includes('comp=block&'));
      expect(staged.map((r) => r.bodyBytes)).toEqual([MiB, MiB, MiB, MiB, MiB, MiB / 2]);
      expect(proxy.maxConcurrent((r) => r.url.includes('comp=block&'))).toBe(3);
      const staging = await rawContainer().getBlockBlobClient('parallel/obj').getBlockList('uncommitted');
      expect(staging.uncommittedBlocks!.map((b) => b.size).sort((x, y) => y - x)).toEqual([MiB, MiB, MiB, MiB, MiB, MiB / 2]);
      expect(new Set(staging.uncommittedBlocks!.map((b) => b.name.length)).size).toBe(1); // ids of equal length
      await u.publish();
      const committed = await rawContainer().getBlockBlobClient('parallel/obj').getBlockList('committed');
      expect(committed.committedBlocks!.map((b) => b.size)).toEqual([MiB, MiB, MiB, MiB, MiB, MiB / 2]);
      expect(await hashStream(await d.read('obj'))).toEqual({ bytes: 5 * MiB + MiB / 2, sha256: source.sha256() });
    } finally {
      await proxy.close();
    }
  });

  it('uses 8 MiB blocks and 4 parallel requests by default', async () => {
    const d = driver({ prefix: 'default-blocks/' });
    const u = await d.createUpload('obj');
    await pipeline(randomSource(20 * MiB).stream, u.stream);
    const blocks = await rawContainer().getBlockBlobClient('default-blocks/obj').getBlockList('uncommitted');
    expect(blocks.uncommittedBlocks!.map((b) => b.size).sort((x, y) => y - x)).toEqual([8 * MiB, 8 * MiB, 4 * MiB]);
    await u.abort();
    expect(await d.stat('obj')).toBeNull();
  });

  it('keeps two locations of one container apart by prefix', async () => {
    const a = driver({ prefix: 'tenant-a/' });
    const b = driver({ prefix: 'tenant-b' }); // a missing trailing slash is added
    await a.putObject('same/key', Buffer.from('from a'));
    await b.putObject('same/key', Buffer.from('from b'));
    const staged = await b.createUpload('staged/obj');
    staged.stream.write(Buffer.alloc(8 * MiB, 1)); // one full default block: staged on Azure
    await blocksStaged('tenant-b/staged/obj', 1);
    expect((await a.readObject('same/key')).toString()).toBe('from a');
    expect((await a.list('')).objects.map((o) => o.key)).toEqual(['same/key']);
    expect((await b.list('')).objects.map((o) => o.key)).toEqual(['same/key']);
    expect(await a.removeStaged('')).toBe(0); // b's staged upload is not a's
    await a.delete('same/key');
    expect((await b.readObject('same/key')).toString()).toBe('from b');
    expect(await b.removeStaged('')).toBe(1);
    staged.stream.destroy();
  });

  it.each([
    ['a connection string', { accountUrl: undefined, accountName: undefined, accountKeySecret: undefined, connectionStringSecret: `env:${ENV.connection}` }],
    ['an account key', {}],
    ['a SAS token', { accountName: undefined, accountKeySecret: undefined, sasTokenSecret: `env:${ENV.sas}` }],
  ])('works with %s', async (kind, credentials) => {
    const d = driver({ prefix: `credential-${kind.replace(/\W/g, '')}/`, ...credentials });
    await d.checkHealth();
    await d.putObject('x', Buffer.from(kind));
    await upload(d, 'y', Buffer.alloc(MiB + 5, 3));
    expect((await d.readObject('x')).toString()).toBe(kind);
    expect((await d.list('')).objects.map((o) => [o.key, o.sizeBytes])).toEqual([
      ['x', kind.length],
      ['y', MiB + 5],
    ]);
    await d.delete('x');
    expect(await d.stat('x')).toBeNull();
  });

  it('names a missing secret by its reference, and never puts a secret value in an error', async () => {
    const missing = driver({ accountKeySecret: `env:${ENV.missing}` });
    const error = await missing.stat('x').catch((e: unknown) => e);
    expect(error).toBeInstanceOf(DrError);
    expect((error as DrError).code).toBe('SECRET_UNAVAILABLE');
    expect((error as Error).message).toContain(ENV.missing);
    await expect(driver({ accountKeySecret: 'file:/nonexistent/azure-key' }).createUpload('x')).rejects.toThrow('/nonexistent/azure-key');

    // a wrong key and a forged SAS signature: Azure refuses (403), the message says where, never what the secret was
    const wrongKey = Buffer.from('not the right key, but a secret all the same').toString('base64');
    process.env.DR_TEST_AZURE_WRONG_KEY = wrongKey;
    const forgedSas = process.env[ENV.sas]!.replace(/sig=[^&]+/, `sig=${encodeURIComponent('Zm9yZ2VkLXNpZ25hdHVyZS12YWx1ZQ==')}`);
    process.env.DR_TEST_AZURE_FORGED_SAS = forgedSas;
    try {
      for (const d of [
        driver({ accountKeySecret: 'env:DR_TEST_AZURE_WRONG_KEY' }),
        driver({ accountName: undefined, accountKeySecret: undefined, sasTokenSecret: 'env:DR_TEST_AZURE_FORGED_SAS' }),
      ]) {
        for (const attempt of [() => d.putObject('x', Buffer.from('x')), () => d.read('x'), () => d.stat('x'), () => d.checkHealth()]) {
          const failure = (await attempt().catch((e: unknown) => e)) as Error;
          expect(failure).toBeInstanceOf(Error);
          expect(failure.message).toMatch(/Azure Blob \S+ failed \(container azure.*\): HTTP 403/);
          for (const secret of [wrongKey, forgedSas, 'Zm9yZ2VkLXNpZ25hdHVyZS12YWx1ZQ', AZURITE_KEY]) expect(failure.message).not.toContain(secret);
          expect(JSON.stringify(failure)).not.toMatch(/sig=|Zm9yZ2Vk/);
        }
      }
    } finally {
      delete process.env.DR_TEST_AZURE_WRONG_KEY;
      delete process.env.DR_TEST_AZURE_FORGED_SAS;
    }
  });

  it('refuses retainUntil unless configured for immutability', async () => {
    const d = driver({ prefix: 'no-immutability/' });
    expect(d.capabilities.immutability).toBe(false);
    const retainUntil = new Date(Date.now() + 86_400_000);
    await expect(d.createUpload('x', { retainUntil })).rejects.toBeInstanceOf(ImmutabilityNotSupportedError);
    await expect(d.putObject('x', Buffer.from('x'), { retainUntil })).rejects.toBeInstanceOf(ImmutabilityNotSupportedError);
    expect(await d.stat('x')).toBeNull();
  });

  it('configured for immutability, refuses to publish an object Azurite did not lock (Azurite ignores the policy)', async () => {
    const d = driver({ prefix: 'immutability-azurite/', immutability: true, blockSizeBytes: MiB });
    expect(d.capabilities.immutability).toBe(true);
    const retainUntil = new Date(Date.now() + 86_400_000);
    const u = await d.createUpload('staged', { retainUntil });
    u.stream.end(Buffer.alloc(2 * MiB + 1, 4));
    await finished(u.stream);
    await expect(u.publish()).rejects.toThrow(/without the requested immutability policy/);
    await expect(d.putObject('small', Buffer.from('x'), { retainUntil })).rejects.toBeInstanceOf(ImmutabilityNotSupportedError);
    expect((await d.list('')).objects).toEqual([]);
    await expect(d.createUpload('past', { retainUntil: new Date(Date.now() - 1000) })).rejects.toThrow(/not in the future/);
  });

  it('sends the policy with the commit and maps 409 BlobImmutableDueToPolicy to ObjectLockedError (simulated Azure answers)', async () => {
    const retainUntil = new Date(Math.ceil((Date.now() + 86_400_000) / 1000) * 1000);
    const proxy = await startHttpProxy(new URL(azurite.accountUrl).host, {
      // what Azure answers for a blob under a policy: its properties carry the date, Delete Blob is refused
      responseHeaders: (req, headers) =>
        req.method === 'HEAD' && req.url!.includes('/locked/')
          ? { ...headers, 'x-ms-immutability-policy-until-date': retainUntil.toUTCString(), 'x-ms-immutability-policy-mode': 'unlocked' }
          : headers,
      answer: (req) =>
        req.method === 'DELETE' && req.url!.includes('/locked/')
          ? {
              status: 409,
              headers: { 'content-type': 'application/xml', 'x-ms-error-code': 'BlobImmutableDueToPolicy' },
              body: '<?xml version="1.0" encoding="utf-8"?><Error><Code>BlobImmutableDueToPolicy</Code><Message>This operation is not permitted as the blob is immutable due to a policy.</Message></Error>',
            }
          : undefined,
    });
    try {
      const d = driver({
        accountUrl: `${proxy.origin}/${AZURITE_ACCOUNT}`,
        prefix: 'locked/',
        immutability: true,
        immutabilityMode: 'Locked',
        blockSizeBytes: MiB,
      });
      const u = await d.createUpload('artifact', { retainUntil });
      u.stream.end(Buffer.alloc(MiB + 1, 5));
      await finished(u.stream);
      await u.publish();
      const commit = proxy.requests.find((r) => r.method === 'PUT' && r.url.includes('comp=blocklist'))!;
      expect(new Date(commit.headers['x-ms-immutability-policy-until-date'] as string).getTime()).toBe(retainUntil.getTime());
      expect(commit.headers['x-ms-immutability-policy-mode']).toMatch(/^locked$/i);
      const error = await d.delete('artifact').catch((e: unknown) => e);
      expect(error).toBeInstanceOf(ObjectLockedError);
      expect((error as ObjectLockedError).retainUntil?.getTime()).toBe(retainUntil.getTime());
      expect(await d.stat('artifact')).toMatchObject({ sizeBytes: MiB + 1 });
    } finally {
      await proxy.close();
    }
  });

  it('removeStaged counts only what reached Azure: nothing for bytes still in the writer, one name per staged blob', async () => {
    const d = driver({ prefix: 'crash-default/' });
    const small = await d.createUpload('small');
    small.stream.write(Buffer.alloc(2 * MiB, 1)); // less than one 8 MiB block: never left the process
    const big = await d.createUpload('big');
    big.stream.write(Buffer.alloc(10 * MiB, 2)); // one full block staged, 2 MiB in memory
    await blocksStaged('crash-default/big', 1);
    await new Promise((r) => setTimeout(r, 200)); // time enough for the 2 MiB to be staged too, were they sent
    const listed = [];
    for await (const b of rawContainer().listBlobsFlat({ prefix: 'crash-default/', includeUncommitedBlobs: true })) listed.push(b.name);
    expect(listed).toEqual(['crash-default/big']);
    expect(await d.removeStaged('')).toBe(1);
    expect(await d.removeStaged('')).toBe(0);
    small.stream.destroy();
    big.stream.destroy();
  });

  it('is not confused by blocks a crashed upload left: a later upload to the name commits only its own', async () => {
    const d = driver({ prefix: 'stale/', blockSizeBytes: MiB });
    const crashed = await d.createUpload('new');
    crashed.stream.write(Buffer.alloc(3 * MiB, 9));
    await blocksStaged('stale/new', 3); // dies here, no cleanup
    const replacement = await d.createUpload('new');
    replacement.stream.end(Buffer.from('the real content'));
    await finished(replacement.stream);
    await replacement.publish();
    expect((await d.readObject('new')).toString()).toBe('the real content');
    crashed.stream.destroy();

    // an interrupted replacement of a published object: invisible, not counted, the object intact
    await d.putObject('published', Buffer.from('v1'));
    const interrupted = await d.createUpload('published');
    interrupted.stream.write(Buffer.alloc(2 * MiB, 7));
    await blocksStaged('stale/published', 2);
    expect(await d.removeStaged('')).toBe(0);
    expect((await d.readObject('published')).toString()).toBe('v1');
    await upload(d, 'published', Buffer.from('v2'));
    expect((await d.readObject('published')).toString()).toBe('v2');
    interrupted.stream.destroy();
  });

  it('after a commit whose answers were lost, abort() removes the object the commit did create', async () => {
    const proxy = await startHttpProxy(new URL(azurite.accountUrl).host, {
      responseStatus: (req, status) => (req.method === 'PUT' && req.url!.includes('comp=blocklist') ? 500 : status), // committed, but the client hears 500
    });
    try {
      const d = driver({ accountUrl: `${proxy.origin}/${AZURITE_ACCOUNT}`, prefix: 'lost-commit/', blockSizeBytes: MiB });
      await d.putObject('other', Buffer.from('published by someone else'));
      const u = await d.createUpload('obj');
      u.stream.end(Buffer.alloc(2 * MiB, 6));
      await finished(u.stream);
      await expect(u.publish()).rejects.toThrow(/commitBlockList failed \(container azure, blob lost-commit\/obj\): HTTP 500/);
      expect(await d.stat('obj')).toMatchObject({ sizeBytes: 2 * MiB }); // Azure did commit it
      await u.abort();
      expect(await d.stat('obj')).toBeNull();
      expect((await d.list('')).objects.map((o) => o.key)).toEqual(['other']);
    } finally {
      await proxy.close();
    }
  });

  it('lists after a key it has no continuation marker for (another instance of the service)', async () => {
    const writer = driver({ prefix: 'paging/' });
    const keys = Array.from({ length: 12 }, (_, i) => `k${String(i).padStart(2, '0')}`);
    await Promise.all(keys.map((k) => writer.putObject(k, Buffer.from(k))));
    const first = await writer.list('', { limit: 5 });
    expect(first.nextAfter).toBe('k04');
    const other = driver({ prefix: 'paging/' });
    const second = await other.list('', { after: first.nextAfter, limit: 5 });
    expect(second.objects.map((o) => o.key)).toEqual(['k05', 'k06', 'k07', 'k08', 'k09']);
    expect(await other.list('', { after: 'k095', limit: 5 })).toEqual({
      objects: [expect.objectContaining({ key: 'k10' }), expect.objectContaining({ key: 'k11' })],
    });
    expect((await other.list('', { after: 'k11' })).objects).toEqual([]);
    expect((await other.list('k1', { after: 'a' })).objects.map((o) => o.key)).toEqual(['k10', 'k11']); // `after` before the prefix
    expect((await other.list('k0', { after: 'k1' })).objects).toEqual([]); // `after` beyond it
  });

  it('reports a missing container clearly, and an unreachable server within seconds', async () => {
    const missing = driver({ container: 'no-such-container' });
    await expect(missing.checkHealth()).rejects.toThrow(/container no-such-container.*HTTP 404 ContainerNotFound/);
    await expect(missing.stat('x')).rejects.toThrow(/HTTP 404 ContainerNotFound/);

    const port = await freePort(); // nothing listens there
    const unreachable = driver({ accountUrl: `http://127.0.0.1:${port}/${AZURITE_ACCOUNT}` });
    for (const [attempt, message] of [
      [() => unreachable.checkHealth(), /Azure Blob listBlobs failed \(container azure\): connect ECONNREFUSED/],
      [() => unreachable.read('x'), /Azure Blob download failed \(container azure, blob x\): connect ECONNREFUSED/],
    ] as const) {
      const started = Date.now();
      await expect(attempt()).rejects.toThrow(message);
      expect(Date.now() - started).toBeLessThan(6_000); // 4 tries over about 3.2 s
    }
  });

  it('reads an empty object, and rejects a range past the end with the status', async () => {
    const d = driver({ prefix: 'ranges/' });
    await d.putObject('empty', Buffer.alloc(0));
    expect((await d.readObject('empty')).length).toBe(0);
    await d.putObject('ten', Buffer.from('0123456789'));
    expect(Buffer.concat(await (await d.read('ten', { start: 9 })).toArray()).toString()).toBe('9');
    // (Azure answers 416 from the first byte past the end; Azurite 3.35 only beyond it)
    await expect(d.read('ten', { start: 11 })).rejects.toThrow(/Azure Blob download failed \(container azure, blob ranges\/ten\): HTTP 416 InvalidRange/);
    await expect(d.read('ten', { start: 5, end: 4 })).rejects.toBeInstanceOf(RangeError);
  });
});

describe('AzureBlobStorageSettings', () => {
  async function problems(plain: Record<string, unknown>) {
    const errors = await validate(plainToInstance(AzureBlobStorageSettings, plain), { whitelist: true, forbidNonWhitelisted: true });
    return toFieldProblems(errors);
  }

  it('accepts each credential kind alone', async () => {
    const base = { container: 'backups', prefix: 'dr/prod/', blockSizeBytes: 16 * MiB, concurrency: 8, immutability: true };
    expect(await problems({ ...base, connectionStringSecret: 'env:AZ_CS' })).toEqual([]);
    expect(
      await problems({ ...base, accountUrl: 'https://acct.blob.core.windows.net', accountName: 'acct', accountKeySecret: 'file:/run/secrets/az' }),
    ).toEqual([]);
    expect(await problems({ ...base, accountUrl: 'http://127.0.0.1:10000/devstoreaccount1', sasTokenSecret: 'env:AZ_SAS' })).toEqual([]);
  });

  it('asks for exactly one credential, field by field', async () => {
    expect(await problems({ container: 'backups', accountUrl: 'https://a.blob.core.windows.net' })).toEqual([
      { field: 'connectionStringSecret', message: expect.stringMatching(/^one credential is required/) },
      { field: 'accountKeySecret', message: expect.stringMatching(/^one credential is required/) },
      { field: 'sasTokenSecret', message: expect.stringMatching(/^one credential is required/) },
    ]);
    expect(
      await problems({
        container: 'backups',
        accountUrl: 'https://a.blob.core.windows.net',
        accountName: 'a12',
        accountKeySecret: 'env:K',
        sasTokenSecret: 'env:S',
      }),
    ).toEqual([
      { field: 'accountKeySecret', message: expect.stringContaining('accountKeySecret cannot be combined with sasTokenSecret') },
      { field: 'sasTokenSecret', message: expect.stringContaining('sasTokenSecret cannot be combined with accountKeySecret') },
    ]);
    expect(await problems({ container: 'backups', accountUrl: 'https://a.blob.core.windows.net', accountKeySecret: 'env:K' })).toEqual([
      { field: 'accountName', message: expect.stringContaining('is required with accountKeySecret') },
    ]);
    expect(await problems({ container: 'backups', accountUrl: 'https://a.blob.core.windows.net', sasTokenSecret: 'sv=2024&sig=abc' })).toEqual([
      { field: 'sasTokenSecret', message: 'sasTokenSecret must be env:NAME or file:/absolute/path' },
    ]);
  });

  it('checks the container, prefix, URL and sizes', async () => {
    const fields = (
      await problems({
        container: 'Bad_Name',
        prefix: '/abs',
        accountUrl: 'https://a.blob.core.windows.net/?sv=2024&sig=abc',
        sasTokenSecret: 'env:S',
        blockSizeBytes: 512 * 1024,
        concurrency: 17,
        immutabilityMode: 'Forever',
      })
    ).map((p) => p.field);
    expect(fields.sort()).toEqual(['accountUrl', 'blockSizeBytes', 'concurrency', 'container', 'immutabilityMode', 'prefix']);
    expect(await problems({ container: 'ok-name', connectionStringSecret: 'env:CS', accountUrl: 'https://a.blob.core.windows.net' })).toEqual([
      { field: 'accountUrl', message: expect.stringContaining('comes from the connection string') },
    ]);
  });
});
