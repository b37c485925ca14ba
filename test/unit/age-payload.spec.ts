import { execFileSync } from 'node:child_process';
import { createCipheriv, randomBytes } from 'node:crypto';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Readable, Writable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import {
  AgeDecryptionKeys,
  AgeHeaderError,
  AgePayloadError,
  createEncryptStream,
  decryptStream,
  MAX_AGE_HEADER_BYTES,
} from '../../src/pipeline/age-encryption';
import { AGE_CHUNK_BYTES, AGE_SEALED_CHUNK_BYTES, AgePayloadDecrypter, agePayloadKey } from '../../src/pipeline/age-payload';

/**
 * The age v1 payload (STREAM: ChaCha20-Poly1305, 64 KiB chunks, 11-byte counter + final flag) on node:crypto,
 * checked byte for byte against Debian's `age` command (Go, the reference implementation) at the chunk
 * boundaries, both ways, and against the spec's edge cases (C2SP age.md, "Payload"). Nothing is mocked.
 */
describe('age payload on node:crypto, checked against the age command', () => {
  const dir = mkdtempSync(join(tmpdir(), 'dr-age-payload-'));
  const keyFile = join(dir, 'key.txt');
  execFileSync('age-keygen', ['-o', keyFile], { stdio: 'ignore' });
  const keyText = readFileSync(keyFile, 'utf8');
  const identity = keyText.split('\n').find((l) => l.startsWith('AGE-SECRET-KEY-1'))!;
  const recipient = keyText.match(/public key: (age1[0-9a-z]+)/)![1];
  const keys: AgeDecryptionKeys = { identities: [identity], passphrases: [] };
  let fileNo = 0;

  /** Encrypts `data` with the service, written in pieces of `piece` bytes (odd sizes straddle chunk boundaries). */
  async function encryptOurs(data: Buffer, piece = 1 << 20, key: Parameters<typeof createEncryptStream>[0] = { recipients: [recipient] }): Promise<Buffer> {
    const pieces: Buffer[] = [];
    for (let i = 0; i < data.length; i += piece) pieces.push(data.subarray(i, i + piece));
    const out: Buffer[] = [];
    await pipeline(Readable.from(pieces), await createEncryptStream(key), new Writable({ write: (c, _e, cb) => (out.push(c), cb()) }));
    return Buffer.concat(out);
  }

  /** Decrypts with the service, the ciphertext given in pieces of `piece` bytes. */
  async function decryptOurs(ciphertext: Buffer, piece = 1 << 20, with_ = keys): Promise<Buffer> {
    const pieces: Buffer[] = [];
    for (let i = 0; i < ciphertext.length; i += piece) pieces.push(ciphertext.subarray(i, i + piece));
    return Buffer.concat(await (await decryptStream(Readable.from(pieces), with_)).toArray());
  }

  /** What `age -d -i key` makes of `ciphertext` (throws with age's message when it refuses it). */
  function ageDecrypt(ciphertext: Buffer): Buffer {
    const file = join(dir, `ours-${fileNo++}.age`);
    writeFileSync(file, ciphertext);
    return execFileSync('age', ['-d', '-i', keyFile, file], { maxBuffer: 64 << 20, stdio: ['ignore', 'pipe', 'pipe'] });
  }

  /** `age -r recipient` of `data`. */
  function ageEncrypt(data: Buffer): Buffer {
    const plain = join(dir, `plain-${fileNo}`);
    const file = join(dir, `theirs-${fileNo++}.age`);
    writeFileSync(plain, data);
    execFileSync('age', ['-r', recipient, '-o', file, plain]);
    return readFileSync(file);
  }

  /** Offset of the first payload chunk: after the header's MAC line and the 16-byte nonce. */
  function payloadStart(file: Buffer): number {
    return file.indexOf(0x0a, file.indexOf('\n---') + 1) + 1 + 16;
  }

  const SIZES = [0, 1, 65535, 65536, 65537, 131072, 131073, 5 * 1024 * 1024 + 12345];

  it.each(SIZES)('%i bytes: ours → age -d gives them back, age -r → ours gives them back', async (size) => {
    const data = randomBytes(size);
    const ours = await encryptOurs(data);
    expect(ageDecrypt(ours).equals(data)).toBe(true);
    // exactly one tag per 64 KiB chunk, and one for empty input: a full final chunk has no empty chunk after it
    const chunks = Math.max(1, Math.ceil(size / AGE_CHUNK_BYTES));
    expect(ours.length - payloadStart(ours)).toBe(size + 16 * chunks);

    const theirs = ageEncrypt(data);
    expect((await decryptOurs(theirs)).equals(data)).toBe(true);
  });

  it('is independent of how the bytes are cut: odd write and read sizes straddle chunks and tags', async () => {
    const data = randomBytes(3 * AGE_CHUNK_BYTES + 100);
    for (const piece of [1, 7, 16, 4099, AGE_CHUNK_BYTES - 1, AGE_CHUNK_BYTES + 1, AGE_SEALED_CHUNK_BYTES]) {
      const piecewise = piece === 1 ? data.subarray(0, 70_000) : data; // 1-byte writes: keep it short
      const ours = await encryptOurs(piecewise, piece);
      expect(ageDecrypt(ours).equals(piecewise)).toBe(true);
      expect((await decryptOurs(ageEncrypt(piecewise), piece)).equals(piecewise)).toBe(true);
    }
  });

  it('a changed tag fails with an error naming the chunk and no secret; nothing of that chunk is passed on', async () => {
    const data = randomBytes(3 * AGE_CHUNK_BYTES + 5);
    const file = ageEncrypt(data);
    const start = payloadStart(file);
    const tampered = Buffer.from(file);
    tampered[start + 2 * AGE_SEALED_CHUNK_BYTES - 1] ^= 0x01; // last byte of chunk 1's tag
    const stream = await decryptStream(Readable.from([tampered]), keys);
    const seen: Buffer[] = [];
    const error = await new Promise<Error>((resolve) => {
      stream.on('data', (c: Buffer) => seen.push(c));
      stream.on('error', resolve);
      stream.on('end', () => resolve(new Error('ended without an error')));
    });
    expect(error).toBeInstanceOf(AgePayloadError);
    expect(error.message).toMatch(/chunk 1 .*failed authentication/);
    expect(error.message).not.toContain(identity);
    expect(error.message).not.toContain(identity.slice(16, 40));
    // chunk 0 was authenticated and passed on; not one byte of chunk 1
    expect(Buffer.concat(seen).equals(data.subarray(0, AGE_CHUNK_BYTES))).toBe(true);
    expect(() => ageDecrypt(tampered)).toThrow(); // the reference refuses it too

    const changedBody = Buffer.from(file);
    changedBody[start + 10] ^= 0x80; // a ciphertext byte of chunk 0
    await expect(decryptOurs(changedBody)).rejects.toThrow(/chunk 0 .*failed authentication/);
  });

  it('a stream cut at a chunk boundary, or anywhere, fails (it lacks its final chunk)', async () => {
    for (const size of [131073, 131072, 65536]) {
      const file = ageEncrypt(randomBytes(size));
      const start = payloadStart(file);
      for (const cut of [start, start + AGE_SEALED_CHUNK_BYTES, start + 2 * AGE_SEALED_CHUNK_BYTES, start + 8, file.length - 1]) {
        if (cut >= file.length) continue;
        const truncated = file.subarray(0, cut);
        expect(() => ageDecrypt(truncated)).toThrow();
        await expect(decryptOurs(truncated)).rejects.toThrow(AgePayloadError);
      }
    }
    await expect(decryptOurs(ageEncrypt(randomBytes(10)).subarray(0, 60))).rejects.toThrow(AgeHeaderError);
  });

  it('data after the final chunk fails, whether the final chunk is short, full or empty', async () => {
    for (const size of [0, 100, 65536, 131072 + 3]) {
      const file = ageEncrypt(randomBytes(size));
      for (const extra of [Buffer.from([0]), randomBytes(16), randomBytes(100), randomBytes(AGE_SEALED_CHUNK_BYTES)]) {
        const extended = Buffer.concat([file, extra]);
        expect(() => ageDecrypt(extended)).toThrow();
        await expect(decryptOurs(extended)).rejects.toThrow(AgePayloadError);
      }
    }
  });

  it('an empty final chunk after a full one is refused (the spec allows it only for an empty file)', async () => {
    // A payload sealed here by hand, per the spec, so the decrypter is checked against an independent writer.
    const fileKey = randomBytes(16);
    const nonce = randomBytes(16);
    const key = agePayloadKey(fileKey, nonce);
    const seal = (plain: Buffer, counter: number, final: boolean) => {
      const chunkNonce = Buffer.alloc(12);
      chunkNonce.writeUIntBE(counter, 5, 6);
      chunkNonce[11] = final ? 1 : 0;
      const cipher = createCipheriv('chacha20-poly1305', key, chunkNonce, { authTagLength: 16 });
      return Buffer.concat([cipher.update(plain), cipher.final(), cipher.getAuthTag()]);
    };
    const open = async (payload: Buffer) => Buffer.concat(await Readable.from([payload]).pipe(new AgePayloadDecrypter(key)).toArray());
    const full = randomBytes(AGE_CHUNK_BYTES);
    expect((await open(seal(full, 0, true))).equals(full)).toBe(true);
    expect((await open(Buffer.concat([seal(full, 0, false), seal(full, 1, true)]))).equals(Buffer.concat([full, full]))).toBe(true);
    expect((await open(seal(Buffer.alloc(0), 0, true))).length).toBe(0);
    await expect(open(Buffer.concat([seal(full, 0, false), seal(Buffer.alloc(0), 1, true)]))).rejects.toThrow(/final chunk \(1\) is empty/);
    // chunks out of order, or a non-final chunk where the final one should be
    await expect(open(Buffer.concat([seal(full, 1, false), seal(full, 0, true)]))).rejects.toThrow(/chunk 0 /);
    await expect(open(seal(full, 0, false))).rejects.toThrow(/as the final chunk/);
  });

  it('reads only as fast as the plaintext is consumed (one chunk at a time, bounded memory)', async () => {
    const block = randomBytes(1 << 20);
    // 256 MiB encrypted on the fly and decrypted; both ends count what they were asked for
    let produced = 0;
    async function* plain() {
      for (let i = 0; i < 256; i++) {
        produced += block.length;
        yield block;
      }
    }
    const ciphertext = Readable.from(plain()).pipe(await createEncryptStream({ recipients: [recipient] }));
    let pulled = 0;
    async function* counted() {
      for await (const piece of ciphertext) {
        pulled += (piece as Buffer).length;
        yield piece as Buffer;
      }
    }
    const plaintext = await decryptStream(counted(), keys);
    const first = await new Promise<Buffer>((resolve) => plaintext.once('data', resolve));
    plaintext.pause();
    await new Promise((r) => setTimeout(r, 500));
    expect(first.length).toBeGreaterThan(0);
    expect(pulled).toBeLessThanOrEqual(8 << 20);
    expect(produced).toBeLessThanOrEqual(12 << 20);
    plaintext.destroy();
    ciphertext.destroy();

    // encrypting: a writer that heeds back-pressure stops after a few MiB when nobody reads
    const encrypter = await createEncryptStream({ recipients: [recipient] });
    let written = 0;
    while (encrypter.write(block)) written += block.length;
    expect(written).toBeLessThanOrEqual(4 << 20);
    encrypter.destroy();
  });

  it('refuses what is not an age file without reading it all: no MAC line in the first MiB', async () => {
    let pulled = 0;
    async function* endlessHeader() {
      yield Buffer.from('age-encryption.org/v1\n-> X25519 ');
      for (;;) {
        pulled += 64 * 1024;
        yield Buffer.alloc(64 * 1024, 0x41);
      }
    }
    await expect(decryptStream(endlessHeader(), keys)).rejects.toThrow(AgeHeaderError);
    expect(pulled).toBeLessThanOrEqual(MAX_AGE_HEADER_BYTES + (64 << 10));
    await expect(decryptOurs(Buffer.from('PK\x03\x04 not age at all'))).rejects.toThrow(/not an age v1 file/);
    await expect(decryptOurs(Buffer.alloc(0))).rejects.toThrow(/not an age v1 file/);
  });

  it('a passphrase: ours → age -d with that passphrase, and age -p → ours, and the wrong one is refused', async () => {
    const data = randomBytes(2 * AGE_CHUNK_BYTES + 9);
    const passphrase = 'correct horse battery staple 15';
    const ours = await encryptOurs(data, 1 << 20, { passphrase });
    expect(ours.subarray(0, 200).toString('latin1')).toMatch(/^age-encryption\.org\/v1\n-> scrypt [A-Za-z0-9+/]{22} 18\n/);
    writeFileSync(join(dir, 'pass.age'), ours);
    // age reads a passphrase only from a terminal: `script` gives it one
    const run = (command: string) =>
      execFileSync('script', ['-qec', command, '/dev/null'], { input: `${passphrase}\n${passphrase}\n`, cwd: dir, stdio: ['pipe', 'ignore', 'ignore'] });
    run('age -d -o pass.out pass.age');
    expect(readFileSync(join(dir, 'pass.out')).equals(data)).toBe(true);
    writeFileSync(join(dir, 'pass.in'), data);
    run('age -p -o pass-theirs.age pass.in');
    const theirs = readFileSync(join(dir, 'pass-theirs.age'));
    expect((await decryptOurs(theirs, 1 << 20, { identities: [], passphrases: [passphrase] })).equals(data)).toBe(true);
    const refused = decryptOurs(ours, 1 << 20, { identities: [], passphrases: ['wrong passphrase'] });
    await expect(refused).rejects.toThrow();
    await refused.catch((e: Error) => expect(e.message).not.toContain(passphrase));
  });
});
