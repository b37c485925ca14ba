import { createHash, Hash } from 'node:crypto';
import { Transform, TransformCallback } from 'node:stream';
import { TableDigest } from './pg-dump-digest';

/** Thrown (and turned into {@link MysqlDumpDigestStream.problem}) when the dump does not look as expected. */
export class UnparsableDumpError extends Error {}

// Lexer states. Numbers, not strings: the hot loop compares them per byte.
const STMT_START = 0; // between statements, skipping whitespace and comments
const NORMAL = 1; // inside a statement that is not a data INSERT
const DASH = 2; // after one '-' (a second one starts a line comment)
const SLASH = 3; // after '/' (a '*' starts a block comment)
const LINE_COMMENT = 4;
const BLOCK_COMMENT = 5;
const BLOCK_STAR = 6; // after '*' inside a block comment
const STRING = 7; // '...' or "..." inside a statement (backslash escapes)
const STRING_ESCAPE = 8;
const STRING_QUOTE = 9; // after the closing-looking quote: a doubled quote continues the string
const IDENT_QUOTED = 10; // `...` inside a statement
const IDENT_QUOTE = 11; // after a backtick inside `...` (a doubled one continues it)
const PREFIX = 12; // matching the start of a statement against INSERT INTO ` / CREATE TABLE ` / DELIMITER
const NAME = 13; // reading the table name of an INSERT or CREATE TABLE
const NAME_QUOTE = 14;
const DELIMITER_LINE = 15; // reading the new delimiter up to the end of the line
const INSERT_HEAD = 16; // after INSERT INTO `t`: an optional column list, then VALUES
const COLUMN_LIST = 17;
const COLUMN_IDENT = 18;
const VALUES_WORD = 19;
const BETWEEN_TUPLES = 20;
const TUPLE = 21;
const TUPLE_STRING = 22;
const TUPLE_ESCAPE = 23;
const TUPLE_QUOTE = 24;

const INSERT_PREFIX = Buffer.from('INSERT INTO `');
const CREATE_PREFIX = Buffer.from('CREATE TABLE `');
const DELIMITER_PREFIX = Buffer.from('DELIMITER ');
const VALUES = Buffer.from('VALUES');
/** Longest table name kept (MySQL: 64 characters, up to 4 bytes each; doubled backticks). */
const MAX_NAME_BYTES = 512;
const MAX_DELIMITER_LINE = 64;

const BACKSLASH = 0x5c;
const SINGLE_QUOTE = 0x27;
const DOUBLE_QUOTE = 0x22;
const BACKTICK = 0x60;
const OPEN = 0x28;
const CLOSE = 0x29;
const SEMICOLON = 0x3b;
const NEWLINE = 0x0a;

function isSpace(c: number): boolean {
  return c === 0x20 || c === 0x0a || c === 0x0d || c === 0x09;
}

interface TableState {
  name: string;
  rows: number;
  bytes: number;
  hash: Hash;
}

/**
 * A streaming parser of the SQL text `mysqldump` / `mariadb-dump` writes (format: client/mysqldump.c of MySQL and
 * MariaDB, `dump_table` and `get_table_structure`): it finds each base table (`CREATE TABLE \`t\``), and in each data
 * statement `INSERT INTO \`t\` [(\`c\`,...)] VALUES (...),(...);` counts the row tuples and hashes their text.
 *
 * The lexer knows what the dump can hold around the data: `-- ` and `#` line comments, `/* *\/` and `/*!NNNNN *\/`
 * comments, '...' and "..." strings with backslash escapes (mysqldump's `\0 \' \" \\ \n \r \Z`) or doubled quotes,
 * `...` identifiers with doubled backticks, and the client's `DELIMITER ;;` blocks around triggers, routines and
 * events, whose bodies may hold INSERT statements that are not data (only statements under the `;` delimiter are
 * data). Strings, lines and statements may be of any length and split anywhere across the chunks given to
 * {@link write}; memory stays bounded (a table name, a delimiter line).
 *
 * A table's digest is the SHA-256 of its row tuples as written, `(` to `)` inclusive, concatenated without the
 * separators (so it does not depend on how rows are split into statements or lines): two dumps by the same tool with
 * the same options of tables holding the same rows in the same order have equal digests. InnoDB dumps rows in
 * primary-key order, so a restored copy dumps identically.
 */
