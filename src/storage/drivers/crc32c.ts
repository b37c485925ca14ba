/** CRC-32C (Castagnoli, reflected polynomial 0x82F63B78), 8 tables of 256 entries for slicing-by-8. */
const TABLES = (() => {
  const t = new Int32Array(8 * 256);
  for (let n = 0; n < 256; n++) {
    let c = n;
    for (let k = 0; k < 8; k++) c = c & 1 ? (c >>> 1) ^ 0x82f63b78 : c >>> 1;
    t[n] = c;
  }
  for (let n = 0; n < 256; n++) {
    let c = t[n];
    for (let k = 1; k < 8; k++) {
      c = t[c & 0xff] ^ (c >>> 8);
      t[k * 256 + n] = c;
    }
  }
  return t;
})();

/**
 * CRC-32C of a byte stream, computed 8 bytes a step (about 1 GiB/s in V8, where the byte-a-step CRC32C of
 * @google-cloud/storage 7 does about 80 MiB/s and caps an upload's throughput). Same shape as that library's
 * `CRC32CValidator`, so it plugs in through `new Storage({ crc32cGenerator: () => new Crc32c() })`; GCS exchanges the
 * value as the base64 of its 4 big-endian bytes (`x-goog-hash: crc32c=...`, object metadata `crc32c`).
 */
export class Crc32c {
  private crc = 0;

  /** Adds `data` to the checksum. */
  update(data: Buffer): void {
    const t = TABLES;
    let c = ~this.crc;
    let i = 0;
    const end8 = data.length - (data.length % 8);
    for (; i < end8; i += 8) {
      const a = (data[i] | (data[i + 1] << 8) | (data[i + 2] << 16) | (data[i + 3] << 24)) ^ c;
      c =
        t[1792 + (a & 0xff)] ^
        t[1536 + ((a >>> 8) & 0xff)] ^
        t[1280 + ((a >>> 16) & 0xff)] ^
        t[1024 + (a >>> 24)] ^
        t[768 + data[i + 4]] ^
        t[512 + data[i + 5]] ^
        t[256 + data[i + 6]] ^
        t[data[i + 7]];
    }
    for (; i < data.length; i++) c = t[(c ^ data[i]) & 0xff] ^ (c >>> 8);
    this.crc = ~c;
  }

  /** The checksum so far, as GCS writes it: base64 of the 4 big-endian bytes. */
  toString(): string {
    const out = Buffer.alloc(4);
    out.writeInt32BE(this.crc);
    return out.toString('base64');
  }

  /** Whether `value` (base64, as GCS sends it) is the checksum so far. */
  validate(value: string): boolean {
    return value === this.toString();
  }
}
