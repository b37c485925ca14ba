import { createHash, Hash } from 'node:crypto';
import { Transform, TransformCallback } from 'node:stream';
import { ArchiveInput, BLK_BLOBS, BLK_DATA, corrupt, INT_MAX, readPrologue, TocEntry, truncated, UnsupportedArchiveError } from './pg-custom-archive';

/**
 * The digest of one data block of a pg_dump custom-format archive: a table's COPY data, or the large objects.
 * Two dumps made by the same pg_dump (`--format=custom --compress=0`) of tables holding the same rows in the same
 * physical order have equal digests; that is how deep verification compares a restored database with the backup.
 */
export interface TableDigest {
  /** `schema.table` for table data; `large objects` for the BLOBS block. */
  name: string;
  /**
   * Rows: data chunks, one per COPY row with --compress=0 (pg_dump calls WriteData once per row), not counting the
   * `\.` end-of-data marker pg_dump writes as the last chunk (a COPY text row cannot start with an unescaped `\.`).
   */
  rows: number;
  /** Bytes of the block's body (chunks with their length headers). */
  bytes: number;
  /** SHA-256 (hex) of the block's body, from the byte after its dumpId to the end of its terminator. */
  sha256: string;
}

/** Prologues (header + TOC) larger than this are not digested (a warning says so). */
const MAX_PROLOGUE_BYTES = 64 << 20;

/** Thrown by {@link BufferInput} when the bytes received so far end before what is needed. */
export class NeedMoreBytes extends Error {}

/** {@link ArchiveInput} over bytes held in memory; `need` throws {@link NeedMoreBytes} past their end. */
export class BufferInput implements ArchiveInput {
  intSize = 4;
  private offset = 0;

  constructor(private readonly buf: Buffer) {}

  get position(): number {
    return this.offset;
  }

  async need(n: number): Promise<void> {
    if (this.offset + n > this.buf.length) throw new NeedMoreBytes();
  }

  byte(): number {
    return this.buf[this.offset++];
  }

  int(): number {
    const negative = this.buf[this.offset++] !== 0;
    let value = 0;
    for (let i = 0, scale = 1; i < this.intSize; i++, scale *= 256) value += this.buf[this.offset++] * scale;
    return negative ? -value : value;
  }

  async readInt(): Promise<number> {
    await this.need(1 + this.intSize);
    return this.int();
  }

  async readStr(what: string, keep: boolean): Promise<string | null> {
    const length = await this.readInt();
    if (length < 0) return null;
    await this.need(length);
    const bytes = this.take(length);
    return keep ? bytes.toString('utf8') : '';
  }

  take(n: number): Buffer {
    const out = this.buf.subarray(this.offset, this.offset + n);
    this.offset += n;
    return out;
  }

  skip(n: number): void {
    if (this.offset + n > this.buf.length) throw new NeedMoreBytes();
    this.offset += n;
  }
}

type State = 'blockType' | 'blockId' | 'chunkLength' | 'chunkData' | 'blobOid';

/**
 * A pass-through stream that digests the data blocks of the pg_dump custom-format archive flowing through it
 * (format: src/bin/pg_dump/pg_backup_custom.c, `_StartData`/`_EndData`/`_CustomWriteFunc` and
 * `_StartLOs`/`_StartLO`/`_EndLO`/`_EndLOs`; header and TOC read by {@link readPrologue}). Bytes pass on unchanged
 * and at once; the parsing costs one hash update per block per incoming chunk, not per row.
 *
 * Digesting never fails the stream: if the archive cannot be parsed (an unknown format version, a TOC over
 * 64 MiB), {@link problem} says why and {@link digests} is empty.
 */
export class PgDumpDigestStream extends Transform {
  /** Per-block digests, in archive order; complete once the stream has finished. */
  readonly digests: TableDigest[] = [];
  /** Why the archive could not be digested, if it could not. */
  problem?: string;

