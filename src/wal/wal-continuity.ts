import { parseLsn, segmentFileName, segmentNumberOf, segmentOfLsn, TimelineHistoryEntry, WalFileName } from './wal-names';

/** Where continuity must start: the oldest kept base backup's start LSN and timeline. */
export interface ContinuityStart {
  timeline: number;
  /** LSN as PostgreSQL prints it. */
  startLsn: string;
}

/** Outcome of {@link checkContinuity}. */
export interface ContinuityReport {
  /** True when every segment from `fromSegment` to `toSegment` is archived on its timeline. */
  ok: boolean;
  /** First and last segment checked (names on their timelines); null when the archive holds no segment. */
  fromSegment: string | null;
  toSegment: string | null;
  /** The newest timeline, whose history decides which timeline each segment is expected on. */
  timeline: number | null;
  /** Missing segment names, oldest first (at most {@link MAX_LISTED_GAPS}). */
  missing: string[];
  missingCount: number;
  /** Why the check could not be complete (e.g. a history file is missing); empty when it was. */
  problems: string[];
}

/** Missing segments listed by name in a report; the count is always complete. */
export const MAX_LISTED_GAPS = 100;

/**
 * Checks that every WAL segment between the start (a base backup's start segment, else the oldest archived
 * segment) and the newest archived segment of the newest timeline is archived, each on the timeline it belongs to:
 * the newest timeline's history file (`TTTTTTTT.history`) says up to which LSN each ancestor timeline was followed,
 * and the segment holding a switch point belongs to the child timeline (PostgreSQL copies it there at promotion;
 * the parent keeps it as `.partial`). Segments before the start are not needed (retention removes them).
 * @param files every archived WAL file; `histories` the parsed history files by timeline.
 */
export function checkContinuity(
  files: WalFileName[],
  histories: Map<number, TimelineHistoryEntry[]>,
  segmentBytes: number,
  start: ContinuityStart | null,
): ContinuityReport {
  const segments = files.filter((f) => f.kind === 'segment');
  const report: ContinuityReport = { ok: true, fromSegment: null, toSegment: null, timeline: null, missing: [], missingCount: 0, problems: [] };
  if (segments.length === 0) {
    report.ok = false;
    report.problems.push('no WAL segment is archived yet');
    return report;
  }
  const present = new Set(segments.map((f) => f.name));
  const newestTimeline = Math.max(...segments.map((f) => f.timeline));
  report.timeline = newestTimeline;
  const newestSegno = segments
    .filter((f) => f.timeline === newestTimeline)
    .map((f) => segmentNumberOf(f.segmentHex!, segmentBytes))
    .reduce((a, b) => (a > b ? a : b));
  // Ranges of the timeline chain: [fromSegno, toSegno) per timeline, oldest first.
  const history = newestTimeline > 1 ? histories.get(newestTimeline) : [];
  if (history === undefined) {
    report.problems.push(`the history file of timeline ${newestTimeline} is not archived; only timeline ${newestTimeline} was checked`);
  }
  const chain: { timeline: number; untilSegno: bigint | null }[] = [];
  for (const entry of history ?? []) chain.push({ timeline: entry.parent, untilSegno: segmentOfLsn(entry.switchLsn, segmentBytes) });
  chain.push({ timeline: newestTimeline, untilSegno: null });
  const timelineOf = (segno: bigint): number => chain.find((c) => c.untilSegno === null || segno < c.untilSegno)!.timeline;

  let fromSegno: bigint;
  if (start) {
    const lsn = parseLsn(start.startLsn);
    fromSegno = lsn === null ? 0n : segmentOfLsn(lsn, segmentBytes);
  } else {
    const onChain = segments.filter((f) => chain.some((c) => c.timeline === f.timeline)).map((f) => segmentNumberOf(f.segmentHex!, segmentBytes));
    fromSegno = onChain.reduce((a, b) => (a < b ? a : b));
  }
  report.fromSegment = segmentFileName(timelineOf(fromSegno), fromSegno, segmentBytes);
  report.toSegment = segmentFileName(newestTimeline, newestSegno, segmentBytes);
  for (let segno = fromSegno; segno <= newestSegno; segno++) {
    const name = segmentFileName(timelineOf(segno), segno, segmentBytes);
    if (present.has(name)) continue;
    report.missingCount++;
    if (report.missing.length < MAX_LISTED_GAPS) report.missing.push(name);
  }
  report.ok = report.missingCount === 0 && report.problems.length === 0;
  return report;
}
