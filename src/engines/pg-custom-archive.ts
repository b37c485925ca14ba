import { FileHandle, open } from 'node:fs/promises';

/*
 * Reader/patcher for the data offsets of a pg_dump custom-format archive ("-Fc").
 *
 * Layout, as written by pg_dump and read by pg_restore (PostgreSQL src/bin/pg_dump/):
 *
 *   header      ReadHead() / WriteHead() in pg_backup_archiver.c
 *   TOC         ReadToc() / WriteToc() in pg_backup_archiver.c; after each entry the custom format's extra field,
 *               _ReadExtraToc() / _WriteExtraToc() in pg_backup_custom.c: the entry's data offset (ReadOffset/WriteOffset)
 *   data blocks _StartData/_EndData, _StartLOs/_StartLO/_EndLO/_EndLOs, _CustomWriteFunc in pg_backup_custom.c,
 *               read back by _readBlockHeader/_skipData/_skipLOs (and _LoadLOs) there
 *
 * pg_dump first writes the TOC with every data entry's offset flagged K_OFFSET_POS_NOT_SET, then the data blocks,
 * and only when its output is seekable does it seek back and rewrite the TOC with the offsets (_CloseArchive in
 * pg_backup_custom.c). Written to a pipe, the offsets stay unset and pg_restore --jobs has to skip through the data
 * chunk by chunk (_PrintTocData), one lseek per chunk. This module does what that seek-back would have done.
 */

/** MAKE_ARCHIVE_VERSION(major, minor, rev) of pg_backup_archiver.h: ((major * 256) + minor) * 256 + rev. */
function archiveVersion(major: number, minor: number, rev = 0): number {
  return (major * 256 + minor) * 256 + rev;
}

/* Archive format versions (pg_backup_archiver.h). Everything a version before 1.12 added is always present here:
 * sign byte of ints (> 1.0), copyStmt (1.3), date and database name in the header (1.4), dependencies (1.5),
 * namespace (1.6), offSize in the header and flag-byte offsets (1.7), tableoid (1.8), withOids string (1.9),
 * tablespace and server/pg_dump version strings in the header (1.10), section (1.11). */
const K_VERS_1_12 = archiveVersion(1, 12); // separate BLOB entries (PostgreSQL 9.0); no layout change
// 1.13: search_path behaviour (2018 CVE-2018-1058 fix, back-patched); no layout change
const K_VERS_1_14 = archiveVersion(1, 14); // TOC entry gains tableam (PostgreSQL 12)
const K_VERS_1_15 = archiveVersion(1, 15); // header: compression algorithm byte replaces the int level (PostgreSQL 16)
const K_VERS_1_16 = archiveVersion(1, 16); // TOC entry gains relkind; BLOB METADATA / several BLOBS entries (PostgreSQL 17)
/** Newest version understood: like K_VERS_MAX, any revision of the newest minor. */
const NEWEST_KNOWN = archiveVersion(1, 16, 255);

/** ArchiveFormat archCustom (pg_backup.h). */
export const ARCH_CUSTOM = 1;
/**
 * ArchiveFormat archTar (pg_backup.h): what a directory archive's toc.dat carries in its header (_CloseArchive of
 * pg_backup_directory.c writes archTar there, "the directory is compatible with tar").
 */
export const ARCH_TAR = 3;
/** ArchiveFormat archDirectory (pg_backup.h), accepted in a toc.dat header too. */
const ARCH_DIRECTORY = 5;

/** Position of the format byte in the header: "PGDMP", major, minor, revision, intSize, offSize, format. */
export const HEADER_FORMAT_BYTE = 10;

/* Data offset flags (pg_backup_archiver.h). */
export const K_OFFSET_POS_NOT_SET = 1;
const K_OFFSET_POS_SET = 2;
export const K_OFFSET_NO_DATA = 3;

/* Data block types (pg_backup_archiver.h). BLK_BLOB (2) was never written by the custom format. */
export const BLK_DATA = 1;
export const BLK_BLOBS = 3;

/** C `int` limit: ReadInt returns an int, so a length or count above it cannot have been written by pg_dump. */
export const INT_MAX = 0x7fffffff;

/** Bytes per read of the archive. */
const READ_BUFFER_BYTES = 1 << 20;

