import { execFile, execFileSync } from 'node:child_process';
import { createCipheriv, createDecipheriv, createHash, randomBytes, scryptSync } from 'node:crypto';
import { mkdirSync, readdirSync, readFileSync, unlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { promisify } from 'node:util';

const run = promisify(execFile);

/** `restic version` of the `restic` on PATH (e.g. `{ major: 0, minor: 14, text: 'restic 0.14.0 compiled with …' }`), or null when absent. */
export function findRestic(): { major: number; minor: number; text: string } | null {
  try {
    const text = execFileSync('restic', ['version'], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] }).trim();
    const m = /restic (\d+)\.(\d+)/.exec(text);
    return m ? { major: Number(m[1]), minor: Number(m[2]), text } : null;
  } catch {
    return null;
  }
}

/** A snapshot as `restic snapshots --json` / `forget --json` show it (the fields used here). */
export interface ResticSnapshot {
  id: string;
  short_id: string;
  time: string;
  hostname: string;
}

/** One snapshot group of `restic forget --json`. */
export interface ForgetGroup {
  host: string;
  keep: ResticSnapshot[] | null;
  remove: ResticSnapshot[] | null;
  /** In the order of `keep`; restic 0.14 leaves the id out of these snapshot objects. */
  reasons: { snapshot: Omit<ResticSnapshot, 'id' | 'short_id'>; matches: string[] }[] | null;
}

/**
 * A throw-away restic repository in `dir`, driven through the real `restic` binary. Every command gets `TZ`, so
 * `backup --time` is read, and `forget` cuts its buckets, in that zone.
 */
export class ResticRepo {
  private masterKey: CipherKey | null = null;

  private constructor(
    readonly dir: string,
    private readonly password: string,
  ) {}

  /**
   * `restic init`, then {@link useCheapKey} so that each later command opens the repository in ~0.1 s instead of
   * ~0.7 s. Should restic not accept the cheap key, the original one is put back (correct, only slower).
   */
  static async create(dir: string): Promise<ResticRepo> {
    const repo = new ResticRepo(dir, 'retention-test');
    await repo.restic('UTC', ['init']);
    const { masterKey, undo } = useCheapKey(join(dir, 'repo'), repo.password);
    repo.masterKey = masterKey;
    try {
      await repo.restic('UTC', ['cat', 'config']);
    } catch (err) {
      undo();
      console.warn(`restic did not accept the cheap key, using the original one (slower): ${String(err)}`);
    }
    return repo;
  }

  async restic(timezone: string, args: string[]): Promise<string> {
    const { stdout } = await run('restic', ['--no-cache', ...args], {
      env: {
        PATH: process.env.PATH ?? '/usr/bin:/bin',
        HOME: this.dir,
        TZ: timezone,
        RESTIC_REPOSITORY: join(this.dir, 'repo'),
        RESTIC_PASSWORD: this.password,
      },
      maxBuffer: 64 * 1024 * 1024,
    });
    return stdout;
  }

  /**
   * One `restic backup --time <wall clock> --host <host>` of a tiny directory per entry of `wallTimes`
   * ("YYYY-MM-DD HH:MM:SS" in `timezone`), `parallel` at a time: backups take shared locks, so they may overlap,
   * and each restic command spends ~0.2 s waiting before it checks for other locks.
   * @returns the snapshot id of each wall time.
   */
  async backupAt(host: string, timezone: string, wallTimes: readonly string[], parallel = 4): Promise<Map<string, string>> {
    const source = join(this.dir, 'src');
    mkdirSync(source, { recursive: true });
    writeFileSync(join(source, 'data.txt'), 'retention test\n');
    const ids = new Map<string, string>();
    let next = 0;
    const worker = async () => {
      while (next < wallTimes.length) {
        const wall = wallTimes[next++];
        // --force: no parent snapshot to look up among all the snapshots of the repository
        const out = await this.restic(timezone, ['backup', '--json', '--quiet', '--force', '--host', host, '--time', wall, source]);
        const summary = out
          .split('\n')
          .filter((l) => l.includes('"summary"'))
          .map((l) => JSON.parse(l) as { snapshot_id: string })[0];
        if (!summary?.snapshot_id) throw new Error(`restic backup --time "${wall}" printed no snapshot id: ${out}`);
        ids.set(wall, summary.snapshot_id);
      }
    };
    await Promise.all(Array.from({ length: parallel }, worker));
    return ids;
  }

