import { randomBytes } from 'node:crypto';
import { CRC32C } from '@google-cloud/storage';
import { Crc32c } from '../../src/storage/drivers/crc32c';

describe('Crc32c', () => {
  it('matches the known check value and the @google-cloud/storage implementation, however the bytes are split', () => {
    const check = new Crc32c();
    check.update(Buffer.from('123456789'));
    expect(Buffer.from(check.toString(), 'base64').readUInt32BE()).toBe(0xe3069283); // the CRC-32C check value
    const data = randomBytes(100_003);
    const reference = new CRC32C();
    reference.update(data);
    for (const splits of [[], [1], [7, 8, 9], [50_000], [3, 99_999]]) {
      const crc = new Crc32c();
      let from = 0;
      for (const at of [...splits, data.length]) {
        crc.update(data.subarray(from, at));
        from = at;
      }
      expect(crc.toString()).toBe(reference.toString());
      expect(crc.validate(reference.toString())).toBe(true);
    }
    expect(new Crc32c().toString()).toBe(new CRC32C().toString());
  });
});