/** Result of {@link addDataOffsets}. */
export interface DataOffsetsResult {
  /** Archive format version as pg_restore -l prints it ("Dump Version"): `major.minor-rev`, e.g. "1.14-0". */
  archiveVersion: string;
  /** Number of TOC entries (the TOC's entry count, as read by ReadToc). */
  tocEntries: number;
  /** Number of data blocks (BLK_DATA and BLK_BLOBS) found in the data area after the TOC. */
  dataBlocks: number;
  /** Number of TOC entries whose offset was changed from K_OFFSET_POS_NOT_SET to K_OFFSET_POS_SET; 0 when the
   *  archive already had offsets (then the file is left untouched). */
  patched: number;
}

/**
 * The file is not a pg_dump custom-format archive this module can patch: no "PGDMP" magic, another archive format
 * (directory toc.dat, tar), a format version outside 1.12–1.16, or a structure that does not parse (truncated or
 * corrupt). The file has not been modified; restore without --jobs (pg_restore then reports its own diagnosis).
 */
export class UnsupportedArchiveError extends Error {
  override readonly name = 'UnsupportedArchiveError';
}

/** One TOC entry, as much of it as this module needs. */
export interface TocEntry {
  dumpId: number;
  /** Object type, e.g. `TABLE DATA`, `BLOBS`, `SEQUENCE SET`. */
  desc: string;
  /** Object name, e.g. the table's name. */
  tag: string;
  /** Schema of the object ('' when none). */
  namespace: string;
  /** K_OFFSET_POS_NOT_SET, K_OFFSET_POS_SET or K_OFFSET_NO_DATA. */
  offsetFlag: number;
  /** File position (bytes from the start of the file) of the offset's flag byte (custom), of the file name (directory). */
  offsetFieldPos: number;
  /** Directory archives: the entry's data file (`3344.dat`, `blobs.toc`), '' when it has no data. */
  filename?: string;
  /** Position just after the format-specific extra field (the offset, or the directory's file name). */
  extraEnd: number;
}

/** The header fields this module needs. */
export interface ArchiveHeader {
  /** MAKE_ARCHIVE_VERSION value. */
  version: number;
  versionText: string;
  /** Bytes of an int's magnitude (WriteInt writes 1 sign byte + intSize bytes). */
  intSize: number;
  /** Bytes of an offset (WriteOffset writes 1 flag byte + offSize bytes). */
  offSize: number;
}

/**
 * Fills in the data offsets of a pg_dump custom-format archive written to a non-seekable output, in place, so that
 * pg_restore --jobs can seek straight to each table's data (as if pg_dump had written to a file).
 *
 * Parses the header and the whole TOC as ReadHead/ReadToc (pg_backup_archiver.c) and _ReadExtraToc
 * (pg_backup_custom.c) do for archive versions 1.12 to 1.16 (pg_dump of PostgreSQL 9.0 to 17, any compression),
 * then walks the data blocks as _readBlockHeader/_skipData/_skipLOs (pg_backup_custom.c) do, recording the file
 * position (in bytes from the start of the file) of each block's type byte. Every TOC entry flagged
 * K_OFFSET_POS_NOT_SET that has a block then gets flag K_OFFSET_POS_SET and that position, written over its offset
 * field in place (1 flag byte + offSize bytes, little-endian, as WriteOffset writes them); the file's size does not
 * change. Nothing is written before the whole file has been parsed and checked. If any TOC entry already has
 * K_OFFSET_POS_SET (pg_dump wrote to a file), the file is left untouched and `patched` is 0. Not fsync'ed.
 *
 * Reads the file sequentially in 1 MiB reads; a chunk larger than what is buffered is skipped without reading it.
 *
 * @param path archive file, readable and writable.
 * @throws UnsupportedArchiveError when the file is not a custom-format archive or has a format version it does not
 *   know (the caller then restores without --jobs), or does not parse (truncated, corrupt); the file is unchanged.
 *   I/O errors are thrown as they come (a failed write may leave some offsets written, each one complete and right).
 */