  /**
   * Adds snapshots of `host` at the given instants that are copies of `template` (a snapshot made by
   * `restic backup`) with only `time` and `hostname` changed. Each is stored as restic stores a snapshot:
   * the JSON sealed with the repository's master key, in `snapshots/<sha256 of the stored bytes>`. The time is
   * written as restic writes it, in RFC 3339 with the offset of `timezone` at that instant, so that restic reads
   * it back in its local zone (TZ) like its own snapshots. This takes milliseconds where `restic backup --time`
   * takes a process, a repository open and a lock each; it also reaches instants that a wall clock cannot name
   * (the first 02:30 of a DST fall-back night).
   */
  cloneSnapshot(template: ResticSnapshot, host: string, timezone: string, instants: readonly Date[]): void {
    if (!this.masterKey) throw new Error('no master key');
    const { id: _id, short_id: _shortId, parent: _parent, ...fields } = template as ResticSnapshot & { parent?: string };
    for (const instant of instants) {
      const json = Buffer.from(JSON.stringify({ ...fields, time: rfc3339InZone(instant, timezone), hostname: host }));
      const stored = seal(this.masterKey, json);
      writeFileSync(join(this.dir, 'repo', 'snapshots', createHash('sha256').update(stored).digest('hex')), stored);
    }
  }

  async snapshots(host: string): Promise<ResticSnapshot[]> {
    return JSON.parse(await this.restic('UTC', ['snapshots', '--json', '--host', host])) as ResticSnapshot[];
  }

  /** `restic forget --dry-run --json --host <host> <policy flags>` with `TZ=<timezone>`; the host's one snapshot group. */
  async forgetDryRun(host: string, timezone: string, flags: string[]): Promise<ForgetGroup> {
    const groups = JSON.parse(await this.restic(timezone, ['--no-lock', 'forget', '--dry-run', '--json', '--host', host, ...flags])) as ForgetGroup[];
    if (groups.length !== 1) throw new Error(`expected one snapshot group for host ${host}, got ${groups.length}`);
    return groups[0];
  }
}

/*
 * restic derives the key that unlocks a repository with scrypt, with parameters calibrated at `init` to take
 * about half a second; every restic command pays that again. The repository format (restic doc/design.rst,
 * "Keys, Encryption and MAC") lets a key file name its own scrypt parameters, so the test replaces the key
 * of its throw-away repository with one of cheap parameters. The master key, and so every snapshot restic
 * writes, is unchanged. Crypto as in restic's internal/crypto: AES-256-CTR, then Poly1305-AES over the
 * ciphertext (key r, and AES-128_k(nonce) as s); a sealed blob is nonce(16) || ciphertext || mac(16).
 */

interface CipherKey {
  encrypt: Buffer;
  macK: Buffer;
  macR: Buffer;
}

function deriveCipherKey(password: string, salt: Buffer, N: number, r: number, p: number): CipherKey {
  const b = scryptSync(password, salt, 64, { N, r, p, maxmem: 256 * N * r * p + 32 * 1024 * 1024 });
  return { encrypt: b.subarray(0, 32), macK: b.subarray(32, 48), macR: b.subarray(48, 64) };
}

const P1305 = (1n << 130n) - 5n;

function littleEndian(b: Buffer): bigint {
  let x = 0n;
  for (let i = b.length - 1; i >= 0; i--) x = (x << 8n) | BigInt(b[i]);
  return x;
}

function poly1305Aes(message: Buffer, nonce: Buffer, key: CipherKey): Buffer {
  const aes = createCipheriv('aes-128-ecb', key.macK, null);
  aes.setAutoPadding(false);
  const s = littleEndian(aes.update(nonce));
  const r = littleEndian(key.macR) & 0x0ffffffc0ffffffc0ffffffc0fffffffn;
  let acc = 0n;
  for (let i = 0; i < message.length; i += 16) {
    const block = message.subarray(i, i + 16);
    acc = ((acc + littleEndian(block) + (1n << BigInt(8 * block.length))) * r) % P1305;
  }
  acc = (acc + s) & ((1n << 128n) - 1n);
  const out = Buffer.alloc(16);
  for (let i = 0; i < 16; i++, acc >>= 8n) out[i] = Number(acc & 0xffn);
  return out;
}

function open(key: CipherKey, sealed: Buffer): Buffer {
  const nonce = sealed.subarray(0, 16);
  const ciphertext = sealed.subarray(16, sealed.length - 16);
  if (!poly1305Aes(ciphertext, nonce, key).equals(sealed.subarray(sealed.length - 16))) throw new Error('restic key file: MAC mismatch');
  const d = createDecipheriv('aes-256-ctr', key.encrypt, nonce);
  return Buffer.concat([d.update(ciphertext), d.final()]);
}

