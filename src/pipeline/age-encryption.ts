import { Duplex, Readable } from 'node:stream';
import { Decrypter, Encrypter, identityToRecipient } from 'age-encryption';

/**
 * How an artifact is encrypted: for age X25519 recipients (`age1...` public keys; only the matching identities
 * decrypt), or with a passphrase (scrypt; for small setups). The format is age v1
 * (https://age-encryption.org/v1), written and read by the `age-encryption` package (typage, by age's author),
 * so `age -d` opens every artifact without this service.
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
 * A Duplex that encrypts what is written to it into an age v1 file (header, then 64 KiB ChaCha20-Poly1305 chunks).
 * Back-pressure flows through the Web streams the library works on. Throughput is the library's (pure JavaScript:
 * about 93 MiB/s encrypting on the machine of bench/README.md).
 * @throws InvalidAgeKeyError for a recipient the library refuses
 */
export async function createEncryptStream(key: AgeEncryptionKey): Promise<Duplex> {
  const encrypter = new Encrypter();
  try {
    if ('passphrase' in key) encrypter.setPassphrase(key.passphrase);
    else for (const recipient of key.recipients) encrypter.addRecipient(recipient);
  } catch (error) {
    throw new InvalidAgeKeyError(`not a valid age recipient: ${(error as Error).message}`);
  }
  const plaintext = new TransformStream<Uint8Array, Uint8Array>();
  const ciphertext = await encrypter.encrypt(plaintext.readable);
  return Duplex.fromWeb({ writable: plaintext.writable, readable: ciphertext }, { objectMode: false });
}

/**
 * Decrypts an age v1 stream. The header is checked against the keys first; every 64 KiB chunk is authenticated
 * before its plaintext is passed on, so a changed byte fails the stream at that chunk.
 * @throws (from the returned stream) an error when no key opens the file, or a chunk fails authentication
 */
export async function decryptStream(ciphertext: AsyncIterable<Uint8Array>, keys: AgeDecryptionKeys): Promise<Readable> {
  const decrypter = new Decrypter();
  try {
    for (const identity of keys.identities) decrypter.addIdentity(identity);
  } catch {
    throw new InvalidAgeKeyError('an age identity given to the service is not valid (check DR_AGE_IDENTITY_SECRET)');
  }
  for (const passphrase of keys.passphrases) decrypter.addPassphrase(passphrase);
  const plaintext = await decrypter.decrypt(Readable.toWeb(Readable.from(ciphertext)) as ReadableStream<Uint8Array>);
  return Readable.fromWeb(plaintext as import('node:stream/web').ReadableStream<Uint8Array>, { objectMode: false });
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