export async function addDataOffsets(path: string): Promise<DataOffsetsResult> {
  const handle = await open(path, 'r+');
  try {
    const size = (await handle.stat()).size;
    const reader = new ArchiveReader(handle, size);
    const { header, toc } = await readPrologue(reader);
    const blocks = await scanDataBlocks(reader, toc);

    const base = { archiveVersion: header.versionText, tocEntries: toc.length, dataBlocks: blocks.size };
    if (toc.some((te) => te.offsetFlag === K_OFFSET_POS_SET)) return { ...base, patched: 0 };

    const byDumpId = new Map(toc.map((te) => [te.dumpId, te]));
    const writes: { position: number; bytes: Buffer }[] = [];
    for (const [dumpId, blockPos] of blocks) {
      const te = byDumpId.get(dumpId)!; // scanDataBlocks checked that every block has its entry
      if (te.offsetFlag !== K_OFFSET_POS_NOT_SET) continue;
      writes.push({ position: te.offsetFieldPos, bytes: encodeOffset(blockPos, header.offSize) });
    }
    for (const { position, bytes } of writes) {
      const { bytesWritten } = await handle.write(bytes, 0, bytes.length, position);
      if (bytesWritten !== bytes.length) throw new Error(`short write at byte ${position} of ${path}`);
    }
    return { ...base, patched: writes.length };
  } finally {
    await handle.close();
  }
}

/** WriteOffset(): flag byte K_OFFSET_POS_SET, then the position in offSize bytes, least significant first. */
function encodeOffset(position: number, offSize: number): Buffer {
  const bytes = Buffer.alloc(1 + offSize);
  bytes[0] = K_OFFSET_POS_SET;
  let rest = position;
  for (let i = 1; i <= offSize; i++) {
    bytes[i] = rest % 256;
    rest = Math.floor(rest / 256);
  }
  if (rest !== 0 || (offSize >= 8 && position > Number.MAX_SAFE_INTEGER)) {
    throw new UnsupportedArchiveError(`data offset ${position} does not fit the archive's ${offSize}-byte offsets`);
  }
  return bytes;
}

/**
 * What the parsers read from: a file ({@link ArchiveReader}) or bytes held in memory. `need` makes `n` bytes
 * available (or throws); the rest decode synchronously from them.
 */
export interface ArchiveInput {
  /** Bytes of an int's magnitude; set from the header. */
  intSize: number;
  /** Position (bytes from the start of the archive) of the next byte. */
  readonly position: number;
  /** Total size in bytes, when known (a file); unknown for a stream. */
  readonly size?: number;
  need(n: number, what: string): Promise<void>;
  byte(): number;
  int(): number;
  readInt(what: string): Promise<number>;
  readStr(what: string, keep: boolean): Promise<string | null>;
  take(n: number): Buffer;
  skip(n: number): void;
}

/**
 * Reads the header and the TOC (ReadHead, ReadToc), leaving `input` at the first data block.
 * @throws UnsupportedArchiveError (not a custom archive, unknown version, corrupt), or whatever `input.need` throws.
 */
export async function readPrologue(input: ArchiveInput): Promise<{ header: ArchiveHeader; toc: TocEntry[] }> {
  const header = await readHeader(input, 'custom');
  input.intSize = header.intSize;
  return { header, toc: await readToc(input, header, 'custom') };
}

/**
 * Reads the header and the TOC of a directory archive's `toc.dat` (ReadHead, ReadToc, and _ReadExtraToc of
 * pg_backup_directory.c: each entry's data file name), leaving `input` at its end.
 * @throws UnsupportedArchiveError (not a toc.dat, unknown version, corrupt), or whatever `input.need` throws.
 */
export async function readDirectoryPrologue(input: ArchiveInput): Promise<{ header: ArchiveHeader; toc: TocEntry[] }> {
  const header = await readHeader(input, 'directory');
  input.intSize = header.intSize;
  return { header, toc: await readToc(input, header, 'directory') };
}

/** ReadHead() of pg_backup_archiver.c, restricted to what a custom-format archive (or a directory archive's
 *  toc.dat) of version 1.12–1.16 holds. */
