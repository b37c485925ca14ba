import { execFileSync } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';

/** A valid zstd frame of `data`, made by the zstd command line. */
export function zstdFrame(data: Buffer, level = 3): Buffer {
  return execFileSync('zstd', ['-q', '-c', `-${level}`], { input: data, maxBuffer: 64 << 20 });
}

/**
 * A valid zstd stream of `data` exactly `size` bytes long: the frame, then a skippable frame (RFC 8878 §3.1.2,
 * magic 0x184D2A50) as padding, which every decoder passes over. Such a replacement of a stored object passes
 * zstd's own checks and the size check; only the SHA-256 tells it from the original.
 * @throws when the frame does not fit in `size` bytes (with the 8 bytes of the skippable frame's header)
 */
export function zstdOfSize(data: Buffer, size: number, level = 19): Buffer {
  const frame = zstdFrame(data, level);
  const pad = size - frame.length;
  if (pad < 8) throw new Error(`the replacement (${frame.length} bytes) does not fit in ${size} bytes`);
  const header = Buffer.alloc(8);
  header.writeUInt32LE(0x184d2a50, 0);
  header.writeUInt32LE(pad - 8, 4);
  return Buffer.concat([frame, header, Buffer.alloc(pad - 8)]);
}

/** Inverts one byte of a file in place (a stored object damaged on disk). */
export function flipByte(path: string, offset: number): void {
  const data = readFileSync(path);
  data[offset] ^= 0xff;
  writeFileSync(path, data);
}
