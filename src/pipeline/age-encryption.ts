import { createCipheriv, KeyObject, randomBytes, scrypt } from 'node:crypto';
import { Duplex, pipeline, Readable } from 'node:stream';
import { Decrypter, Encrypter, identityToRecipient, type Recipient, Stanza } from 'age-encryption';
import { AGE_PAYLOAD_NONCE_BYTES, AGE_TAG_BYTES, AgePayloadDecrypter, AgePayloadEncrypter, agePayloadKey } from './age-payload';

export { AgePayloadError } from './age-payload';

/**
 * How an artifact is encrypted: for age X25519 recipients (`age1...` public keys; only the matching identities
 * decrypt), or with a passphrase (scrypt; for small setups). The format is age v1
 * (https://age-encryption.org/v1): the header and recipient stanzas are written and read by the `age-encryption`
 * package (typage, by age's author), the payload by node:crypto (./age-payload.ts); `age -d` opens every artifact
 * without this service.
 */
export type AgeEncryptionKey = { recipients: string[] } | { passphrase: string };

/** What can decrypt: age identities (`AGE-SECRET-KEY-1...`) and/or passphrases. */
export interface AgeDecryptionKeys {
  identities: string[];
  passphrases: string[];
}

/** Raised when an age recipient or identity string is not valid. */
export class InvalidAgeKeyError extends Error {}

/**
 * A Duplex that encrypts what is written to it into an age v1 file (https://age-encryption.org/v1): the header
 * (recipient stanzas and MAC, written by the age-encryption library) and the 16-byte payload nonce, then 64 KiB
 * ChaCha20-Poly1305 chunks sealed by node:crypto ({@link AgePayloadEncrypter}; several hundred MiB/s where the
 * library's pure JavaScript did about 93). The file key is the library's: a recipient that records it is added
 * beside the real ones (it writes no stanza), and the library's encryption of an empty file, which is exactly
 * header || nonce || one empty final chunk, gives the header and nonce. A passphrase is wrapped by
 * {@link ScryptPassphraseRecipient} (scrypt on node:crypto's thread pool). Bounded memory: one chunk plus what the
 * stream buffers; back-pressure is the Transform's.
 * @throws InvalidAgeKeyError for a recipient the library refuses, or none at all
 */
export async function createEncryptStream(key: AgeEncryptionKey): Promise<Duplex> {
  const encrypter = new Encrypter();
  try {
    if ('passphrase' in key) encrypter.addRecipient(new ScryptPassphraseRecipient(key.passphrase));
    else {
      if (key.recipients.length === 0) throw new Error('no recipient given');
      for (const recipient of key.recipients) encrypter.addRecipient(recipient);
    }
  } catch (error) {
    throw new InvalidAgeKeyError(`not a valid age recipient: ${(error as Error).message}`);
  }
  const tapped: { fileKey?: Uint8Array } = {};
  encrypter.addRecipient({
    wrapFileKey: (generated: Uint8Array): Stanza[] => {
      tapped.fileKey = Uint8Array.from(generated);
      return [];
    },
  });
  const emptyFile = await encrypter.encrypt(new Uint8Array(0));
  const prefix = emptyFile.subarray(0, emptyFile.length - AGE_TAG_BYTES);
  const headerBytes = headerEnd(Buffer.from(prefix.buffer, prefix.byteOffset, prefix.length));
  const fileKey = tapped.fileKey;
  if (!fileKey || headerBytes !== prefix.length - AGE_PAYLOAD_NONCE_BYTES) {
    // The library changed how it writes files: refuse rather than write something age cannot read.
    throw new Error('age-encryption did not produce header || nonce || empty final chunk for an empty file');
  }
  const payloadKey = agePayloadKey(fileKey, prefix.subarray(headerBytes));
  fileKey.fill(0);
  return new AgePayloadEncrypter(payloadKey, prefix);
}

/** Longest age header read before giving up on a stream (bytes): 20 post-quantum recipients take about 45 KiB. */
export const MAX_AGE_HEADER_BYTES = 1 << 20;

/** The stream is not an age v1 file, or ends inside its header or payload nonce. Names no key material. */
export class AgeHeaderError extends Error {}

const AGE_V1_LINE = Buffer.from('age-encryption.org/v1\n');