async function readHeader(r: ArchiveInput, kind: 'custom' | 'directory' = 'custom'): Promise<ArchiveHeader> {
  if (r.size !== undefined && r.size < 5) throw new UnsupportedArchiveError('not a pg_dump custom-format archive: shorter than its magic string');
  await r.need(5, 'magic string');
  if (r.take(5).toString('latin1') !== 'PGDMP') {
    throw new UnsupportedArchiveError('not a pg_dump custom-format archive: no "PGDMP" magic string');
  }
  await r.need(3, 'archive version');
  const vmaj = r.byte();
  const vmin = r.byte();
  const vrev = vmaj > 1 || (vmaj === 1 && vmin > 0) ? r.byte() : 0; // (1.0 had no revision byte)
  const version = archiveVersion(vmaj, vmin, vrev);
  const versionText = `${vmaj}.${vmin}-${vrev}`;
  if (version < K_VERS_1_12 || version > NEWEST_KNOWN) {
    throw new UnsupportedArchiveError(`archive format version ${versionText} is not supported (1.12 to 1.16 are)`);
  }
  await r.need(3, 'header');
  const intSize = r.byte();
  const offSize = r.byte(); // (>= 1.7)
  const format = r.byte();
  if (kind === 'custom' && format !== ARCH_CUSTOM) {
    throw new UnsupportedArchiveError(`not a custom-format archive: format ${format} in the header (custom is ${ARCH_CUSTOM})`);
  }
  if (kind === 'directory' && format !== ARCH_TAR && format !== ARCH_DIRECTORY) {
    throw new UnsupportedArchiveError(`not a directory archive's toc.dat: format ${format} in the header (${ARCH_TAR} expected)`);
  }
  // ReadHead refuses intSize > 32 and warns above sizeof(int); pg_dump writes sizeof(int) and sizeof(pgoff_t).
  if (intSize < 1 || intSize > 8) throw new UnsupportedArchiveError(`unsupported integer size ${intSize} in the header`);
  if (offSize < 1 || offSize > 32) throw new UnsupportedArchiveError(`unsupported offset size ${offSize} in the header`);
  r.intSize = intSize;
  if (version >= K_VERS_1_15) {
    await r.need(1, 'compression algorithm');
    r.byte(); // pg_compress_algorithm; the chunk framing is the same whatever the compression
  } else {
    await r.readInt('compression level'); // (>= 1.4: an int; 1.2-1.3: a byte)
  }
  for (const field of ['tm_sec', 'tm_min', 'tm_hour', 'tm_mday', 'tm_mon', 'tm_year', 'tm_isdst']) {
    await r.readInt(`creation date ${field}`); // (>= 1.4)
  }
  await r.readStr('database name', false); // (>= 1.4)
  await r.readStr('server version', false); // (>= 1.10)
  await r.readStr('pg_dump version', false); // (>= 1.10)
  return { version, versionText, intSize, offSize };
}

/** ReadToc() of pg_backup_archiver.c plus _ReadExtraToc() of pg_backup_custom.c (or pg_backup_directory.c) for each entry. */
async function readToc(r: ArchiveInput, header: ArchiveHeader, kind: 'custom' | 'directory'): Promise<TocEntry[]> {
  const count = await r.readInt('TOC entry count');
  if (count < 0 || count > INT_MAX) throw corrupt(`TOC entry count ${count}`, r.position);
  const entries: TocEntry[] = [];
  const seen = new Set<number>();
  for (let i = 0; i < count; i++) {
    const entryPos = r.position;
    const dumpId = await r.readInt('TOC entry dumpId');
    if (dumpId <= 0 || dumpId > INT_MAX) throw corrupt(`TOC entry ID ${dumpId} out of range`, entryPos);
    if (seen.has(dumpId)) throw corrupt(`two TOC entries with ID ${dumpId}`, entryPos);
    seen.add(dumpId);
    await r.readInt('hadDumper');
    await r.readStr('catalogId.tableoid', false); // (>= 1.8)
    await r.readStr('catalogId.oid', false);
    const tag = (await r.readStr('tag', true)) ?? '';
    const desc = (await r.readStr('desc', true)) ?? '';
    await r.readInt('section'); // (>= 1.11)
    await r.readStr('defn', false);
    await r.readStr('dropStmt', false);
    await r.readStr('copyStmt', false); // (>= 1.3)
    const namespace = (await r.readStr('namespace', true)) ?? ''; // (>= 1.6)
    await r.readStr('tablespace', false); // (>= 1.10)
    if (header.version >= K_VERS_1_14) await r.readStr('tableam', false);
    if (header.version >= K_VERS_1_16) await r.readInt('relkind');
    await r.readStr('owner', false);
    await r.readStr('withOids', false); // (>= 1.9): "true"/"false"
    // Dependencies (>= 1.5): dumpIds as strings, ended by a NULL string.
    while ((await r.readStr('dependency', false)) !== null);
    if (kind === 'directory') {
      // _ReadExtraToc of pg_backup_directory.c: the data file's name, '' for an entry without data
      const offsetFieldPos = r.position;
      const filename = (await r.readStr('data file name', true)) ?? '';
      entries.push({
        dumpId,
        desc,
        tag,
        namespace,
        offsetFlag: filename ? K_OFFSET_POS_NOT_SET : K_OFFSET_NO_DATA,
        offsetFieldPos,
        filename,
        extraEnd: r.position,
      });
      continue;
    }
    // _ReadExtraToc -> ReadOffset (>= 1.7): flag byte, then offSize bytes, least significant first.
    const offsetFieldPos = r.position;
    await r.need(1 + header.offSize, 'data offset');
    const offsetFlag = r.byte();
    if (offsetFlag !== K_OFFSET_POS_NOT_SET && offsetFlag !== K_OFFSET_POS_SET && offsetFlag !== K_OFFSET_NO_DATA) {
      throw corrupt(`unexpected data offset flag ${offsetFlag} in TOC entry ${dumpId}`, offsetFieldPos);
    }
    r.skip(header.offSize);
    entries.push({ dumpId, desc, tag, namespace, offsetFlag, offsetFieldPos, extraEnd: r.position });
  }
  return entries;
}