export class MysqlDumpParser {
  private readonly tables = new Map<string, TableState>();
  private state = STMT_START;
  /** Where a comment started at statement start returns to (STMT_START), else NORMAL. */
  private commentReturn = STMT_START;
  /** The quote byte of the string being read (' or "). */
  private quote = 0;
  private delimiter: Buffer = Buffer.from(';');
  private delimiterMatched = 0;
  private prefix: Buffer = INSERT_PREFIX;
  private prefixMatched = 0;
  private nameBytes: number[] = [];
  private nameFor: 'insert' | 'create' = 'insert';
  private delimiterLine: number[] = [];
  private valuesMatched = 0;
  /** True right after a `,` between tuples: a `(` must follow. */
  private expectTuple = false;
  private depth = 0;
  private current?: TableState;
  /** Bytes of the dump consumed before the chunk being parsed (for error positions). */
  private offset = 0;
  /** Tuple bytes not yet hashed, all of table {@link stagedFor}. */
  private readonly staging = Buffer.allocUnsafe(256 << 10);
  private stagedLength = 0;
  private stagedFor?: TableState;

  /**
   * Inside a quoted string (statement or row tuple) starting at `i`: the offset of the next closing-looking quote
   * or backslash, or `n` when the chunk ends first. Searched with Buffer.indexOf (memchr speed: strings are the bulk
   * of most dumps).
   */
  private stringStop(buf: Buffer, i: number, n: number): number {
    const quoteAt = buf.indexOf(this.quote, i);
    const end = quoteAt < 0 || quoteAt > n ? n : quoteAt;
    const escapeAt = buf.subarray(i, end).indexOf(BACKSLASH);
    return escapeAt < 0 ? end : i + escapeAt;
  }

  /** Per-table digests, in the order the tables appear in the dump; final once {@link end} has returned. */
  digests(): TableDigest[] {
    this.flushStaging();
    return [...this.tables.values()].map((t) => ({ name: t.name, rows: t.rows, bytes: t.bytes, sha256: t.hash.copy().digest('hex') }));
  }

