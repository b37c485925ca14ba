import { execFile, spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import { createWriteStream, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pipeline } from 'node:stream/promises';
import { promisify } from 'node:util';
import { addDataOffsets, UnsupportedArchiveError } from '../../src/engines/pg-custom-archive';
import { createDatabase, databaseUrl, dropDatabase, sql, tableChecksums } from '../support/database';

const run = promisify(execFile);

/** Runs a PostgreSQL client tool and returns its stdout. */
async function tool(name: string, args: string[]): Promise<string> {
  return (await run(name, args, { maxBuffer: 256 << 20 })).stdout;
}

/** pg_dump into `file` through a pipe (non-seekable stdout), the way the service streams its backups. */
async function dumpThroughPipe(database: string, file: string, extra: string[] = []): Promise<void> {
  const proc = spawn('pg_dump', ['--format=custom', ...extra, `--dbname=${databaseUrl(database)}`], {
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let stderr = '';
  proc.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
  const exited = new Promise<number | null>((resolve) => proc.on('close', resolve));
  await pipeline(proc.stdout, createWriteStream(file));
  const code = await exited;
  if (code !== 0) throw new Error(`pg_dump exited ${code}: ${stderr}`);
}

const sha256 = (file: string): string => createHash('sha256').update(readFileSync(file)).digest('hex');

/** `pg_restore -l` of a file: the summary's entry count and version, and the listed data entries' dumpIds. */
async function listing(file: string): Promise<{ tocEntries: number; version: string; data: Map<number, string> }> {
  const out = await tool('pg_restore', ['-l', file]);
  const data = new Map<number, string>();
  for (const line of out.split('\n')) {
    const m = /^(\d+); \d+ \d+ (TABLE DATA|BLOBS) /.exec(line);
    if (m) data.set(Number(m[1]), m[2]);
  }
  return {
    tocEntries: Number(/^;\s+TOC Entries: (\d+)$/m.exec(out)![1]),
    version: /^;\s+Dump Version: (\S+)$/m.exec(out)![1],
    data,
  };
}

/** Data offset of every TOC entry as PostgreSQL's own reader sees it ("-- Data Pos:" of pg_restore --verbose). */
async function dataPositions(file: string): Promise<Map<number, number>> {
  const out = await tool('pg_restore', ['--verbose', '--data-only', '--file=-', file]);
  const positions = new Map<number, number>();
  let current = 0;
  for (const line of out.split('\n')) {
    const entry = /^-- TOC entry (\d+) /.exec(line);
    if (entry) current = Number(entry[1]);
    const pos = /^-- Data Pos: (\d+)$/.exec(line);
    if (pos) positions.set(current, Number(pos[1]));
  }
  return positions;
}

/** Header facts needed by the checks (ReadHead, pg_backup_archiver.c): intSize, and the byte range of the
 *  creation timestamp (7 WriteInts after the compression byte (>= 1.15) or compression-level int). */
function headerLayout(bytes: Buffer): { intSize: number; timestampStart: number; timestampEnd: number } {
  const minor = bytes[6];
  const intSize = bytes[8];
  const timestampStart = 11 + (minor >= 15 ? 1 : 1 + intSize);
  return { intSize, timestampStart, timestampEnd: timestampStart + 7 * (1 + intSize) };
}

describe('addDataOffsets (real pg_dump / pg_restore)', () => {
  const dir = mkdtempSync(join(tmpdir(), 'dr-pgarchive-'));
  const piped = join(dir, 'piped.pgdump');
  const databases: string[] = [];
  let source: string;
  let loMd5: string;

  beforeAll(async () => {
    source = await createDatabase('aoff_src');
    databases.push(source);
    await sql(
      source,
      `CREATE TABLE big (id int PRIMARY KEY, label text NOT NULL, amount numeric);
       INSERT INTO big SELECT g, 'label ' || (g % 977), g * 1.25 FROM generate_series(1, 100000) g;
       CREATE INDEX big_label_idx ON big (label);
       CREATE TABLE empty_t (id int, note text);
       CREATE TABLE small (k text PRIMARY KEY, v jsonb);
       INSERT INTO small VALUES ('a', '{"x": 1}'), ('b', NULL), ('tab', '"a\\tb"');
       CREATE TABLE docs (id int PRIMARY KEY, content oid NOT NULL);
       INSERT INTO docs SELECT 1, lo_from_bytea(0, decode(string_agg(md5(g::text), '' ORDER BY g), 'hex'))
         FROM generate_series(1, 5000) g;
       CREATE SEQUENCE counter START 42;
       CREATE VIEW big_view AS SELECT id, label FROM big WHERE id < 10;`,
    );
    [{ md5: loMd5 }] = await sql<{ md5: string }>(source, 'SELECT md5(lo_get(content)) AS md5 FROM docs');
    await dumpThroughPipe(source, piped, ['--compress=0']);
  });

  afterAll(async () => {
    for (const db of databases) await dropDatabase(db);
    rmSync(dir, { recursive: true, force: true });
  });

  it('fills in the offsets a piped dump lacks, each pointing at its own data block', async () => {
    const before = await listing(piped);
    expect(before.data.size).toBe(5); // big, empty_t, small, docs, BLOBS
    const positionsBefore = await dataPositions(piped);
    for (const dumpId of before.data.keys()) expect(positionsBefore.get(dumpId)).toBe(0); // K_OFFSET_POS_NOT_SET
    const size = statSync(piped).size;

    const result = await addDataOffsets(piped);

    expect(result).toEqual({ archiveVersion: before.version, tocEntries: before.tocEntries, dataBlocks: 5, patched: 5 });
    expect(result.archiveVersion).toMatch(/^1\.1[2-6]-\d+$/);
    expect(statSync(piped).size).toBe(size);
    const bytes = readFileSync(piped);
    const { intSize } = headerLayout(bytes);
    const positions = await dataPositions(piped);
    for (const [dumpId, desc] of before.data) {
      const pos = positions.get(dumpId)!;
      expect(pos).toBeGreaterThan(0);
      // _readBlockHeader: block type byte, then WriteInt(dumpId): sign byte 0 + intSize bytes little-endian.
      expect(bytes[pos]).toBe(desc === 'BLOBS' ? 3 : 1);
      expect(bytes[pos + 1]).toBe(0);
      expect(bytes.readUIntLE(pos + 2, intSize)).toBe(dumpId);
    }
  });

  it('then equals, byte for byte, a dump written to a seekable file (creation timestamp aside)', async () => {
    const seekable = join(dir, 'seekable.pgdump');
    await tool('pg_dump', ['--format=custom', '--compress=0', `--file=${seekable}`, `--dbname=${databaseUrl(source)}`]);
    const patched = readFileSync(piped);
    const direct = readFileSync(seekable);
    const { timestampStart, timestampEnd } = headerLayout(direct);
    direct.copy(patched, timestampStart, timestampStart, timestampEnd);
    expect(patched.length).toBe(direct.length);
    expect(patched.equals(direct)).toBe(true);

    // Archives that already have offsets are left alone: the seekable dump, and the piped one once patched.
    for (const file of [seekable, piped]) {
      const hash = sha256(file);
      expect(await addDataOffsets(file)).toMatchObject({ dataBlocks: 5, patched: 0 });
      expect(sha256(file)).toBe(hash);
    }
  });

  it('restores with --jobs=2 to the same tables, index and large object', async () => {
    const target = await createDatabase('aoff_dst');
    databases.push(target);
    await tool('pg_restore', ['--jobs=2', '--exit-on-error', `--dbname=${databaseUrl(target)}`, piped]);
    expect(await tableChecksums(target)).toEqual(await tableChecksums(source));
    const [{ md5 }] = await sql<{ md5: string }>(target, 'SELECT md5(lo_get(content)) AS md5 FROM docs');
    expect(md5).toBe(loMd5);
    const indexes = await sql<{ indexname: string }>(target, `SELECT indexname FROM pg_indexes WHERE tablename = 'big' ORDER BY 1`);
    expect(indexes.map((i) => i.indexname)).toEqual(['big_label_idx', 'big_pkey']);
    const [{ nextval }] = await sql<{ nextval: string }>(target, `SELECT nextval('counter')`);
    expect(nextval).toBe('42');
  });

  it('patches a compressed piped dump too (chunk framing does not depend on compression)', async () => {
    const gz = join(dir, 'gzip.pgdump');
    await dumpThroughPipe(source, gz, ['--compress=6']);
    const { data } = await listing(gz);
    expect(await addDataOffsets(gz)).toMatchObject({ dataBlocks: 5, patched: 5 });
    const bytes = readFileSync(gz);
    const positions = await dataPositions(gz);
    for (const dumpId of data.keys()) {
      const pos = positions.get(dumpId)!;
      expect([bytes[pos], bytes.readUIntLE(pos + 2, headerLayout(bytes).intSize)]).toEqual([data.get(dumpId) === 'BLOBS' ? 3 : 1, dumpId]);
    }
  });

  it('refuses what it cannot parse and leaves the file unchanged', async () => {
    await dumpThroughPipe(source, join(dir, 'fresh.pgdump'), ['--compress=0']);
    const fresh = readFileSync(join(dir, 'fresh.pgdump'));
    const firstBlock = (await dataPositionsAfterPatchOf(fresh)).firstBlock;
    const withByte = (buf: Buffer, at: number, value: number): Buffer => {
      const copy = Buffer.from(buf);
      copy[at] = value;
      return copy;
    };
    const cases: [string, Buffer, RegExp][] = [
      ['text', Buffer.from('--\n-- PostgreSQL database dump\n--\n\nSET statement_timeout = 0;\n'), /no "PGDMP" magic/],
      ['short', Buffer.from('PGD'), /shorter than its magic/],
      ['empty', Buffer.alloc(0), /shorter than its magic/],
      ['future version', withByte(fresh, 6, 17), /version 1\.17-0 is not supported/],
      ['old version', withByte(fresh, 6, 11), /version 1\.11-0 is not supported/],
      ['directory toc.dat', withByte(fresh, 10, 5), /format 5/],
      ['cut in the TOC', fresh.subarray(0, 400), /truncated/],
      ['cut in the data', fresh.subarray(0, Math.floor(fresh.length * 0.6)), /truncated/],
      ['cut in a block header', fresh.subarray(0, firstBlock + 3), /truncated/],
      ['bad block type', withByte(fresh, firstBlock, 7), /unrecognized data block type 7/],
      ['unknown block id', withByte(fresh, firstBlock + 5, 0x7f), /not in the TOC/], // top byte of the dumpId
    ];
    for (const [name, content, message] of cases) {
      const file = join(dir, `bad-${name.replace(/ /g, '-')}`);
      writeFileSync(file, content);
      const error = await addDataOffsets(file).then(
        () => new Error(`${name}: accepted`),
        (e: unknown) => e,
      );
      expect([name, error]).toEqual([name, expect.any(UnsupportedArchiveError)]);
      expect([name, (error as Error).message]).toEqual([name, expect.stringMatching(message)]);
      expect([name, readFileSync(file).equals(content)]).toEqual([name, true]);
    }
    // I/O errors are not format errors.
    await expect(addDataOffsets(join(dir, 'missing.pgdump'))).rejects.toMatchObject({ code: 'ENOENT' });
  });

  /** Position of the first data block of an unpatched archive, found by patching a copy. */
  async function dataPositionsAfterPatchOf(archive: Buffer): Promise<{ firstBlock: number }> {
    const copy = join(dir, 'probe.pgdump');
    writeFileSync(copy, archive);
    await addDataOffsets(copy);
    const positions = [...(await dataPositions(copy)).values()].filter((p) => p > 0);
    return { firstBlock: Math.min(...positions) };
  }
});