/**
 * Walks the data area from the reader's position (just after the TOC) to the end of the file, as _PrintTocData's
 * search loop does with _readBlockHeader, _skipData and _skipLOs (pg_backup_custom.c):
 *   block  = type byte (BLK_DATA | BLK_BLOBS), int dumpId, body
 *   BLK_DATA body  = chunks: int length (> 0) + that many bytes, ended by an int 0
 *   BLK_BLOBS body = per large object: int oid (!= 0) + chunks as above; ended by an int oid 0
 * @returns file position (bytes) of each block's type byte, by dumpId, in file order.
 * @throws UnsupportedArchiveError on a truncated or corrupt data area, or a block whose dumpId has no TOC entry
 *   (or whose entry says it has no data).
 */
async function scanDataBlocks(r: ArchiveReader, toc: TocEntry[]): Promise<Map<number, number>> {
  const flagById = new Map(toc.map((te) => [te.dumpId, te.offsetFlag]));
  const blocks = new Map<number, number>();
  while (!r.atEnd()) {
    const blockPos = r.position;
    await r.need(1, 'data block type');
    const type = r.byte();
    if (type !== BLK_DATA && type !== BLK_BLOBS) throw corrupt(`unrecognized data block type ${type}`, blockPos);
    const dumpId = await r.readInt('data block dumpId');
    const flag = flagById.get(dumpId);
    if (flag === undefined) throw corrupt(`data block for ID ${dumpId}, which is not in the TOC`, blockPos);
    if (flag === K_OFFSET_NO_DATA) throw corrupt(`data block for ID ${dumpId}, whose TOC entry has no data`, blockPos);
    if (blocks.has(dumpId)) throw corrupt(`two data blocks for ID ${dumpId}`, blockPos);
    blocks.set(dumpId, blockPos);
    if (type === BLK_DATA) {
      await skipChunks(r);
    } else {
      for (;;) {
        const oid = await r.readInt('large object OID');
        if (oid === 0) break;
        await skipChunks(r);
      }
    }
  }
  return blocks;
}

/** _skipData() of pg_backup_custom.c: chunks of int length + bytes until a length of 0. The hot loop: millions of
 *  calls for an uncompressed dump, where every COPY row is a chunk; it only awaits to refill the buffer. */
async function skipChunks(r: ArchiveReader): Promise<void> {
  const intBytes = 1 + r.intSize;
  for (;;) {
    if (r.buffered < intBytes) await r.need(intBytes, 'data chunk length');
    const length = r.int();
    if (length === 0) return;
    if (length < 0 || length > INT_MAX) throw corrupt(`data chunk length ${length}`, r.position - intBytes);
    r.skip(length);
  }
}

/** Error naming what is corrupt and where (a byte position). */
export function corrupt(what: string, position: number): UnsupportedArchiveError {
  return new UnsupportedArchiveError(`corrupt custom-format archive: ${what} (at byte ${position})`);
}

/**
 * Sequential reader over the archive with a 1 MiB buffer filled by positional reads. Decoding (`byte`, `int`,
 * `take`, `skip`) is synchronous on bytes made available by `need`; only `need` does I/O. Positions are byte offsets
 * from the start of the file.
 */
