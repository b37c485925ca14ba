import { createHash, createPrivateKey, createPublicKey, generateKeyPairSync, KeyObject, sign, verify } from 'node:crypto';
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { Injectable, Logger, OnModuleInit } from '@nestjs/common';
import { AppConfig } from '../config/app-config';
import { SecretResolver } from '../secrets/secret-resolver';

/** `manifest.sig`: a detached Ed25519 signature (RFC 8032) over the exact bytes of `manifest.json`. */
export interface ManifestSignature {
  algorithm: 'ed25519';
  /** First 16 hex digits of the SHA-256 of the raw 32-byte public key. */
  keyId: string;
  /** The 64-byte signature, base64. */
  signature: string;
}

/** Outcome of checking a manifest signature. */
export type SignatureCheck = { ok: true; keyId: string } | { ok: false; reason: string };

const GENERATED_KEY_FILE = 'manifest-signing-key.pem';
const GENERATED_PUBLIC_FILE = 'manifest-signing-key.pub.pem';

/**
 * Signs manifests with the configured Ed25519 key and checks signatures against the trusted public keys (the
 * signing key's own, plus `DR_MANIFEST_TRUSTED_KEYS`). The private key comes from `DR_MANIFEST_SIGNING_KEY_SECRET`;
 * unset, one is generated at first start into `DR_DATA_DIR/manifest-signing-key.pem` (mode 0600, public half
 * beside it), which suits one instance; replicas and other sites must share a configured key or trust each
 * other's public keys. The private key is never logged or returned.
 *
 * A signature verifies with standard tools: `openssl pkeyutl -verify -pubin -inkey key.pub.pem -rawin
 * -in manifest.json -sigfile <(jq -r .signature manifest.sig | base64 -d)` (see docs/artifact-format.md).
 */
@Injectable()
export class ManifestSigner implements OnModuleInit {
  private readonly logger = new Logger(ManifestSigner.name);
  private privateKey?: KeyObject;
  private keyId?: string;
  private readonly trusted = new Map<string, KeyObject>();

  constructor(
    private readonly config: AppConfig,
    private readonly secrets: SecretResolver,
  ) {}

  /** Loads (or generates) the signing key and the trusted public keys. @throws Error naming a key that cannot be read */
  async onModuleInit(): Promise<void> {
    const pem = this.config.manifestSigningKeySecret
      ? await this.secrets.resolveOperatorSecret(this.config.manifestSigningKeySecret, 'DR_MANIFEST_SIGNING_KEY_SECRET')
      : await this.generatedKey();
    let key: KeyObject;
    try {
      key = createPrivateKey(pem);
    } catch {
      throw new Error('the manifest signing key is not a PEM private key');
    }
    if (key.asymmetricKeyType !== 'ed25519') throw new Error(`the manifest signing key is ${key.asymmetricKeyType}, not ed25519`);
    this.privateKey = key;
    const publicKey = createPublicKey(key);
    this.keyId = keyIdOf(publicKey);
    this.trusted.set(this.keyId, publicKey);
    for (const file of this.config.manifestTrustedKeyFiles) {
      const trustedKey = createPublicKey(await readFile(file, 'utf8'));
      if (trustedKey.asymmetricKeyType !== 'ed25519') throw new Error(`trusted key ${file} is not an ed25519 public key`);
      this.trusted.set(keyIdOf(trustedKey), trustedKey);
    }
    this.logger.log(`manifests are signed with ed25519 key ${this.keyId}; ${this.trusted.size} trusted key(s)`);
  }

  /** Id of the key new manifests are signed with. */
  get signingKeyId(): string {
    return this.keyId!;
  }

  /** The signing key's public half as SPKI PEM (for operators who verify manifests with standard tools). */
  publicKeyPem(): string {
    return createPublicKey(this.privateKey!).export({ type: 'spki', format: 'pem' }).toString();
  }

  /** Signs the exact bytes of a manifest. */
  sign(manifest: Buffer): ManifestSignature {
    return { algorithm: 'ed25519', keyId: this.keyId!, signature: sign(null, manifest, this.privateKey!).toString('base64') };
  }

  /** Checks `signature` (the parsed `manifest.sig`) over the exact bytes of a manifest, against the trusted keys. */
  check(manifest: Buffer, signature: unknown): SignatureCheck {
    const sig = signature as Partial<ManifestSignature> | null;
    if (!sig || sig.algorithm !== 'ed25519' || typeof sig.keyId !== 'string' || typeof sig.signature !== 'string') {
      return { ok: false, reason: 'the signature file is not an ed25519 manifest signature' };
    }
    const key = this.trusted.get(sig.keyId);
    if (!key) return { ok: false, reason: `signed with key ${sig.keyId}, which is not trusted here` };
    const bytes = Buffer.from(sig.signature, 'base64');
    if (bytes.length !== 64 || !verify(null, manifest, key, bytes)) {
      return { ok: false, reason: `the signature by key ${sig.keyId} does not match the manifest's bytes` };
    }
    return { ok: true, keyId: sig.keyId };
  }

  /** Reads the generated key, or creates it (0600, in DR_DATA_DIR) at first start. */
  private async generatedKey(): Promise<string> {
    const file = join(this.config.dataDir, GENERATED_KEY_FILE);
    const existing = await readFile(file, 'utf8').catch((error: NodeJS.ErrnoException) => {
      if (error.code === 'ENOENT') return null;
      throw error;
    });
    if (existing) return existing;
    const { privateKey, publicKey } = generateKeyPairSync('ed25519');
    const pem = privateKey.export({ type: 'pkcs8', format: 'pem' }).toString();
    await mkdir(this.config.dataDir, { recursive: true, mode: 0o700 });
    await writeFile(file, pem, { mode: 0o600, flag: 'wx' }).catch(async (error: NodeJS.ErrnoException) => {
      if (error.code !== 'EEXIST') throw error; // another process of this data dir generated it first
    });
    await writeFile(join(this.config.dataDir, GENERATED_PUBLIC_FILE), publicKey.export({ type: 'spki', format: 'pem' }), { mode: 0o644 });
    this.logger.warn(`generated a manifest signing key in ${file}; set DR_MANIFEST_SIGNING_KEY_SECRET to share one key between replicas`);
    return readFile(file, 'utf8');
  }
}

/** First 16 hex digits of the SHA-256 of an Ed25519 public key's raw 32 bytes (the last 32 bytes of its SPKI DER). */
export function keyIdOf(publicKey: KeyObject): string {
  const der = publicKey.export({ type: 'spki', format: 'der' });
  return createHash('sha256')
    .update(der.subarray(der.length - 32))
    .digest('hex')
    .slice(0, 16);
}