  /** Parses the next chunk of the dump. @throws UnparsableDumpError when an INSERT statement is not as expected. */
  write(buf: Buffer): void {
    const n = buf.length;
    let i = 0;
    /** Start in `buf` of the tuple being read (hashed when it closes or when the chunk ends). */
    let tupleFrom = 0;
    while (i < n) {
      const c = buf[i];
      switch (this.state) {
        case TUPLE: {
          // hot path: the bytes of a row outside strings
          let j = i;
          let d = this.depth;
          for (; j < n; j++) {
            const b = buf[j];
            if (b === SINGLE_QUOTE || b === DOUBLE_QUOTE) break;
            if (b === OPEN) d++;
            else if (b === CLOSE && --d === 0) break;
          }
          this.depth = d;
          if (j === n) {
            i = n;
            break;
          }
          if (buf[j] === CLOSE) {
            this.endTuple(buf, tupleFrom, j + 1);
            this.state = BETWEEN_TUPLES;
          } else {
            this.quote = buf[j];
            this.state = TUPLE_STRING;
          }
          i = j + 1;
          break;
        }
        case TUPLE_STRING: {
          const j = this.stringStop(buf, i, n);
          if (j === n) {
            i = n;
            break;
          }
          this.state = buf[j] === BACKSLASH ? TUPLE_ESCAPE : TUPLE_QUOTE;
          i = j + 1;
          break;
        }
        case TUPLE_ESCAPE:
          this.state = TUPLE_STRING;
          i++;
          break;
        case TUPLE_QUOTE:
          if (c === this.quote) {
            this.state = TUPLE_STRING; // a doubled quote: still inside the string
            i++;
          } else {
            this.state = TUPLE; // reprocess c outside the string
          }
          break;
        case BETWEEN_TUPLES:
          if (isSpace(c)) {
            i++;
          } else if (c === OPEN && (this.expectTuple || this.valuesMatched === VALUES.length)) {
            this.valuesMatched = 0;
            this.expectTuple = false;
            this.depth = 1;
            tupleFrom = i;
            this.state = TUPLE;
            i++;
          } else if (c === 0x2c && !this.expectTuple && this.valuesMatched !== VALUES.length) {
            this.expectTuple = true;
            i++;
          } else if (c === SEMICOLON && !this.expectTuple && this.valuesMatched !== VALUES.length) {
            this.current = undefined;
            this.state = STMT_START;
            i++;
          } else {
            throw this.unexpected(c, i, 'between the rows of an INSERT');
          }
          break;
        case STMT_START:
          if (isSpace(c)) {
            i++;
          } else if (c === SEMICOLON && this.delimiter.length === 1 && this.delimiter[0] === SEMICOLON) {
            i++; // an empty statement
          } else if (c === 0x2d || c === 0x23 || c === 0x2f) {
            this.commentReturn = STMT_START;
            this.state = c === 0x2d ? DASH : c === 0x23 ? LINE_COMMENT : SLASH;
            i++;
          } else {
            const dataStatements = this.delimiter.length === 1 && this.delimiter[0] === SEMICOLON;
            const upper = c & 0xdf;
            if (upper === 0x44)
              this.startPrefix(DELIMITER_PREFIX); // D
            else if (dataStatements && c === 0x49)
              this.startPrefix(INSERT_PREFIX); // I
            else if (dataStatements && c === 0x43)
              this.startPrefix(CREATE_PREFIX); // C
            else this.state = NORMAL; // reprocess c
          }
          break;
        case PREFIX: {
          const want = this.prefix[this.prefixMatched];
          const match = this.prefix === DELIMITER_PREFIX && want !== 0x20 ? (c & 0xdf) === want : c === want;
          if (!match) {
            this.state = NORMAL; // the bytes matched so far are letters and spaces: nothing to undo; reprocess c
            break;
          }
          i++;
          if (++this.prefixMatched < this.prefix.length) break;
          if (this.prefix === DELIMITER_PREFIX) {
            this.delimiterLine = [];
            this.state = DELIMITER_LINE;
          } else {
            this.nameBytes = [];
            this.nameFor = this.prefix === INSERT_PREFIX ? 'insert' : 'create';
            this.state = NAME;
          }
          break;
        }
        case NAME:
          if (c === BACKTICK) this.state = NAME_QUOTE;
          else this.pushName(c, i);
          i++;
          break;
        case NAME_QUOTE:
          if (c === BACKTICK) {
            this.pushName(c, i);
            this.state = NAME;
            i++;
            break;
          }
          this.nameComplete();
          break; // reprocess c in the state nameComplete chose
        case DELIMITER_LINE:
          if (c === NEWLINE) {
            const text = Buffer.from(this.delimiterLine).toString('utf8').trim();
            if (!text) throw this.unexpected(c, i, 'after DELIMITER (no delimiter given)');
            this.delimiter = Buffer.from(text);
            this.delimiterMatched = 0;
            this.state = STMT_START;
          } else {
            if (this.delimiterLine.length >= MAX_DELIMITER_LINE) throw this.unexpected(c, i, 'in a DELIMITER line (too long)');
            this.delimiterLine.push(c);
          }
          i++;
          break;
        case INSERT_HEAD:
          if (isSpace(c)) {
            i++;
          } else if (c === OPEN) {
            this.state = COLUMN_LIST;
            i++;
          } else if ((c & 0xdf) === VALUES[0]) {
            this.valuesMatched = 1;
            this.state = VALUES_WORD;
            i++;
          } else {
            throw this.unexpected(c, i, 'after INSERT INTO `table`');
          }
          break;
        case COLUMN_LIST:
          if (c === BACKTICK) this.state = COLUMN_IDENT;
          else if (c === CLOSE) this.state = INSERT_HEAD;
          i++;
          break;
        case COLUMN_IDENT:
          if (c === BACKTICK) this.state = COLUMN_LIST; // a doubled backtick re-enters the identifier at once
          i++;
          break;
        case VALUES_WORD:
          if (this.valuesMatched < VALUES.length) {
            if ((c & 0xdf) !== VALUES[this.valuesMatched]) throw this.unexpected(c, i, 'in the VALUES keyword of an INSERT');
            this.valuesMatched++;
            i++;
          } else {
            this.state = BETWEEN_TUPLES; // reprocess c (a space or the first '(')
          }
          break;
        case NORMAL:
          i = this.normal(buf, i);
          break;
        case DASH:
          if (c === 0x2d) {
            this.state = LINE_COMMENT;
            i++;
          } else {
            this.state = NORMAL; // the '-' was content; reprocess c
          }
          break;
        case SLASH:
          if (c === 0x2a) {
            this.state = BLOCK_COMMENT;
            i++;
          } else {
            this.state = NORMAL;
          }
          break;
        case LINE_COMMENT: {
          const end = buf.indexOf(NEWLINE, i);
          if (end < 0) {
            i = n;
          } else {
            this.state = this.commentReturn;
            i = end + 1;
          }
          break;
        }
        case BLOCK_COMMENT: {
          const end = buf.indexOf(0x2a, i);
          if (end < 0) {
            i = n;
          } else {
            this.state = BLOCK_STAR;
            i = end + 1;
          }
          break;
        }
        case BLOCK_STAR:
          if (c === 0x2f) this.state = this.commentReturn;
          else if (c !== 0x2a) this.state = BLOCK_COMMENT;
          i++;
          break;
        case STRING: {
          const j = this.stringStop(buf, i, n);
          if (j === n) {
            i = n;
            break;
          }
          this.state = buf[j] === BACKSLASH ? STRING_ESCAPE : STRING_QUOTE;
          i = j + 1;
          break;
        }
        case STRING_ESCAPE:
          this.state = STRING;
          i++;
          break;
        case STRING_QUOTE:
          if (c === this.quote) {
            this.state = STRING;
            i++;
          } else {
            this.state = NORMAL;
          }
          break;
        case IDENT_QUOTED: {
          const end = buf.indexOf(BACKTICK, i);
          if (end < 0) {
            i = n;
          } else {
            this.state = IDENT_QUOTE;
            i = end + 1;
          }
          break;
        }
        case IDENT_QUOTE:
          if (c === BACKTICK) {
            this.state = IDENT_QUOTED;
            i++;
          } else {
            this.state = NORMAL;
          }
          break;
        default:
          throw new Error(`mysqldump parser: unknown state ${this.state}`);
      }
    }
    if (this.state === TUPLE || this.state === TUPLE_STRING || this.state === TUPLE_ESCAPE || this.state === TUPLE_QUOTE) {
      this.hashPart(buf, tupleFrom, n);
    }
    this.offset += n;
  }

