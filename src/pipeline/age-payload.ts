import { createCipheriv, createDecipheriv, createSecretKey, hkdfSync, KeyObject } from 'node:crypto';
import { Transform, TransformCallback } from 'node:stream';

/*
 * The payload of an age v1 file (https://age-encryption.org/v1, "Payload"; C2SP age.md), on node:crypto's
 * ChaCha20-Poly1305 (OpenSSL's assembly) instead of pure JavaScript. After the header comes a 16-byte nonce, then
 * the plaintext in 64 KiB chunks, each sealed with ChaCha20-Poly1305 under
 *   payload key = HKDF-SHA-256(ikm = file key, salt = nonce, info = "payload")
 * and the 12-byte chunk nonce = 11-byte big-endian chunk counter (from 0) || 0x01 for the final chunk, else 0x00.
 * The final chunk may be shorter than 64 KiB; it is empty only when the whole plaintext is, and a full final chunk
 * is not followed by an empty one. The header (recipient stanzas, MAC) stays with the age-encryption library.
 */

/** Plaintext bytes per chunk (64 KiB). */
export const AGE_CHUNK_BYTES = 64 * 1024;
/** Poly1305 tag bytes closing each sealed chunk. */
export const AGE_TAG_BYTES = 16;
/** Bytes of one sealed full chunk (65,552). */
export const AGE_SEALED_CHUNK_BYTES = AGE_CHUNK_BYTES + AGE_TAG_BYTES;
/** Bytes of the random nonce that opens the payload. */
export const AGE_PAYLOAD_NONCE_BYTES = 16;

/** Buffers handed through per stream stage: a few 64 KiB chunks, as the pipeline's 1 MiB blocks pass. */
const STAGE_HIGH_WATER_MARK = 1 << 20;

/**
 * A payload that cannot be opened: a chunk failing authentication (changed, reordered, from another file), a
 * stream cut short before its final chunk, bytes after the final chunk, or an empty final chunk after others. The
 * message names the chunk and byte offset, never key material.
 */
export class AgePayloadError extends Error {}

/**
 * The payload key of age v1: HKDF-SHA-256 (RFC 5869) over the 16-byte file key, salted with the payload's 16-byte
 * nonce, info "payload", 32 bytes; returned as a KeyObject so the raw bytes are not passed around.
 */
export function agePayloadKey(fileKey: Uint8Array, nonce: Uint8Array): KeyObject {
  if (nonce.length !== AGE_PAYLOAD_NONCE_BYTES) throw new RangeError(`the age payload nonce is ${AGE_PAYLOAD_NONCE_BYTES} bytes, got ${nonce.length}`);
  return createSecretKey(Buffer.from(hkdfSync('sha256', fileKey, nonce, 'payload', 32)));
}

/**
 * Bytes waiting to make a chunk, kept as the buffers that arrived (no coalescing copy): at most one chunk plus
 * the last buffer written, since the transforms below drain it down to one chunk on every write.
 */
class ByteQueue {
  private buffers: Buffer[] = [];
  length = 0;

  push(buffer: Buffer): void {
    if (buffer.length === 0) return;
    this.buffers.push(buffer);
    this.length += buffer.length;
  }

  /** Removes the first `n` bytes (n ≤ length), as views of the queued buffers. */
  take(n: number): Buffer[] {
    const out: Buffer[] = [];
    while (n > 0) {
      const head = this.buffers[0];
      if (head.length <= n) {
        out.push(head);
        this.buffers.shift();
        n -= head.length;
        this.length -= head.length;
      } else {
        out.push(head.subarray(0, n));
        this.buffers[0] = head.subarray(n);
        this.length -= n;
        n = 0;
      }
    }
    return out;
  }
}

/** The 12-byte chunk nonce: an 11-byte big-endian counter and the final-chunk flag. */
class ChunkNonce {
  readonly bytes = Buffer.alloc(12);
  /** Index of the chunk this nonce is for (0-based); a float is exact far beyond any artifact's chunk count. */
  index = 0;

  next(): void {
    for (let i = 10; i >= 0; i--) {
      this.bytes[i] = (this.bytes[i] + 1) & 0xff;
      if (this.bytes[i] !== 0) break;
      if (i === 0) throw new AgePayloadError('age payload: the 11-byte chunk counter overflowed');
    }
    this.index++;
  }

  markFinal(): void {
    this.bytes[11] = 1;
  }
}

/**
 * Encrypts plaintext into an age v1 payload: writes `prefix` first (the header and 16-byte nonce the caller made),
 * then the sealed 64 KiB chunks. A chunk is sealed once 64 KiB plus at least one more byte are known, so the final
 * chunk (flagged at the end of input) is the last full or partial one; empty input gives one empty final chunk
 * (16 bytes). Holds at most one chunk of plaintext between writes; back-pressure is the Transform's.
 */
export class AgePayloadEncrypter extends Transform {
  private readonly pending = new ByteQueue();
  private readonly nonce = new ChunkNonce();
  private prefix: Buffer | null;

  /**
   * @param key the payload key ({@link agePayloadKey})
   * @param prefix bytes written before the first chunk: the age header and the payload nonce the key was derived with
   */
  constructor(
    private readonly key: KeyObject,
    prefix: Uint8Array,
  ) {
    super({ highWaterMark: STAGE_HIGH_WATER_MARK });
    this.prefix = Buffer.from(prefix.buffer, prefix.byteOffset, prefix.length);
  }

