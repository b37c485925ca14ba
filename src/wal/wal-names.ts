/**
 * PostgreSQL WAL file names and LSN arithmetic, as defined in the server's `src/include/access/xlog_internal.h`
 * (`XLogFileName`, `TLHistoryFileName`, `BackupHistoryFileName`, `XLogFromFileName`):
 * - a segment: `TTTTTTTTXXXXXXXXYYYYYYYY` (24 hex digits: timeline, then the segment number split in
 *   "log" = segno / segmentsPerXLogId and "seg" = segno % segmentsPerXLogId, where segmentsPerXLogId =
 *   2^32 / segment size, 256 for the default 16 MiB segments);
 * - a partial segment (end of an old timeline after a promotion): `<segment>.partial`;
 * - a timeline history file: `TTTTTTTT.history`;
 * - a backup history file: `<segment>.XXXXXXXX.backup` (the hex offset of the backup's start in that segment).
 */

/** Default WAL segment size in bytes (`--wal-segsize` 16). */
export const DEFAULT_WAL_SEGMENT_BYTES = 16 * 1024 * 1024;

/** What kind of file PostgreSQL hands to `archive_command` / asks of `restore_command`. */
export type WalFileKind = 'segment' | 'partial' | 'history' | 'backup';

/** A parsed WAL file name. */
export interface WalFileName {
  name: string;
  kind: WalFileKind;
  /** Timeline ID (1 for a fresh cluster). */
  timeline: number;
  /** Timeline as the 8 hex digits of the name (`00000001`), used as a storage prefix. */
  timelineHex: string;
  /** For segments, partial segments and backup history files: the `XXXXXXXXYYYYYYYY` part (log, seg). */
  segmentHex?: string;
}

const SEGMENT = /^([0-9A-F]{8})([0-9A-F]{16})$/;
const PARTIAL = /^([0-9A-F]{8})([0-9A-F]{16})\.partial$/;
const HISTORY = /^([0-9A-F]{8})\.history$/;
const BACKUP = /^([0-9A-F]{8})([0-9A-F]{16})\.[0-9A-F]{8}\.backup$/;

/** Parses a WAL file name (the `%f` of archive_command / restore_command). @returns null for any other name */
export function parseWalFileName(name: string): WalFileName | null {
  for (const [kind, pattern] of [
    ['segment', SEGMENT],
    ['partial', PARTIAL],
    ['history', HISTORY],
    ['backup', BACKUP],
  ] as const) {
    const m = pattern.exec(name);
    if (m) return { name, kind, timeline: parseInt(m[1], 16), timelineHex: m[1], segmentHex: m[2] };
  }
  return null;
}

/** Segments per "log" (xlogid), i.e. 2^32 / segment size: 256 for 16 MiB segments. */
export function segmentsPerLogId(segmentBytes: number): bigint {
  return 0x1_0000_0000n / BigInt(segmentBytes);
}

/** Segment number of the `XXXXXXXXYYYYYYYY` part of a segment name. */
export function segmentNumberOf(segmentHex: string, segmentBytes = DEFAULT_WAL_SEGMENT_BYTES): bigint {
  const log = BigInt(`0x${segmentHex.slice(0, 8)}`);
  const seg = BigInt(`0x${segmentHex.slice(8)}`);
  return log * segmentsPerLogId(segmentBytes) + seg;
}

/** The 24-hex-digit segment name of segment number `segno` on `timeline`. */
export function segmentFileName(timeline: number, segno: bigint, segmentBytes = DEFAULT_WAL_SEGMENT_BYTES): string {
  const per = segmentsPerLogId(segmentBytes);
  return hex8(BigInt(timeline)) + hex8(segno / per) + hex8(segno % per);
}

/** Parses an LSN written as PostgreSQL prints it (`16/B374D848`): the 64-bit WAL position in bytes. @returns null if malformed */
export function parseLsn(text: string): bigint | null {
  const m = /^([0-9A-Fa-f]{1,8})\/([0-9A-Fa-f]{1,8})$/.exec(text.trim());
  return m ? (BigInt(`0x${m[1]}`) << 32n) | BigInt(`0x${m[2]}`) : null;
}

/** Formats a WAL position as PostgreSQL prints an LSN (`16/B374D848`). */
export function formatLsn(lsn: bigint): string {
  return `${(lsn >> 32n).toString(16).toUpperCase()}/${(lsn & 0xffff_ffffn).toString(16).toUpperCase()}`;
}

/** Number of the segment that holds WAL position `lsn` (`XLByteToSeg`). */
export function segmentOfLsn(lsn: bigint, segmentBytes = DEFAULT_WAL_SEGMENT_BYTES): bigint {
  return lsn / BigInt(segmentBytes);
}

/** One entry of a timeline history file: `parent` timeline ended (switched to its child) at `switchLsn`. */
export interface TimelineHistoryEntry {
  parent: number;
  switchLsn: bigint;
}

/**
 * Parses a timeline history file (`TTTTTTTT.history`): one line per ancestor, `parentTLI<TAB>switchpoint<TAB>reason`
 * (format of `writeTimeLineHistory` in src/backend/access/transam/timeline.c); comments start with `#`.
 */
export function parseTimelineHistory(text: string): TimelineHistoryEntry[] {
  const entries: TimelineHistoryEntry[] = [];
  for (const line of text.split('\n')) {
    const trimmed = line.trim();
    if (!trimmed || trimmed.startsWith('#')) continue;
    const [tli, lsn] = trimmed.split(/\s+/);
    const parsed = parseLsn(lsn ?? '');
    if (!/^\d+$/.test(tli ?? '') || parsed === null) continue;
    entries.push({ parent: Number(tli), switchLsn: parsed });
  }
  return entries;
}

function hex8(n: bigint): string {
  return n.toString(16).toUpperCase().padStart(8, '0');
}
