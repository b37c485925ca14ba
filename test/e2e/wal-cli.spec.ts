import { execFileSync, spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { startS3Server } from '../support/s3-server';

/**
 * `dr wal-push` / `dr wal-fetch` as PostgreSQL runs them (the real bin/dr, a real local store, real age and zstd to
 * read the objects back independently). Needs `npm run build` first. Also measures the time per 16 MiB segment,
 * Node start-up included.
 */
const DR = resolve(__dirname, '..', '..', 'bin', 'dr');
const SEGMENT = '000000010000000000000007';

function dr(args: string[], cwd: string): { code: number | null; stderr: string; ms: number } {
  const started = process.hrtime.bigint();
  const result = spawnSync(DR, args, { cwd, encoding: 'utf8', env: { PATH: process.env.PATH, HOME: process.env.HOME } });
  return { code: result.status, stderr: result.stderr, ms: Number(process.hrtime.bigint() - started) / 1e6 };
}

/** A 16 MiB file shaped like a WAL segment after a switch: some random records, then zeros. */
function segmentBytes(randomMiB: number): Buffer {
  const buffer = Buffer.alloc(16 << 20);
  randomBytes(randomMiB << 20).copy(buffer);
  return buffer;
}

describe('dr wal-push / dr wal-fetch (archive_command, restore_command)', () => {
  let dir: string;
  let store: string;
  let config: string;

  beforeAll(() => {
    if (!existsSync(resolve(__dirname, '..', '..', 'dist', 'wal', 'wal-cli.js'))) throw new Error('run `npm run build` first');
    dir = mkdtempSync(join(tmpdir(), 'dr-walcli-'));
    store = join(dir, 'store');
    config = join(dir, 'wal.json');
    mkdirSync(join(dir, 'pg_wal')); // %p is pg_wal/RECOVERYXLOG, relative to the data directory
    writeFileSync(config, JSON.stringify({ archive: 'cli', storage: { kind: 'local', settings: { path: store } } }));
  });
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  it('archives a segment durably and restores it byte for byte; a re-push of the same bytes exits 0', () => {
    const bytes = segmentBytes(4);
    writeFileSync(join(dir, SEGMENT), bytes);
    const pushes = [1, 2, 3].map(() => dr(['wal-push', SEGMENT, '--config', config], dir));
    expect(pushes[0]).toEqual(expect.objectContaining({ code: 0, stderr: '' }));
    const record = JSON.parse(readFileSync(join(store, 'wal', 'cli', '00000001', `${SEGMENT}.json`), 'utf8'));
    expect(record).toEqual(expect.objectContaining({ name: SEGMENT, rawBytes: 16 << 20, storedKey: `wal/cli/00000001/${SEGMENT}.zst`, encrypted: false }));
    // The stored object is a plain zstd frame: zstd -d restores the segment without the service.
    expect(execFileSync('zstd', ['-dc', join(store, record.storedKey)], { maxBuffer: 64 << 20 }).equals(bytes)).toBe(true);
    for (const again of pushes.slice(1)) {
      expect(again.code).toBe(0);
      expect(again.stderr).toContain('already archived with the same sha256');
    }
    const fetches = [1, 2, 3].map((i) => dr(['wal-fetch', SEGMENT, `pg_wal/RECOVERYXLOG${i}`, '--config', config], dir).ms);
    expect(readFileSync(join(dir, 'pg_wal', 'RECOVERYXLOG1')).equals(bytes)).toBe(true);
    process.stdout.write(
      `wal-push 16 MiB segment: ${pushes[0].ms.toFixed(0)} ms (store), ${pushes[1].ms.toFixed(0)} ms (already archived); wal-fetch: ${fetches.map((m) => m.toFixed(0)).join(', ')} ms\n`,
    );
  });

  it('refuses a different segment under an archived name, exit 2, and keeps the archived one', () => {
    const before = readFileSync(join(store, 'wal', 'cli', '00000001', `${SEGMENT}.json`), 'utf8');
    const other = join(dir, 'elsewhere');
    mkdirSync(other);
    writeFileSync(join(other, SEGMENT), segmentBytes(1));
    const result = dr(['wal-push', join(other, SEGMENT), '--config', config], dir);
    expect(result.code).toBe(2);
    expect(result.stderr).toContain('already archived');
    expect(result.stderr).toContain('different content');
    expect(readFileSync(join(store, 'wal', 'cli', '00000001', `${SEGMENT}.json`), 'utf8')).toBe(before);
  });

  it('exits 1 quietly for a file that is not archived (PostgreSQL probes for history files) and writes nothing', () => {
    const result = dr(['wal-fetch', '00000002.history', 'pg_wal/RECOVERYHISTORY', '--config', config], dir);
    expect(result).toEqual(expect.objectContaining({ code: 1, stderr: '' }));
    expect(existsSync(join(dir, 'pg_wal', 'RECOVERYHISTORY'))).toBe(false);
  });

  it('archives .history, .partial and .backup files too; refuses other names and bad usage (exit 64)', () => {
    const files = {
      '00000002.history': '1\t0/5000100\tno recovery target specified\n',
      '000000010000000000000008.partial': segmentBytes(1),
      '000000010000000000000002.00000028.backup': 'START WAL LOCATION: 0/2000028 (file 000000010000000000000002)\n',
    };
    for (const [name, content] of Object.entries(files)) {
      writeFileSync(join(dir, name), content);
      expect(dr(['wal-push', name, '--config', config], dir).code).toBe(0);
      expect(dr(['wal-fetch', name, `pg_wal/${name}.restored`, '--config', config], dir).code).toBe(0);
      expect(readFileSync(join(dir, 'pg_wal', `${name}.restored`)).equals(Buffer.from(content))).toBe(true);
    }
    expect(existsSync(join(store, 'wal', 'cli', '00000002', '00000002.history.zst'))).toBe(true);
    writeFileSync(join(dir, 'postgresql.conf'), 'x');
    const bad = dr(['wal-push', 'postgresql.conf', '--config', config], dir);
    expect(bad.code).toBe(64);
    expect(bad.stderr).toContain('is not a WAL segment');
    expect(dr(['wal-push', SEGMENT], dir).code).toBe(64); // no config
    const env = spawnSync(DR, ['wal-fetch', '00000003.history', 'x'], { cwd: dir, encoding: 'utf8', env: { PATH: process.env.PATH, DR_WAL_CONFIG: config } });
    expect(env.status).toBe(1); // DR_WAL_CONFIG works as --config
    writeFileSync(join(dir, 'broken.json'), JSON.stringify({ archive: '../x', storage: { kind: 'ftp', settings: {} } }));
    const broken = dr(['wal-push', SEGMENT, '--config', join(dir, 'broken.json')], dir);
    expect(broken.code).toBe(64);
    expect(broken.stderr).toMatch(/archive: .*storage\.kind: one of local, s3, azure-blob, gcs/);
  });

  it('fails (exit 2, nothing at the destination) when the stored object is corrupt or its data object is missing', () => {
    const data = join(store, 'wal', 'cli', '00000001', '000000010000000000000008.partial.zst');
    const original = readFileSync(data);
    const corrupt = Buffer.from(original);
    corrupt[Math.floor(corrupt.length / 2)] ^= 0xff;
    writeFileSync(data, corrupt);
    const result = dr(['wal-fetch', '000000010000000000000008.partial', 'pg_wal/corrupt', '--config', config], dir);
    expect(result.code).toBe(2);
    expect(result.stderr).toMatch(/checksum mismatch|not valid zstd/);
    expect(existsSync(join(dir, 'pg_wal', 'corrupt'))).toBe(false);
    rmSync(data);
    const missing = dr(['wal-fetch', '000000010000000000000008.partial', 'pg_wal/missing', '--config', config], dir);
    expect(missing.code).toBe(2);
    expect(missing.stderr).toContain('data object');
  });

  it('encrypts for age recipients on push (age -d | zstd -d reads it) and decrypts with the identity on fetch', () => {
    // DR_DATA_DIR/secrets is where the CLI's allow-list takes files from when DR_SECRET_DIRS is not set (the
    // archiver's working directory is the data directory, so ./data/secrets there)
    mkdirSync(join(dir, 'data', 'secrets'), { recursive: true });
    const keyFile = join(dir, 'data', 'secrets', 'identity.txt');
    execFileSync('age-keygen', ['-o', keyFile], { stdio: 'ignore' });
    const recipient = execFileSync('age-keygen', ['-y', keyFile], { encoding: 'utf8' }).trim();
    const encrypted = join(dir, 'enc.json');
    writeFileSync(
      encrypted,
      JSON.stringify({
        archive: 'enc',
        storage: { kind: 'local', settings: { path: store } },
        encryption: { recipients: [recipient] },
        identitySecret: `file:${keyFile}`,
      }),
    );
    const bytes = segmentBytes(2);
    writeFileSync(join(dir, '000000010000000000000009'), bytes);
    const push = dr(['wal-push', '000000010000000000000009', '--config', encrypted], dir);
    expect(push.code).toBe(0);
    const object = join(store, 'wal', 'enc', '00000001', '000000010000000000000009.zst.age');
    expect(readFileSync(object).subarray(0, 21).toString()).toBe('age-encryption.org/v1');
    const plain = execFileSync('sh', ['-c', `age -d -i '${keyFile}' '${object}' | zstd -dc`], { maxBuffer: 64 << 20 });
    expect(plain.equals(bytes)).toBe(true);
    const fetch = dr(['wal-fetch', '000000010000000000000009', 'pg_wal/enc', '--config', encrypted], dir);
    expect(fetch.code).toBe(0);
    expect(readFileSync(join(dir, 'pg_wal', 'enc')).equals(bytes)).toBe(true);
    process.stdout.write(`encrypted: wal-push ${push.ms.toFixed(0)} ms, wal-fetch ${fetch.ms.toFixed(0)} ms\n`);
  });

  it('works against S3 too (an s3rver process; secret references resolved from the archiver environment)', async () => {
    const server = await startS3Server('dr-wal');
    try {
      const s3Config = join(dir, 's3.json');
      writeFileSync(
        s3Config,
        JSON.stringify({
          archive: 's3',
          storage: {
            kind: 's3',
            settings: {
              bucket: server.bucket,
              endpoint: server.endpoint,
              forcePathStyle: true,
              region: 'us-east-1',
              accessKeyIdSecret: 'env:DRS_WAL_S3_KEY',
              secretAccessKeySecret: 'env:DRS_WAL_S3_SECRET',
            },
          },
        }),
      );
      const env = { PATH: process.env.PATH, DRS_WAL_S3_KEY: 'S3RVER', DRS_WAL_S3_SECRET: 'S3RVER' };
      const run = (args: string[]) => {
        const started = process.hrtime.bigint();
        const r = spawnSync(DR, args, { cwd: dir, encoding: 'utf8', env });
        return { code: r.status, stderr: r.stderr, ms: Number(process.hrtime.bigint() - started) / 1e6 };
      };
      const bytes = segmentBytes(2);
      writeFileSync(join(dir, '00000001000000000000000A'), bytes);
      const push = run(['wal-push', '00000001000000000000000A', '--config', s3Config]);
      expect(push).toEqual(expect.objectContaining({ code: 0, stderr: '' }));
      expect(run(['wal-push', '00000001000000000000000A', '--config', s3Config]).code).toBe(0);
      const fetch = run(['wal-fetch', '00000001000000000000000A', 'pg_wal/s3', '--config', s3Config]);
      expect(fetch.code).toBe(0);
      expect(readFileSync(join(dir, 'pg_wal', 's3')).equals(bytes)).toBe(true);
      expect(run(['wal-fetch', '00000005.history', 'pg_wal/none', '--config', s3Config])).toEqual(expect.objectContaining({ code: 1, stderr: '' }));
      const noSecret = spawnSync(DR, ['wal-push', '00000001000000000000000A', '--config', s3Config], {
        cwd: dir,
        encoding: 'utf8',
        env: { PATH: process.env.PATH },
      });
      expect(noSecret.status).toBe(2);
      expect(noSecret.stderr).toContain('DRS_WAL_S3_KEY is not set');
      process.stdout.write(`S3 (s3rver): wal-push ${push.ms.toFixed(0)} ms, wal-fetch ${fetch.ms.toFixed(0)} ms\n`);
    } finally {
      await server.close();
    }
  }, 60_000);
});
