import { checkContinuity } from '../../src/wal/wal-continuity';
import {
  DEFAULT_WAL_SEGMENT_BYTES,
  formatLsn,
  parseLsn,
  parseTimelineHistory,
  parseWalFileName,
  segmentFileName,
  segmentNumberOf,
  segmentOfLsn,
  WalFileName,
} from '../../src/wal/wal-names';

const MB16 = DEFAULT_WAL_SEGMENT_BYTES;
const names = (...n: string[]): WalFileName[] => n.map((x) => parseWalFileName(x)!);

describe('WAL file names and LSNs (xlog_internal.h rules)', () => {
  it('parses segments, partial segments, history and backup history files, and nothing else', () => {
    expect(parseWalFileName('000000010000000A000000FF')).toEqual(
      expect.objectContaining({ kind: 'segment', timeline: 1, timelineHex: '00000001', segmentHex: '0000000A000000FF' }),
    );
    expect(parseWalFileName('000000020000000000000003.partial')?.kind).toBe('partial');
    expect(parseWalFileName('00000002.history')).toEqual(expect.objectContaining({ kind: 'history', timeline: 2 }));
    expect(parseWalFileName('000000010000000000000002.00000028.backup')?.kind).toBe('backup');
    for (const bad of ['', '../etc/passwd', '00000001000000000000000', '000000010000000000000002x', 'RECOVERYXLOG', '0000000100000000000000g2']) {
      expect(parseWalFileName(bad)).toBeNull();
    }
  });

  it('does LSN and segment arithmetic as PostgreSQL (16 MiB and other segment sizes)', () => {
    const lsn = parseLsn('16/B374D848')!;
    expect(lsn).toBe(0x16b374d848n);
    expect(formatLsn(lsn)).toBe('16/B374D848');
    expect(parseLsn('garbage')).toBeNull();
    // SELECT pg_walfile_name('16/B374D848') on timeline 1 = 0000000100000016000000B3
    expect(segmentFileName(1, segmentOfLsn(lsn, MB16), MB16)).toBe('0000000100000016000000B3');
    expect(segmentNumberOf('00000016000000B3', MB16)).toBe(segmentOfLsn(lsn, MB16));
    // 64 MiB segments: 64 per "log"; 0/C0000000 is segment 48 (0x30) of log 0, 1/4000000 segment 1 of log 1
    expect(segmentFileName(1, segmentOfLsn(parseLsn('0/C0000000')!, 64 << 20), 64 << 20)).toBe('000000010000000000000030');
    expect(segmentFileName(1, segmentOfLsn(parseLsn('1/4000000')!, 64 << 20), 64 << 20)).toBe('000000010000000100000001');
    expect(segmentFileName(3, 256n, MB16)).toBe('000000030000000100000000');
  });

  it('parses a timeline history file', () => {
    expect(parseTimelineHistory('1\t0/3000148\tno recovery target specified\n\n2\t0/5000000\tat restore point "x"\n')).toEqual([
      { parent: 1, switchLsn: 0x3000148n },
      { parent: 2, switchLsn: 0x5000000n },
    ]);
  });
});

describe('WAL archive continuity', () => {
  it('is ok when every segment from the base backup start to the newest is archived', () => {
    const files = names('000000010000000000000001', '000000010000000000000002', '000000010000000000000003', '000000010000000000000004', '00000001.history');
    const report = checkContinuity(files, new Map(), MB16, { timeline: 1, startLsn: '0/2000028' });
    expect(report).toEqual(
      expect.objectContaining({ ok: true, fromSegment: '000000010000000000000002', toSegment: '000000010000000000000004', missingCount: 0 }),
    );
  });

  it('names each missing segment, and segments before the start are not needed', () => {
    const files = names('000000010000000000000003', '000000010000000000000005', '000000010000000000000008');
    const report = checkContinuity(files, new Map(), MB16, { timeline: 1, startLsn: '0/3000028' });
    expect(report.ok).toBe(false);
    expect(report.missing).toEqual(['000000010000000000000004', '000000010000000000000006', '000000010000000000000007']);
    expect(report.missingCount).toBe(3);
  });

  it('follows the newest timeline through its history: segments before the switch on the parent, from it on the child', () => {
    // Timeline 2 branched at 0/5000100: segments 2-4 are expected on timeline 1, 5 onward on timeline 2.
    const history = new Map([[2, [{ parent: 1, switchLsn: 0x5000100n }]]]);
    const files = names(
      '000000010000000000000002',
      '000000010000000000000003',
      '000000010000000000000004',
      '000000010000000000000005.partial',
      '000000010000000000000005',
      '000000010000000000000006', // tl 1 went on: not followed
      '000000020000000000000005',
      '000000020000000000000006',
      '00000002.history',
    );
    const ok = checkContinuity(files, history, MB16, { timeline: 1, startLsn: '0/2000028' });
    expect(ok).toEqual(expect.objectContaining({ ok: true, timeline: 2, fromSegment: '000000010000000000000002', toSegment: '000000020000000000000006' }));
    const gap = checkContinuity(
      files.filter((f) => f.name !== '000000010000000000000004'),
      history,
      MB16,
      { timeline: 1, startLsn: '0/2000028' },
    );
    expect(gap.missing).toEqual(['000000010000000000000004']);
    const childGap = checkContinuity(
      files.filter((f) => f.name !== '000000020000000000000005'),
      history,
      MB16,
      { timeline: 1, startLsn: '0/2000028' },
    );
    expect(childGap.missing).toEqual(['000000020000000000000005']); // timeline 1's own segment 5 does not count
  });

  it('says so when the newest timeline has no history file, and when nothing is archived', () => {
    const report = checkContinuity(names('000000020000000000000005'), new Map(), MB16, null);
    expect(report.ok).toBe(false);
    expect(report.problems[0]).toContain('history file of timeline 2');
    expect(checkContinuity([], new Map(), MB16, null)).toEqual(expect.objectContaining({ ok: false, fromSegment: null }));
  });
});