class ArchiveReader implements ArchiveInput {
  /** Bytes of an int's magnitude; set once the header has been read. */
  intSize = 4;
  private readonly buf = Buffer.allocUnsafe(READ_BUFFER_BYTES);
  /** File position of buf[0]. */
  private bufPos = 0;
  /** Next unread byte in buf. */
  private start = 0;
  /** End of the valid bytes in buf. */
  private end = 0;

  constructor(
    private readonly handle: FileHandle,
    /** File size in bytes, taken when the file was opened. */
    readonly size: number,
  ) {}

  /** File position of the next byte to read. */
  get position(): number {
    return this.bufPos + this.start;
  }

  /** Bytes available without I/O. */
  get buffered(): number {
    return this.end - this.start;
  }

  atEnd(): boolean {
    return this.position >= this.size;
  }

  /** Makes `n` bytes (at most the buffer size) available. @throws UnsupportedArchiveError when the file ends first */
  async need(n: number, what: string): Promise<void> {
    if (this.end - this.start >= n) return;
    if (this.position + n > this.size) throw truncated(what, this.position);
    if (this.start > 0) {
      this.buf.copyWithin(0, this.start, this.end);
      this.bufPos += this.start;
      this.end -= this.start;
      this.start = 0;
    }
    while (this.end < n) {
      const filePos = this.bufPos + this.end;
      const want = Math.min(this.buf.length - this.end, this.size - filePos);
      const { bytesRead } = await this.handle.read(this.buf, this.end, want, filePos);
      if (bytesRead === 0) throw truncated(what, filePos); // the file shrank while being read
      this.end += bytesRead;
    }
  }

  byte(): number {
    return this.buf[this.start++];
  }

  /** ReadInt(): a sign byte (non-zero: negative), then intSize bytes of magnitude, least significant first. */
  int(): number {
    const b = this.buf;
    let p = this.start;
    const negative = b[p++] !== 0;
    let value: number;
    if (this.intSize === 4) {
      value = (b[p] | (b[p + 1] << 8) | (b[p + 2] << 16)) + b[p + 3] * 0x1000000;
      p += 4;
    } else {
      value = 0;
      for (let i = 0, scale = 1; i < this.intSize; i++, scale *= 256) value += b[p++] * scale;
    }
    this.start = p;
    return negative ? -value : value;
  }

  async readInt(what: string): Promise<number> {
    await this.need(1 + this.intSize, what);
    return this.int();
  }

  /** ReadStr(): an int length (negative: NULL), then that many bytes. The text is decoded only when `keep`. */
  async readStr(what: string, keep: boolean): Promise<string | null> {
    const at = this.position;
    const length = await this.readInt(`${what} length`);
    if (length < 0) return null;
    if (length > INT_MAX) throw corrupt(`${what} length ${length}`, at);
    if (!keep) {
      this.skip(length);
      return '';
    }
    if (length <= this.buf.length) {
      await this.need(length, what);
      return this.take(length).toString('utf8');
    }
    // Longer than the buffer: the buffered part, then the rest read directly.
    if (this.position + length > this.size) throw truncated(what, this.position);
    const out = Buffer.allocUnsafe(length);
    let filled = this.buf.copy(out, 0, this.start, this.end);
    this.skip(filled);
    while (filled < length) {
      const { bytesRead } = await this.handle.read(out, filled, length - filled, this.position);
      if (bytesRead === 0) throw truncated(what, this.position);
      filled += bytesRead;
      this.skip(bytesRead);
    }
    return out.toString('utf8');
  }

  /** The next `n` buffered bytes (a view of the buffer, valid until the next `need`). */
  take(n: number): Buffer {
    const out = this.buf.subarray(this.start, this.start + n);
    this.start += n;
    return out;
  }

  /** Moves `n` bytes forward; beyond the buffer, without reading. @throws UnsupportedArchiveError past the end */
  skip(n: number): void {
    if (n <= this.end - this.start) {
      this.start += n;
      return;
    }
    const target = this.position + n;
    if (target > this.size) throw truncated(`${n} bytes of data`, this.position);
    this.bufPos = target;
    this.start = 0;
    this.end = 0;
  }
}

/** Error for an archive that ends inside `what`. */
export function truncated(what: string, position: number): UnsupportedArchiveError {
  return new UnsupportedArchiveError(`truncated custom-format archive: file ends in ${what} (at byte ${position})`);
}