  /**
   * Checks that the dump ended between statements.
   * @throws UnparsableDumpError when it ended inside an INSERT (a truncated dump).
   */
  end(): void {
    if (this.current || this.state >= INSERT_HEAD) {
      throw new UnparsableDumpError(`the dump ends inside an INSERT statement of table ${this.current?.name ?? '?'} (at byte ${this.offset})`);
    }
  }

  /** Lexes a general statement from `i` up to a state change; @returns the next position. */
  private normal(buf: Buffer, i: number): number {
    const n = buf.length;
    const delimiter = this.delimiter;
    for (; i < n; i++) {
      const c = buf[i];
      if (this.delimiterMatched > 0) {
        if (c === delimiter[this.delimiterMatched]) {
          if (++this.delimiterMatched === delimiter.length) {
            this.delimiterMatched = 0;
            this.state = STMT_START;
            return i + 1;
          }
          continue;
        }
        this.delimiterMatched = 0; // not the delimiter after all; c is looked at below
      }
      if (c === delimiter[0]) {
        if (delimiter.length === 1) {
          this.state = STMT_START;
          return i + 1;
        }
        this.delimiterMatched = 1;
      } else if (c === SINGLE_QUOTE || c === DOUBLE_QUOTE) {
        this.quote = c;
        this.state = STRING;
        return i + 1;
      } else if (c === BACKTICK) {
        this.state = IDENT_QUOTED;
        return i + 1;
      } else if (c === 0x2d || c === 0x23 || c === 0x2f) {
        this.commentReturn = NORMAL;
        this.state = c === 0x2d ? DASH : c === 0x23 ? LINE_COMMENT : SLASH;
        return i + 1;
      }
    }
    return n;
  }