/**
 * Where the age header in `bytes` ends (the byte after the MAC line's LF), or -1 when the MAC line is not complete
 * yet. The MAC line is the first line starting with `---` (C2SP age.md: stanza lines start with `->`, bodies are
 * base64); the library then parses and authenticates everything before it.
 */
function headerEnd(bytes: Buffer): number {
  const mac = bytes.indexOf('\n---');
  if (mac < 0) return -1;
  const lf = bytes.indexOf(0x0a, mac + 1);
  return lf < 0 ? -1 : lf + 1;
}

/**
 * Decrypts an age v1 stream. The header is read (at most {@link MAX_AGE_HEADER_BYTES}) and checked against the keys
 * by the age-encryption library before this returns; the payload is then opened by node:crypto
 * ({@link AgePayloadDecrypter}): every 64 KiB chunk is authenticated before any of its plaintext is passed on, so a
 * changed byte fails the stream at that chunk, and a stream cut short or extended after its final chunk fails at
 * its end. Reads `ciphertext` only as fast as the returned stream is consumed; destroying the returned stream stops
 * (returns) the iterator.
 * @throws InvalidAgeKeyError for an identity that is not valid; AgeHeaderError when the stream is not an age v1
 *   file; the library's error when no key opens the file or the header MAC is wrong. The returned stream errors
 *   with AgePayloadError for a payload that fails.
 */
export async function decryptStream(ciphertext: AsyncIterable<Uint8Array>, keys: AgeDecryptionKeys): Promise<Readable> {
  const decrypter = new Decrypter();
  try {
    for (const identity of keys.identities) decrypter.addIdentity(identity);
  } catch {
    throw new InvalidAgeKeyError('an age identity given to the service is not valid (check DR_AGE_IDENTITY_SECRET)');
  }
  for (const passphrase of keys.passphrases) decrypter.addPassphrase(passphrase);
  const source = ciphertext[Symbol.asyncIterator]();
  let payload: Buffer;
  let payloadKey: KeyObject;
  try {
    const { header, nonce, rest } = await readHeader(source);
    const fileKey = await decrypter.decryptHeader(header);
    payloadKey = agePayloadKey(fileKey, nonce);
    fileKey.fill(0);
    payload = rest;
  } catch (error) {
    await closeQuietly(source);
    throw error;
  }
  async function* remaining(): AsyncGenerator<Buffer | Uint8Array> {
    try {
      if (payload.length) yield payload;
      for (;;) {
        const next = await source.next();
        if (next.done) return;
        yield next.value;
      }
    } finally {
      await closeQuietly(source);
    }
  }
  const plaintext = new AgePayloadDecrypter(payloadKey);
  // Errors reach `plaintext` (pipeline destroys every stage with the first error); its consumer reports them.
  pipeline(Readable.from(remaining(), { objectMode: false, highWaterMark: 1 << 20 }), plaintext, () => undefined);
  return plaintext;
}

/** Returns (closes) an iterator; an error from its own cleanup must not hide the one that made us stop. */
async function closeQuietly(source: AsyncIterator<unknown>): Promise<void> {
  try {
    await source.return?.();
  } catch {
    // the error that stopped the read is the one reported
  }
}

/**
 * Reads an age header and the payload nonce from the start of a stream, in time and memory linear in the header's
 * size whatever the size of the pieces the stream yields.
 * @returns the header bytes (through the MAC line), the 16-byte nonce, and the bytes read past it
 * @throws AgeHeaderError when the stream does not start with the v1 line, ends first, or has no MAC line in
 *   {@link MAX_AGE_HEADER_BYTES}
 */
