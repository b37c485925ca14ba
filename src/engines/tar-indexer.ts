import * as crypto from 'node:crypto';
import { createHash, Hash } from 'node:crypto';
import { Readable } from 'node:stream';
import { Headers } from 'tar-stream';
import { FileIndexEntry } from './file-index-entry';
import { EngineBackupRun } from './backup-engine';
import { FileIndex } from './file-index';
import { TarMemberReader, TarPassThrough } from './tar-pass-through';

/**
 * A pass-through stream that parses the tar archive flowing through it and reports, per member, its path, type,
 * size, mode, mtime (to the nanosecond, from the pax `mtime` record) and the SHA-256 of its content to `onEntry`:
 * the index is of exactly the bytes that went into the artifact. Names are as tar-stream decodes them (UTF-8, an
 * undecodable byte as U+FFFD): the filesystem engine takes the exact bytes from its walk (see TreeScan.index).
 */
export class TarIndexingStream extends TarPassThrough {
  /** Members seen so far. */
  count = 0;

  constructor(private readonly onEntry: (entry: FileIndexEntry) => void) {
    super();
  }

  protected member(header: Headers): TarMemberReader {
    if (header.type !== 'file' || isSparse(header)) {
      return {
        end: () => {
          this.count++;
          this.onEntry(toEntry(header, undefined));
        },
      };
    }
    // most members of a tree of small files pass as one piece of one chunk: hashed in one call, without a Hash object
    let first: Buffer | undefined;
    let hash: Hash | undefined;
    return {
      data: (chunk) => {
        if (hash) hash.update(chunk);
        else if (!first) first = chunk;
        else hash = createHash('sha256').update(first).update(chunk);
      },
      end: () => {
        this.count++;
        this.onEntry(toEntry(header, hash ? hash.digest('hex') : sha256Hex(first ?? EMPTY)));
      },
    };
  }
}

const EMPTY = Buffer.alloc(0);

/** Hex SHA-256 of `data` in one call (`crypto.hash`, Node 20.12+), else through a Hash object. */
const sha256Hex: (data: Buffer) => string =
  typeof (crypto as { hash?: unknown }).hash === 'function'
    ? (data) => (crypto as unknown as { hash(algorithm: string, data: Buffer, encoding: 'hex'): string }).hash('sha256', data, 'hex')
    : (data) => createHash('sha256').update(data).digest('hex');

/**
 * A GNU sparse member in a pax archive (`GNU.sparse.*` records, any of the 0.0, 0.1 and 1.0 formats): its content
 * in the archive is the data blocks only (after the map, for 1.0), not the file; its name and size are in the
 * records. Indexed as `other`, without a SHA-256, as GNU-format sparse members were.
 */
function isSparse(header: Headers): boolean {
  const pax = paxOf(header);
  return !!pax && (pax['GNU.sparse.realsize'] !== undefined || pax['GNU.sparse.size'] !== undefined || pax['GNU.sparse.map'] !== undefined);
}

function toEntry(header: Headers, sha256: string | undefined): FileIndexEntry {
  const pax = paxOf(header) ?? {};
  const sparse = isSparse(header);
  const type = sparse ? 'other' : header.type === 'file' ? 'file' : header.type === 'directory' ? 'directory' : header.type === 'symlink' ? 'symlink' : 'other';
  const name = (sparse && pax['GNU.sparse.name']) || header.name;
  const realSize = pax['GNU.sparse.realsize'] ?? pax['GNU.sparse.size'];
  const mtimeNs = paxTimeNs(pax.mtime) ?? BigInt(Math.floor((header.mtime ?? new Date(0)).getTime() / 1000)) * NS_PER_SECOND;
  return {
    path: name.replace(/^\.\//, '').replace(/\/$/, ''),
    type,
    sizeBytes: realSize !== undefined ? Number(realSize) : (header.size ?? 0),
    mode: ((header.mode ?? 0) & 0o7777).toString(8).padStart(4, '0'),
    mtime: new Date(Number(floorDiv(mtimeNs, NS_PER_MS))).toISOString(),
    mtimeNs: mtimeNs.toString(),
    ...(sha256 ? { sha256 } : {}),
    ...(header.linkname ? { linkTarget: header.linkname } : {}),
  };
}

/** The member's pax records (tar-stream sets `pax` on the headers of members that have any; its types omit it). */
function paxOf(header: Headers): Record<string, string> | undefined {
  return (header as Headers & { pax?: Record<string, string> }).pax;
}

const NS_PER_SECOND = 1_000_000_000n;
const NS_PER_MS = 1_000_000n;

/** Floor division of bigints (toward −∞, as a time before the epoch needs). */
function floorDiv(a: bigint, b: bigint): bigint {
  const q = a / b;
  return a % b !== 0n && a < 0n !== b < 0n ? q - 1n : q;
}

/**
 * A pax time record (POSIX.1-2001 `pax` "extended header keyword" mtime: decimal seconds since the epoch with an
 * optional fraction, e.g. `1609459200.123456789` or `-1.5`) in nanoseconds; digits past the ninth are dropped
 * (toward −∞). @returns undefined when absent or malformed
 */
export function paxTimeNs(value: string | undefined): bigint | undefined {
  const match = value === undefined ? null : /^(-?)(\d+)(?:\.(\d*))?$/.exec(value);
  if (!match) return undefined;
  const [, sign, whole, fraction = ''] = match;
  const magnitude = BigInt(whole) * NS_PER_SECOND + BigInt(fraction.slice(0, 9).padEnd(9, '0'));
  if (!sign) return magnitude;
  // -1.5 is 1.5 s before the epoch; drop sub-nanosecond digits toward −∞
  return -magnitude - (/[1-9]/.test(fraction.slice(9)) ? 1n : 0n);
}

/**
 * Wraps a running tar (stream + outcome) so that its archive is indexed on the way into the artifact.
 * @param index receives one entry per member (`toEntry` of it, when given: a throw fails the run); `finish` runs
 *   once the archive has been read to its end.
 * @returns the engine run: the archive bytes (unchanged) and, once tar has exited, its warnings and the index.
 */
export function indexedTarRun(
  tar: { stream: Readable; done: Promise<string[]> },
  index: FileIndex & { add(entry: FileIndexEntry): void },
  finish: () => Promise<void>,
  toEntry: (member: FileIndexEntry) => FileIndexEntry = (member) => member,
): EngineBackupRun {
  const indexer = new TarIndexingStream((member) => index.add(toEntry(member)));
  tar.stream.once('error', (error) => indexer.destroy(error));
  const stream = tar.stream.pipe(indexer);
  const indexed = new Promise<void>((resolve, reject) => {
    indexer.once('end', resolve);
    indexer.once('error', reject);
  });
  indexed.catch(() => undefined);
  const done = Promise.all([tar.done, indexed])
    .then(async ([warnings]) => {
      await finish();
      return { warnings, files: index };
    })
    .catch(async (error: Error) => {
      await index.dispose();
      throw error;
    });
  return { stream, done };
}