  override _transform(chunk: Buffer, _encoding: BufferEncoding, callback: TransformCallback): void {
    try {
      this.pushPrefix();
      this.pending.push(chunk);
      while (this.pending.length > AGE_CHUNK_BYTES) {
        this.push(this.seal(this.pending.take(AGE_CHUNK_BYTES)));
        this.nonce.next();
      }
      callback();
    } catch (error) {
      callback(error as Error);
    }
  }

  override _flush(callback: TransformCallback): void {
    try {
      this.pushPrefix();
      this.nonce.markFinal();
      this.push(this.seal(this.pending.take(this.pending.length)));
      callback();
    } catch (error) {
      callback(error as Error);
    }
  }

  private pushPrefix(): void {
    if (this.prefix === null) return;
    this.push(this.prefix);
    this.prefix = null;
  }

  /** ChaCha20-Poly1305 of the pieces under the current nonce: one buffer, ciphertext || tag. */
  private seal(pieces: Buffer[]): Buffer {
    const cipher = createCipheriv('chacha20-poly1305', this.key, this.nonce.bytes, { authTagLength: AGE_TAG_BYTES });
    const out: Buffer[] = [];
    let size = AGE_TAG_BYTES;
    for (const piece of pieces) {
      const sealed = cipher.update(piece);
      out.push(sealed);
      size += sealed.length;
    }
    cipher.final();
    out.push(cipher.getAuthTag());
    return Buffer.concat(out, size);
  }
}

/**
 * Decrypts an age v1 payload (the bytes after the 16-byte payload nonce) into the plaintext. A chunk's plaintext
 * is passed on only after its tag verified, never before. A full sealed chunk is opened as non-final once a byte
 * after it has arrived; what remains at the end is opened as the final chunk. Holds at most one sealed chunk plus
 * the last buffer written.
 * @throws (as the stream's error) {@link AgePayloadError} for a chunk that fails authentication, a payload cut short
 *   (no final chunk, or fewer than 16 bytes where a chunk should be), bytes after the final chunk, or an empty final
 *   chunk after full ones.
 */
export class AgePayloadDecrypter extends Transform {
  private readonly pending = new ByteQueue();
  private readonly nonce = new ChunkNonce();

  /** @param key the payload key ({@link agePayloadKey}) */
  constructor(private readonly key: KeyObject) {
    super({ highWaterMark: STAGE_HIGH_WATER_MARK });
  }

  override _transform(chunk: Buffer, _encoding: BufferEncoding, callback: TransformCallback): void {
    try {
      this.pending.push(chunk);
      while (this.pending.length > AGE_SEALED_CHUNK_BYTES) {
        this.push(this.open(this.pending.take(AGE_SEALED_CHUNK_BYTES), AGE_SEALED_CHUNK_BYTES));
        this.nonce.next();
      }
      callback();
    } catch (error) {
      callback(error as Error);
    }
  }

  override _flush(callback: TransformCallback): void {
    try {
      const size = this.pending.length;
      if (size < AGE_TAG_BYTES) {
        const where = this.nonce.index === 0 ? 'before its first chunk' : `after chunk ${this.nonce.index - 1}, without a final chunk`;
        throw new AgePayloadError(`age payload truncated: it ends ${where}${size ? ` (${size} stray bytes)` : ''}`);
      }
      this.nonce.markFinal();
      const plaintext = this.open(this.pending.take(size), size);
      if (plaintext.length === 0 && this.nonce.index > 0) {
        throw new AgePayloadError(`age payload invalid: its final chunk (${this.nonce.index}) is empty after full chunks`);
      }
      this.push(plaintext);
      callback();
    } catch (error) {
      callback(error as Error);
    }
  }

  /** Opens one sealed chunk of `size` bytes; @returns its plaintext, authenticated. @throws AgePayloadError */
  private open(pieces: Buffer[], size: number): Buffer {
    const decipher = createDecipheriv('chacha20-poly1305', this.key, this.nonce.bytes, { authTagLength: AGE_TAG_BYTES });
    let ciphertextLeft = size - AGE_TAG_BYTES;
    const out: Buffer[] = [];
    const tagPieces: Buffer[] = [];
    for (const piece of pieces) {
      const body = piece.subarray(0, Math.min(piece.length, ciphertextLeft));
      if (body.length) out.push(decipher.update(body));
      ciphertextLeft -= body.length;
      if (body.length < piece.length) tagPieces.push(piece.subarray(body.length));
    }
    decipher.setAuthTag(tagPieces.length === 1 ? tagPieces[0] : Buffer.concat(tagPieces, AGE_TAG_BYTES));
    try {
      decipher.final();
    } catch {
      const offset = this.nonce.index * AGE_SEALED_CHUNK_BYTES;
      const final = this.nonce.bytes[11] === 1 ? ' as the final chunk' : '';
      throw new AgePayloadError(
        `age payload chunk ${this.nonce.index} (payload bytes ${offset}..${offset + size}) failed authentication${final}: ` +
          'the file was changed, truncated, extended or is not the one the header belongs to',
      );
    }
    return out.length === 1 ? out[0] : Buffer.concat(out, size - AGE_TAG_BYTES);
  }
}