  private prologue: Buffer[] = [];
  private prologueBytes = 0;
  private names?: Map<number, string>;
  private intSize = 4;
  private state: State = 'blockType';
  /** Bytes of a header int still being gathered, when it straddles two chunks. */
  private partial: number[] = [];
  private remaining = 0;
  /** First bytes of the chunk being read (to recognise the `\.` end-of-data marker). */
  private chunkHead: number[] = [];
  private blockType = 0;
  private current?: { name: string; rows: number; bytes: number; hash: Hash };
  private parsingPrologue?: Promise<void>;
  /** Archive bytes before the buffer being scanned (for error positions). */
  private base = 0;

  constructor() {
    super({ highWaterMark: 1 << 20 });
  }

  override _transform(chunk: Buffer, _encoding: BufferEncoding, callback: TransformCallback): void {
    if (this.problem) return callback(null, chunk);
    if (!this.names) {
      this.prologue.push(chunk);
      this.prologueBytes += chunk.length;
      this.parsingPrologue = this.tryPrologue().then(
        () => callback(null, chunk),
        (error: Error) => {
          this.giveUp(error);
          callback(null, chunk);
        },
      );
      return;
    }
    try {
      this.scan(chunk, 0);
    } catch (error) {
      this.giveUp(error as Error);
    }
    this.base += chunk.length;
    callback(null, chunk);
  }

  override _flush(callback: TransformCallback): void {
    void (this.parsingPrologue ?? Promise.resolve()).then(() => {
      if (!this.problem && !this.names) this.giveUp(truncated('the header or TOC', this.prologueBytes));
      else if (!this.problem && (this.state !== 'blockType' || this.current)) this.giveUp(truncated('a data block', this.base));
      callback();
    });
  }

  /** Parses header + TOC once enough bytes have arrived; then digests the data bytes that came with them. */
  private async tryPrologue(): Promise<void> {
    const bytes = this.prologue.length === 1 ? this.prologue[0] : Buffer.concat(this.prologue, this.prologueBytes);
    const input = new BufferInput(bytes);
    let parsed: { toc: TocEntry[] };
    try {
      parsed = await readPrologue(input);
    } catch (error) {
      if (!(error instanceof NeedMoreBytes)) throw error;
      if (this.prologueBytes > MAX_PROLOGUE_BYTES) throw new UnsupportedArchiveError("the archive's TOC is over 64 MiB");
      this.prologue = [bytes];
      return;
    }
    this.intSize = input.intSize;
    this.names = new Map(parsed.toc.map((te) => [te.dumpId, te.desc === 'BLOBS' ? 'large objects' : `${te.namespace}.${te.tag}`]));
    this.prologue = [];
    this.scan(bytes, input.position);
    this.base = bytes.length;
  }