  private startPrefix(prefix: Buffer): void {
    this.prefix = prefix;
    this.prefixMatched = 0;
    this.state = PREFIX;
  }

  private pushName(c: number, i: number): void {
    if (this.nameBytes.length >= MAX_NAME_BYTES) throw this.unexpected(c, i, 'in a table name (too long)');
    this.nameBytes.push(c);
  }

  /** The table name has been read: CREATE TABLE registers the table, INSERT starts counting its rows. */
  private nameComplete(): void {
    const name = Buffer.from(this.nameBytes).toString('utf8');
    const table = this.table(name);
    if (this.nameFor === 'create') {
      this.state = NORMAL;
    } else {
      this.current = table;
      this.valuesMatched = 0;
      this.expectTuple = false;
      this.state = INSERT_HEAD;
    }
  }

  private table(name: string): TableState {
    let table = this.tables.get(name);
    if (!table) {
      table = { name, rows: 0, bytes: 0, hash: createHash('sha256') };
      this.tables.set(name, table);
    }
    return table;
  }

  /**
   * Adds `buf[from, to)` to the current table's digest. Tuples are often a few dozen bytes: they are gathered in a
   * staging buffer and hashed 256 KiB at a time (one native hash call per tuple halved the parser's throughput).
   */
  private hashPart(buf: Buffer, from: number, to: number): void {
    const length = to - from;
    if (length <= 0) return;
    const table = this.current!;
    table.bytes += length;
    if (this.stagedFor !== table || this.stagedLength + length > this.staging.length) this.flushStaging();
    this.stagedFor = table;
    if (length > this.staging.length) {
      table.hash.update(buf.subarray(from, to));
    } else if (length <= 64) {
      const staging = this.staging;
      let at = this.stagedLength;
      for (let k = from; k < to; k++) staging[at++] = buf[k];
      this.stagedLength = at;
    } else {
      buf.copy(this.staging, this.stagedLength, from, to);
      this.stagedLength += length;
    }
  }

  private flushStaging(): void {
    if (this.stagedFor && this.stagedLength > 0) this.stagedFor.hash.update(this.staging.subarray(0, this.stagedLength));
    this.stagedLength = 0;
    this.stagedFor = undefined;
  }

  private endTuple(buf: Buffer, from: number, to: number): void {
    this.hashPart(buf, from, to);
    this.current!.rows++;
  }

  private unexpected(c: number, i: number, where: string): UnparsableDumpError {
    const shown = c >= 0x20 && c < 0x7f ? `'${String.fromCharCode(c)}'` : `byte 0x${c.toString(16).padStart(2, '0')}`;
    return new UnparsableDumpError(`unexpected ${shown} ${where} (at byte ${this.offset + i})`);
  }
}

/**
 * A pass-through stream that digests the mysqldump output flowing through it with a {@link MysqlDumpParser}. Bytes
 * pass on unchanged and at once. Digesting never fails the stream: if the dump cannot be parsed, {@link problem}
 * says why and {@link digests} is empty (the backup is still taken, without per-table digests).
 */
export class MysqlDumpDigestStream extends Transform {
  /** Per-table digests; complete once the stream has finished. */
  digests: TableDigest[] = [];
  /** Why the dump could not be digested, if it could not. */
  problem?: string;
  private readonly parser = new MysqlDumpParser();

  constructor() {
    super({ highWaterMark: 1 << 20 });
  }

  override _transform(chunk: Buffer, _encoding: BufferEncoding, callback: TransformCallback): void {
    if (!this.problem) {
      try {
        this.parser.write(chunk);
      } catch (error) {
        this.problem = `table digests unavailable: ${(error as Error).message}`;
      }
    }
    callback(null, chunk);
  }

  override _flush(callback: TransformCallback): void {
    if (!this.problem) {
      try {
        this.parser.end();
        this.digests = this.parser.digests();
      } catch (error) {
        this.problem = `table digests unavailable: ${(error as Error).message}`;
      }
    }
    callback();
  }
}
