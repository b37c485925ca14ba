import { execFileSync } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Readable, Writable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { AppConfig } from '../../src/config/app-config';
import { ageRecipientProblem, createEncryptStream, decryptStream } from '../../src/pipeline/age-encryption';
import { ArtifactPipeline } from '../../src/pipeline/artifact-pipeline';

/** age v1 interoperability, both ways, with Debian's `age` command (the reference implementation). */
describe('age encryption (age-encryption package, checked against the age command)', () => {
  const dir = mkdtempSync(join(tmpdir(), 'dr-age-'));
  const keyFile = join(dir, 'key.txt');
  execFileSync('age-keygen', ['-o', keyFile], { stdio: 'ignore' });
  const keyText = readFileSync(keyFile, 'utf8');
  const identity = keyText.split('\n').find((l) => l.startsWith('AGE-SECRET-KEY-1'))!;
  const recipient = keyText.match(/public key: (age1[0-9a-z]+)/)![1];
  const sha = (b: Buffer) => createHash('sha256').update(b).digest('hex');

  it('what the service encrypts, age -d decrypts', async () => {
    const data = randomBytes(3 * 65536 + 17); // several 64 KiB chunks and a partial one
    const chunks: Buffer[] = [];
    await pipeline(
      Readable.from([data]),
      await createEncryptStream({ recipients: [recipient] }),
      new Writable({ write: (c, _e, cb) => (chunks.push(c), cb()) }),
    );
    writeFileSync(join(dir, 'ours.age'), Buffer.concat(chunks));
    expect(sha(execFileSync('age', ['-d', '-i', keyFile, join(dir, 'ours.age')], { maxBuffer: 16 << 20 }))).toBe(sha(data));
  });

  it('what age -r encrypts, the service decrypts', async () => {
    const data = randomBytes(200_000);
    writeFileSync(join(dir, 'plain'), data);
    execFileSync('age', ['-r', recipient, '-o', join(dir, 'theirs.age'), join(dir, 'plain')]);
    const out = await decryptStream(Readable.from([readFileSync(join(dir, 'theirs.age'))]), { identities: [identity], passphrases: [] });
    expect(sha(Buffer.concat(await out.toArray()))).toBe(sha(data));
  });

  it('refuses the wrong identity and a changed byte of ciphertext', async () => {
    const other = execFileSync('age-keygen')
      .toString()
      .split('\n')
      .find((l) => l.startsWith('AGE-SECRET-KEY-1'))!;
    const ciphertext = readFileSync(join(dir, 'theirs.age'));
    await expect(decryptStream(Readable.from([ciphertext]), { identities: [other], passphrases: [] }).then((s) => s.toArray())).rejects.toThrow();
    const tampered = Buffer.from(ciphertext);
    tampered[tampered.length - 100] ^= 1;
    await expect(decryptStream(Readable.from([tampered]), { identities: [identity], passphrases: [] }).then((s) => s.toArray())).rejects.toThrow();
  });

  it('validates recipients', () => {
    expect(ageRecipientProblem(recipient)).toBeNull();
    expect(ageRecipientProblem('age1qqqq')).not.toBeNull();
    expect(ageRecipientProblem('ssh-ed25519 AAAA')).not.toBeNull();
  });

  it('the pipeline compresses then encrypts, and opens what it stored: age -d | zstd -d gives the input back', async () => {
    const p = new ArtifactPipeline({ zstdLevel: 3, zstdWorkers: 1 } as AppConfig);
    const data = Buffer.concat([randomBytes(1 << 20), Buffer.alloc(4 << 20, 7)]);
    const chunks: Buffer[] = [];
    const stored = await p.store(Readable.from([data]), new Writable({ write: (c, _e, cb) => (chunks.push(c), cb()) }), {
      encryption: { recipients: [recipient] },
    });
    const ciphertext = Buffer.concat(chunks);
    expect(stored).toMatchObject({ sizeBytes: data.length, storedBytes: ciphertext.length, sha256: sha(ciphertext) });
    writeFileSync(join(dir, 'artifact.zst.age'), ciphertext);
    const byHand = execFileSync('bash', ['-c', 'set -o pipefail; age -d -i "$1" "$2" | zstd -dc', '_', keyFile, join(dir, 'artifact.zst.age')], {
      maxBuffer: 64 << 20,
    });
    expect(sha(byHand)).toBe(sha(data));
    const raw = await p.openRaw(Readable.from([ciphertext]), 'k', stored.sha256, { decryption: { identities: [identity], passphrases: [] } });
    expect(sha(Buffer.concat(await raw.toArray()))).toBe(sha(data));
  });
});