  /** Walks the data area in `buf` from `offset`, hashing each block's body in contiguous ranges. */
  private scan(buf: Buffer, offset: number): void {
    let pos = offset;
    let hashFrom = this.current ? pos : -1;
    const flushHash = (to: number) => {
      if (this.current && hashFrom >= 0 && to > hashFrom) this.current.hash.update(buf.subarray(hashFrom, to));
    };
    while (pos < buf.length) {
      if (this.state === 'chunkLength' && this.partial.length === 0 && this.blockType === BLK_DATA) {
        pos = this.skipWholeChunks(buf, pos);
        if (pos >= buf.length) break;
      }
      switch (this.state) {
        case 'blockType': {
          this.blockType = buf[pos++];
          if (this.blockType !== BLK_DATA && this.blockType !== BLK_BLOBS) throw corrupt(`data block type ${this.blockType}`, this.base + pos - 1);
          this.state = 'blockId';
          break;
        }
        case 'blockId':
        case 'chunkLength':
        case 'blobOid': {
          const need = 1 + this.intSize;
          let value: number;
          if (this.partial.length === 0 && pos + need <= buf.length) {
            // fast path (nearly always): the whole int is in this buffer
            value = 0;
            for (let i = this.intSize, scale = 1; i > 0; i--, scale *= 256) value += buf[pos + need - i] * scale;
            if (buf[pos] !== 0) value = -value;
            pos += need;
          } else {
            const take = Math.min(need - this.partial.length, buf.length - pos);
            for (let i = 0; i < take; i++) this.partial.push(buf[pos + i]);
            pos += take;
            if (this.partial.length < need) break;
            value = this.decodeInt();
          }
          if (this.state === 'blockId') {
            const name = this.names!.get(value);
            if (name === undefined) throw corrupt(`data block for ID ${value}, not in the TOC`, this.base + pos);
            this.current = { name, rows: 0, bytes: 0, hash: createHash('sha256') };
            hashFrom = pos;
            this.state = this.blockType === BLK_BLOBS ? 'blobOid' : 'chunkLength';
          } else if (this.state === 'blobOid') {
            if (value === 0) this.endBlock(buf, pos, hashFrom, flushHash);
            else this.state = 'chunkLength';
          } else if (value === 0) {
            if (this.blockType === BLK_BLOBS) this.state = 'blobOid';
            else {
              if (this.chunkHead[0] === 0x5c && this.chunkHead[1] === 0x2e) this.current!.rows--; // the "\." marker
              this.endBlock(buf, pos, hashFrom, flushHash);
            }
          } else {
            if (value < 0 || value > INT_MAX) throw corrupt(`data chunk length ${value}`, this.base + pos);
            this.current!.rows++;
            this.remaining = value;
            this.chunkHead = [];
            this.state = 'chunkData';
          }
          if ((this.state as State) === 'blockType') hashFrom = -1;
          break;
        }
        case 'chunkData': {
          const take = Math.min(this.remaining, buf.length - pos);
          for (let i = 0; this.chunkHead.length < 2 && i < take; i++) this.chunkHead.push(buf[pos + i]);
          pos += take;
          this.remaining -= take;
          if (this.remaining === 0) this.state = 'chunkLength';
          break;
        }
      }
    }
    flushHash(pos);
    if (this.current) this.current.bytes += pos - Math.max(hashFrom, offset);
  }

  /**
   * The hot loop (millions of rows): skips the table-data chunks that lie wholly in `buf` from `pos`, counting
   * rows, and stops before a terminator, a chunk that runs past the buffer, or a length split across buffers.
   * @returns the position of the first byte it did not consume.
   */
  private skipWholeChunks(buf: Buffer, pos: number): number {
    const need = 1 + this.intSize;
    const block = this.current!;
    let rows = 0;
    while (pos + need <= buf.length) {
      let length = 0;
      for (let i = this.intSize, scale = 1; i > 0; i--, scale *= 256) length += buf[pos + need - i] * scale;
      if (length === 0 || buf[pos] !== 0 || length > INT_MAX || pos + need + length > buf.length) break;
      if (length >= 2) {
        this.chunkHead[0] = buf[pos + need];
        this.chunkHead[1] = buf[pos + need + 1];
      } else {
        this.chunkHead = [buf[pos + need]];
      }
      rows++;
      pos += need + length;
    }
    block.rows += rows;
    return pos;
  }

  private endBlock(buf: Buffer, pos: number, hashFrom: number, flushHash: (to: number) => void): void {
    flushHash(pos);
    const block = this.current!;
    block.bytes += pos - hashFrom;
    this.digests.push({ name: block.name, rows: block.rows, bytes: block.bytes, sha256: block.hash.digest('hex') });
    this.current = undefined;
    this.state = 'blockType';
  }

  private decodeInt(): number {
    const bytes = this.partial;
    this.partial = [];
    let value = 0;
    for (let i = 0, scale = 1; i < this.intSize; i++, scale *= 256) value += bytes[1 + i] * scale;
    return bytes[0] !== 0 ? -value : value;
  }

  private giveUp(error: Error): void {
    this.problem = `table digests unavailable: ${error.message}`;
    this.digests.length = 0;
    this.prologue = [];
    this.current = undefined;
  }
}
