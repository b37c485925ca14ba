import { randomBytes } from 'node:crypto';
import { existsSync, mkdtempSync, readdirSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { finished } from 'node:stream/promises';
import { text } from 'node:stream/consumers';
import { LocalStorageDriver } from '../../src/storage/local.driver';
import { InvalidObjectKeyError, ObjectNotFoundError } from '../../src/storage/storage-driver';

describe('LocalStorageDriver (real files)', () => {
  const root = mkdtempSync(join(tmpdir(), 'dr-local-'));
  const driver = new LocalStorageDriver(root);

  it('shows nothing under the final name until publish, and the whole object after', async () => {
    const upload = await driver.createUpload('b1/artifact.bin');
    const body = randomBytes(3 << 20);
    upload.stream.write(body.subarray(0, 1 << 20));
    expect(await driver.stat('b1/artifact.bin')).toBeNull();
    upload.stream.end(body.subarray(1 << 20));
    await finished(upload.stream);
    expect(await driver.stat('b1/artifact.bin')).toBeNull();
    await upload.publish();
    expect((await driver.readObject('b1/artifact.bin')).equals(body)).toBe(true);
  });

  it('aborted uploads leave nothing behind; removeStaged cleans after a crash', async () => {
    const aborted = await driver.createUpload('b2/artifact.bin');
    aborted.stream.write('partial');
    await aborted.abort();
    expect(readdirSync(join(root, 'b2'))).toEqual([]);

    const crashed = await driver.createUpload('b3/artifact.bin');
    crashed.stream.write('partial');
    await new Promise((r) => setTimeout(r, 50)); // the process "dies" here: neither publish nor abort
    expect(readdirSync(join(root, 'b3'))).toHaveLength(1);
    expect(await driver.removeStaged('b3/')).toBe(1);
    expect(readdirSync(join(root, 'b3'))).toEqual([]);
    crashed.stream.destroy();
  });

  it('reads byte ranges, lists with paging in key order, deletes idempotently', async () => {
    await driver.putObject('r/obj', Buffer.from('0123456789'));
    expect(await text(await driver.read('r/obj', { start: 2, end: 5 }))).toBe('2345');
    expect(await text(await driver.read('r/obj', { start: 7 }))).toBe('789');
    for (const k of ['p/c', 'p/a', 'p/b/x', 'p/d']) await driver.putObject(k, Buffer.from(k));
    const first = await driver.list('p/', { limit: 2 });
    expect(first.objects.map((o) => o.key)).toEqual(['p/a', 'p/b/x']);
    const second = await driver.list('p/', { limit: 2, after: first.nextAfter });
    expect(second.objects.map((o) => o.key)).toEqual(['p/c', 'p/d']);
    expect(second.nextAfter).toBeUndefined();
    await driver.delete('p/a');
    await driver.delete('p/a');
    expect(existsSync(join(root, 'p', 'a'))).toBe(false);
    await expect(driver.read('p/a')).rejects.toBeInstanceOf(ObjectNotFoundError);
  });

  it('rejects keys that could escape the root', async () => {
    for (const key of ['../x', '/etc/passwd', 'a/../../b', 'a//b', '', 'a/./b']) {
      await expect(driver.createUpload(key)).rejects.toBeInstanceOf(InvalidObjectKeyError);
    }
  });
});
