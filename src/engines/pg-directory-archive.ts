import { open, readFile, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { BufferInput, NeedMoreBytes } from './pg-dump-digest';
import {
  ARCH_CUSTOM,
  BLK_BLOBS,
  BLK_DATA,
  corrupt,
  HEADER_FORMAT_BYTE,
  INT_MAX,
  K_OFFSET_NO_DATA,
  K_OFFSET_POS_NOT_SET,
  readDirectoryPrologue,
  TocEntry,
  UnsupportedArchiveError,
} from './pg-custom-archive';

/*
 * Turns a pg_dump directory-format archive ("-Fd", written in parallel with --jobs) into the custom-format archive
 * ("-Fc") pg_dump would have written to a pipe, as a stream. Both formats come from the same archiver
 * (PostgreSQL src/bin/pg_dump/pg_backup_archiver.c) and differ only where its format modules differ:
 *
 *   header  the same (WriteHead), but for the format byte: archTar in a toc.dat (pg_backup_directory.c,
 *           _CloseArchive), archCustom in a custom archive.
 *   TOC     the same entries (WriteToc); the format's extra field after each one (_WriteExtraToc) is the data file's
 *           name in toc.dat ('' for no data) and the data offset in a custom archive: here K_OFFSET_POS_NOT_SET
 *           (has data) or K_OFFSET_NO_DATA, as pg_dump writes it to a pipe (no seeking back).
 *   data    one file per TOC entry in the directory (`<dumpId>.dat`; large objects: `blobs.toc` / `blobs_<id>.toc`
 *           listing `<oid> blob_<oid>.dat` per line); in the custom archive a block per entry, in TOC order:
 *             BLK_DATA, int dumpId, then each WriteData() call as a chunk (int length + bytes), ended by an int 0;
 *             BLK_BLOBS, int dumpId, then per large object int oid + chunks + int 0, ended by an int oid 0
 *           (_StartData/_EndData, _StartLOs/_StartLO/_EndLO/_EndLOs, _CustomWriteFunc of pg_backup_custom.c).
 *
 * The chunks are cut where pg_dump's WriteData() calls were, so the result is byte for byte what `pg_dump -Fc -Z0`
 * writes to a pipe for the same snapshot, and its table digests (src/engines/pg-dump-digest.ts) equal those of
 * such a dump: dumpTableData_copy (pg_dump.c) calls WriteData once per COPY row (a COPY text row is one line: its
 * newlines are escaped) and once for the end-of-data marker "\.\n\n\n" (no COPY text row starts with an unescaped
 * `\.`); dumpLOs calls it per lo_read() of LOBBUFSIZE (16 KiB) bytes.
 *
 * Only uncompressed directory archives (pg_dump --compress=0: `.dat` files) are converted.
 */

/** LOBBUFSIZE of pg_backup_archiver.h: bytes per lo_read() in dumpLOs, so per chunk of a large object. */
const LOBBUFSIZE = 16384;
/** Bytes per read of a data file. A multiple of LOBBUFSIZE. */
const READ_BYTES = 1 << 20;
/** A toc.dat larger than this is refused (it is read whole; pg_restore holds the whole TOC in memory too). */
export const MAX_TOC_BYTES = 256 << 20;

const DATA_FILE = /^[0-9]+\.dat$/;
const BLOBS_TOC = /^blobs(?:_[0-9]+)?\.toc$/;
const BLOB_LINE = /^([0-9]+) (blob_[0-9]+\.dat)$/;

/**
 * The custom-format archive (see the comment at the top of this file) of the uncompressed directory archive in
 * `dir`, as chunks of up to about 1 MiB (`Readable.from` makes it a byte stream). Memory: the TOC, one 1 MiB read,
 * and the longest COPY row when it spans reads.
 * @throws UnsupportedArchiveError when toc.dat does not parse (format versions 1.12–1.16 are read) or names a data
 *   file this does not convert (a compressed one), an Error when a data file is missing.
 */
export async function* customArchiveChunks(dir: string): AsyncGenerator<Buffer> {
  const tocPath = join(dir, 'toc.dat');
  const size = (await stat(tocPath)).size;
  if (size > MAX_TOC_BYTES) throw new UnsupportedArchiveError(`toc.dat is ${size} bytes, over ${MAX_TOC_BYTES}`);
  const tocBytes = await readFile(tocPath);
  const input = new BufferInput(tocBytes);
  let header: { intSize: number; offSize: number };
  let toc: TocEntry[];
  try {
    ({ header, toc } = await readDirectoryPrologue(input));
  } catch (error) {
    if (error instanceof NeedMoreBytes) throw new UnsupportedArchiveError('truncated toc.dat');
    throw error;
  }
  if (input.position !== tocBytes.length) throw corrupt(`${tocBytes.length - input.position} bytes after the TOC of toc.dat`, input.position);
  const { intSize, offSize } = header;

  // header and TOC: each entry's file name replaced by its data offset, unset (as written to a pipe)
  const parts: Buffer[] = [];
  let from = 0;
  for (const te of toc) {
    parts.push(tocBytes.subarray(from, te.offsetFieldPos));
    const offset = Buffer.alloc(1 + offSize);
    offset[0] = te.filename ? K_OFFSET_POS_NOT_SET : K_OFFSET_NO_DATA;
    parts.push(offset);
    from = te.extraEnd;
  }
  parts.push(tocBytes.subarray(from));
  const prologue = Buffer.concat(parts);
  prologue[HEADER_FORMAT_BYTE] = ARCH_CUSTOM;
  yield prologue;

  for (const te of toc) {
    if (!te.filename) continue;
    if (DATA_FILE.test(te.filename)) {
      yield blockStart(BLK_DATA, te.dumpId, intSize);
      yield* rowChunks(join(dir, te.filename), intSize);
      yield encodeInt(0, intSize);
    } else if (BLOBS_TOC.test(te.filename)) {
      yield blockStart(BLK_BLOBS, te.dumpId, intSize);
      for (const line of (await readFile(join(dir, te.filename), 'latin1')).split('\n')) {
        if (line === '') continue;
        const blob = BLOB_LINE.exec(line);
        if (!blob || Number(blob[1]) === 0 || Number(blob[1]) > 0xffffffff)
          throw new UnsupportedArchiveError(`unexpected line in ${te.filename}: ${JSON.stringify(line.slice(0, 80))}`);
        yield encodeInt(Number(blob[1]), intSize);
        yield* fixedChunks(join(dir, blob[2]), intSize);
        yield encodeInt(0, intSize);
      }
      yield encodeInt(0, intSize);
    } else {
      throw new UnsupportedArchiveError(`TOC entry ${te.dumpId} (${te.desc}) has data file ${JSON.stringify(te.filename)}, not an uncompressed .dat file`);
    }
  }
}

/** A data block's start: its type byte and the entry's dumpId. */
function blockStart(type: number, dumpId: number, intSize: number): Buffer {
  return Buffer.concat([Buffer.of(type), encodeInt(dumpId, intSize)]);
}

/** WriteInt(): a sign byte, then intSize bytes of magnitude, least significant first (non-negative values here). */
export function encodeInt(value: number, intSize: number): Buffer {
  const out = Buffer.alloc(1 + intSize);
  writeInt(out, 1, value, intSize);
  return out;
}

/** Writes the magnitude of a WriteInt() at `at` (the sign byte before it is left as is: 0). */
function writeInt(out: Buffer, at: number, value: number, intSize: number): void {
  if (intSize === 4) {
    out.writeUInt32LE(value, at);
    return;
  }
  let rest = value;
  for (let i = 0; i < intSize; i++) {
    out[at + i] = rest % 256;
    rest = Math.floor(rest / 256);
  }
}

/**
 * A table's COPY data file as chunks: one per row (a line), then the rest of the file from the end-of-data marker
 * (a line starting with `\.`) as one chunk. A row longer than INT_MAX cannot have been written by pg_dump.
 */
async function* rowChunks(path: string, intSize: number): AsyncGenerator<Buffer> {
  const head = 1 + intSize;
  const handle = await open(path, 'r');
  try {
    let carry: Buffer | null = null;
    let marker: Buffer[] | null = null;
    let ends = new Int32Array(0);
    for (;;) {
      const read = Buffer.allocUnsafe(READ_BYTES);
      const { bytesRead } = await handle.read(read, 0, READ_BYTES, null);
      if (bytesRead === 0) break;
      const piece = read.subarray(0, bytesRead);
      if (marker) {
        marker.push(piece);
        continue;
      }
      const buf: Buffer = carry ? Buffer.concat([carry, piece]) : piece;
      carry = null;
      if (ends.length < buf.length) ends = new Int32Array(Math.max(buf.length, READ_BYTES));
      let pos = 0;
      let rows = 0;
      let markerAt = -1;
      while (pos < buf.length) {
        if (buf[pos] === 0x5c && pos + 1 < buf.length && buf[pos + 1] === 0x2e) {
          markerAt = pos;
          break;
        }
        const newline = buf.indexOf(10, pos);
        if (newline < 0) break;
        pos = newline + 1;
        ends[rows++] = pos;
      }
      if (rows > 0) {
        const out = Buffer.allocUnsafe(pos + rows * head);
        let start = 0;
        let at = 0;
        for (let i = 0; i < rows; i++) {
          const end = ends[i];
          const length = end - start;
          if (length > INT_MAX) throw new UnsupportedArchiveError(`a row of ${path} is over ${INT_MAX} bytes`);
          out[at] = 0;
          writeInt(out, at + 1, length, intSize);
          buf.copy(out, at + head, start, end);
          at += head + length;
          start = end;
        }
        yield out;
      }
      if (markerAt >= 0) marker = [buf.subarray(markerAt)];
      else if (pos < buf.length) carry = Buffer.from(buf.subarray(pos));
    }
    const rest = marker ? Buffer.concat(marker) : carry;
    if (rest && rest.length > 0) {
      const out = Buffer.allocUnsafe(head);
      out[0] = 0;
      writeInt(out, 1, rest.length, intSize);
      yield Buffer.concat([out, rest]);
    }
  } finally {
    await handle.close();
  }
}

/** A large object's file as chunks of LOBBUFSIZE bytes (the last one shorter), as dumpLOs wrote them. */
async function* fixedChunks(path: string, intSize: number): AsyncGenerator<Buffer> {
  const head = 1 + intSize;
  const handle = await open(path, 'r');
  try {
    let carry = Buffer.alloc(0);
    for (;;) {
      const read = Buffer.allocUnsafe(READ_BYTES);
      const { bytesRead } = await handle.read(read, 0, READ_BYTES, null);
      const buf = carry.length ? Buffer.concat([carry, read.subarray(0, bytesRead)]) : read.subarray(0, bytesRead);
      const last = bytesRead === 0;
      const whole = last ? Math.ceil(buf.length / LOBBUFSIZE) : Math.floor(buf.length / LOBBUFSIZE);
      if (whole > 0) {
        const take = last ? buf.length : whole * LOBBUFSIZE;
        const out = Buffer.allocUnsafe(take + whole * head);
        let at = 0;
        for (let start = 0; start < take; start += LOBBUFSIZE) {
          const length = Math.min(LOBBUFSIZE, take - start);
          out[at] = 0;
          writeInt(out, at + 1, length, intSize);
          buf.copy(out, at + head, start, start + length);
          at += head + length;
        }
        yield out;
        carry = Buffer.from(buf.subarray(take));
      } else carry = Buffer.from(buf);
      if (last) return;
    }
  } finally {
    await handle.close();
  }
}