function seal(key: CipherKey, plaintext: Buffer): Buffer {
  const nonce = randomBytes(16);
  const c = createCipheriv('aes-256-ctr', key.encrypt, nonce);
  const ciphertext = Buffer.concat([c.update(plaintext), c.final()]);
  return Buffer.concat([nonce, ciphertext, poly1305Aes(ciphertext, nonce, key)]);
}

/**
 * Replaces the only key of the repository at `repoPath` by one with scrypt N=1024, r=8, p=1 for the same password.
 * @returns the repository's master key, and a function that puts the original key back.
 */
export function useCheapKey(repoPath: string, password: string): { masterKey: CipherKey; undo: () => void } {
  const keysDir = join(repoPath, 'keys');
  const [name, ...others] = readdirSync(keysDir);
  if (!name || others.length) throw new Error(`expected one key in ${keysDir}`);
  const keyFile = JSON.parse(readFileSync(join(keysDir, name), 'utf8')) as Record<string, unknown> & {
    N: number;
    r: number;
    p: number;
    salt: string;
    data: string;
  };
  const masterKey = open(deriveCipherKey(password, Buffer.from(keyFile.salt, 'base64'), keyFile.N, keyFile.r, keyFile.p), Buffer.from(keyFile.data, 'base64'));
  const salt = randomBytes(64);
  const cheap = { N: 1024, r: 8, p: 1 };
  const data = seal(deriveCipherKey(password, salt, cheap.N, cheap.r, cheap.p), masterKey);
  const content = Buffer.from(JSON.stringify({ ...keyFile, ...cheap, salt: salt.toString('base64'), data: data.toString('base64') }));
  const original = readFileSync(join(keysDir, name));
  const cheapName = createHash('sha256').update(content).digest('hex');
  writeFileSync(join(keysDir, cheapName), content);
  unlinkSync(join(keysDir, name));
  const master = JSON.parse(masterKey.toString('utf8')) as { mac: { k: string; r: string }; encrypt: string };
  return {
    masterKey: { encrypt: Buffer.from(master.encrypt, 'base64'), macK: Buffer.from(master.mac.k, 'base64'), macR: Buffer.from(master.mac.r, 'base64') },
    undo: () => {
      writeFileSync(join(keysDir, name), original);
      unlinkSync(join(keysDir, cheapName));
    },
  };
}

/** `instant` as Go marshals a time in a zone: `2024-10-27T02:30:00+02:00`. */
export function rfc3339InZone(instant: Date, timezone: string): string {
  const wall = wallClockMillis(instant.getTime(), timezone);
  const offsetMinutes = Math.round((wall - Math.floor(instant.getTime() / 1000) * 1000) / 60_000);
  const sign = offsetMinutes < 0 ? '-' : '+';
  const abs = Math.abs(offsetMinutes);
  return `${new Date(wall).toISOString().slice(0, 19)}${sign}${String(Math.floor(abs / 60)).padStart(2, '0')}:${String(abs % 60).padStart(2, '0')}`;
}

/** The wall clock of `timezone` at instant `ms`, as milliseconds of a UTC date with the same fields (whole seconds). */
function wallClockMillis(ms: number, timezone: string): number {
  const f = new Intl.DateTimeFormat('en-US', {
    timeZone: timezone,
    hourCycle: 'h23',
    year: 'numeric',
    month: 'numeric',
    day: 'numeric',
    hour: 'numeric',
    minute: 'numeric',
    second: 'numeric',
  });
  const p = Object.fromEntries(f.formatToParts(new Date(ms)).map((x) => [x.type, x.value]));
  return Date.UTC(Number(p.year), Number(p.month) - 1, Number(p.day), Number(p.hour), Number(p.minute), Number(p.second));
}

/**
 * The instant of wall clock `wall` ("YYYY-MM-DD HH:MM:SS") in `timezone`, resolved the way Go's time.Date (and so
 * `restic backup --time`) resolves it: a wall time skipped or repeated by a DST change takes the offset found by
 * looking up the wall time read as UTC, then looking up again where that lands.
 */
export function zonedWallTime(wall: string, timezone: string): Date {
  const asUtc = Date.parse(`${wall.replace(' ', 'T')}Z`);
  const offset = (ms: number) => wallClockMillis(ms, timezone) - Math.floor(ms / 1000) * 1000;
  return new Date(asUtc - offset(asUtc - offset(asUtc)));
}