async function readHeader(source: AsyncIterator<Uint8Array>): Promise<{ header: Buffer; nonce: Buffer; rest: Buffer }> {
  let buffer = Buffer.alloc(4096);
  let used = 0;
  let mac = -1; // offset of the LF before the MAC line's `---`
  let end = -1; // offset after the MAC line's LF
  while (end < 0 || used < end + AGE_PAYLOAD_NONCE_BYTES) {
    const next = await source.next();
    if (next.done) {
      if (used === 0) throw new AgeHeaderError('not an age v1 file: it is empty');
      throw new AgeHeaderError(end < 0 ? 'the age file ends inside its header' : 'the age file ends before its payload nonce');
    }
    const piece = next.value;
    if (used + piece.length > buffer.length) {
      const grown = Buffer.allocUnsafe(Math.max(buffer.length * 2, used + piece.length));
      buffer.copy(grown, 0, 0, used);
      buffer = grown;
    }
    buffer.set(piece, used);
    const searched = used;
    used += piece.length;
    const bytes = buffer.subarray(0, used);
    const head = Math.min(used, AGE_V1_LINE.length);
    if (!bytes.subarray(0, head).equals(AGE_V1_LINE.subarray(0, head))) {
      throw new AgeHeaderError('not an age v1 file (it does not start with "age-encryption.org/v1")');
    }
    if (mac < 0) mac = bytes.indexOf('\n---', Math.max(0, searched - 3));
    if (mac >= 0 && end < 0) {
      const lf = bytes.indexOf(0x0a, Math.max(mac + 1, searched));
      if (lf >= 0) end = lf + 1;
    }
    if (end < 0 && used > MAX_AGE_HEADER_BYTES) {
      throw new AgeHeaderError(`not an age v1 file: no header MAC line in its first ${MAX_AGE_HEADER_BYTES} bytes`);
    }
  }
  return {
    header: buffer.subarray(0, end),
    nonce: buffer.subarray(end, end + AGE_PAYLOAD_NONCE_BYTES),
    rest: buffer.subarray(end + AGE_PAYLOAD_NONCE_BYTES, used),
  };
}

/**
 * The age v1 scrypt recipient (C2SP age.md, "The scrypt recipient type"), as the library's `Recipient` interface:
 * the file key sealed with ChaCha20-Poly1305 (12 zero bytes of nonce) under scrypt(N = 2^logN, r = 8, p = 1,
 * dkLen = 32, S = "age-encryption.org/v1/scrypt" || 16 random bytes of salt, P = passphrase), in the stanza
 * `-> scrypt <base64 salt> <logN>`. node:crypto's scrypt runs on libuv's thread pool, where the library's ran in
 * JavaScript on the event loop for seconds; the library still writes the header around the stanza and reads it
 * back (its `ScryptIdentity`). Work factor 18, the library's and `age`'s default (256 MiB while it runs).
 */
export class ScryptPassphraseRecipient implements Recipient {
  /** @param logN base-2 logarithm of scrypt's N (18: about a second) */
  constructor(
    private readonly passphrase: string,
    private readonly logN = 18,
  ) {}

  /** @returns the one scrypt stanza wrapping `fileKey` (16 bytes) */
  async wrapFileKey(fileKey: Uint8Array): Promise<Stanza[]> {
    const salt = randomBytes(16);
    const r = 8;
    const N = 2 ** this.logN;
    const wrapKey = await new Promise<Buffer>((resolve, reject) =>
      scrypt(this.passphrase, Buffer.concat([Buffer.from('age-encryption.org/v1/scrypt'), salt]), 32, { N, r, p: 1, maxmem: 256 * N * r }, (error, key) =>
        error ? reject(error) : resolve(key),
      ),
    );
    const cipher = createCipheriv('chacha20-poly1305', wrapKey, Buffer.alloc(12), { authTagLength: 16 });
    const body = Buffer.concat([cipher.update(fileKey), cipher.final(), cipher.getAuthTag()]);
    wrapKey.fill(0);
    return [new Stanza(['scrypt', salt.toString('base64').replace(/=+$/, ''), String(this.logN)], body)];
  }
}

/**
 * Checks that `recipient` is an age recipient the library accepts (`age1...`), without encrypting anything.
 * @returns null when valid, else the library's reason.
 */
export function ageRecipientProblem(recipient: string): string | null {
  try {
    new Encrypter().addRecipient(recipient);
    return null;
  } catch (error) {
    return (error as Error).message;
  }
}

/**
 * Whether any of `identities` (`AGE-SECRET-KEY-1...`) opens a file encrypted to `recipients` (`age1...`): the
 * recipient of each identity is derived (X25519 public key) and looked up. Identities that cannot be read count as
 * none. @returns true when one matches
 */
export async function identitiesMatch(identities: string[], recipients: string[]): Promise<boolean> {
  const wanted = new Set(recipients);
  for (const identity of identities) {
    try {
      if (wanted.has(await identityToRecipient(identity))) return true;
    } catch {
      // not an identity the library reads: it opens nothing
    }
  }
  return false;
}
