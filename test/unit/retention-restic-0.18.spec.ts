/**
 * restic 0.18 semantics (the service's default `resticVersion`) checked against results restic 0.18 itself computed.
 *
 * The comparison with a real `restic forget` (retention-policy.spec.ts) runs the binary this machine has, and Debian
 * ships restic 0.14, so that comparison pins the 0.14 semantics only. restic's own test suite records what its
 * current policy code (0.18 and later: "oldest … snapshot" for unfilled buckets, unlimited counts) keeps from one fixed
 * list of 103 snapshots: `internal/data/snapshot_policy_test.go` (`TestApplyPolicy`) and its golden files
 * `internal/data/testdata/policy_keep_snapshots_<n>` in github.com/restic/restic. The snapshot times below are that
 * list; each case gives restic's policy number, and the kept times and match reasons transcribed from its golden file.
 * Counters and snapshot JSON are left out: the service reports kept ids and reasons only.
 */
import { applyRetention, RetentionPolicy } from '../../src/backup/retention-policy';

/** `YYYY-MM-DD HH:MM:SS[.f]` in UTC, as restic's test writes them, in restic's input order. */
const RESTIC_TEST_SNAPSHOTS = [
  ...['09-01', '09-02', '09-05', '09-06', '09-08', '09-09', '09-10', '09-11', '09-20', '09-22'].map((d) => `2014-${d} 10:20:30`),
  ...['08-08', '08-10', '08-12', '08-13'].map((d) => `2014-${d} 10:20:30`),
  '2014-08-13 10:20:30.1',
  ...['08-15', '08-18', '08-20', '08-21', '08-22'].map((d) => `2014-${d} 10:20:30`),
  ...['10-01', '10-02', '10-05', '10-06', '10-08', '10-09', '10-10', '10-11', '10-20', '10-22'].map((d) => `2014-${d} 10:20:30`),
  ...['11-08', '11-10', '11-12', '11-13'].map((d) => `2014-${d} 10:20:30`),
  '2014-11-13 10:20:30.1',
  ...['11-15', '11-18', '11-20', '11-21', '11-22'].map((d) => `2014-${d} 10:20:30`),
  ...['09-01', '09-02', '09-05', '09-06', '09-08', '09-09', '09-10', '09-11', '09-20', '09-22'].map((d) => `2015-${d} 10:20:30`),
  ...['08-08', '08-10', '08-12', '08-13'].map((d) => `2015-${d} 10:20:30`),
  '2015-08-13 10:20:30.1',
  ...['08-15', '08-18', '08-20', '08-21', '08-22'].map((d) => `2015-${d} 10:20:30`),
  ...['10-01', '10-02', '10-05', '10-06', '10-08', '10-09', '10-10', '10-11', '10-20'].map((d) => `2015-${d} 10:20:30`),
  ...Array.from({ length: 5 }, () => '2015-10-22 10:20:30'), // five snapshots at the same second (tags and paths differ)
  ...['11-08', '11-10', '11-12', '11-13'].map((d) => `2015-${d} 10:20:30`),
  '2015-11-13 10:20:30.1',
  ...['11-15', '11-18', '11-20', '11-21', '11-22'].map((d) => `2015-${d} 10:20:30`),
  ...['01-01 01:02:03', '01-01 01:03:03', '01-01 07:08:03', '01-03 07:02:03', '01-04 10:23:03', '01-04 11:23:03', '01-04 12:23:03'].map((d) => `2016-${d}`),
  ...['01-04 12:24:03', '01-04 12:28:03', '01-04 12:30:03', '01-04 16:23:03', '01-05 09:02:03', '01-06 08:02:03', '01-07 10:02:03'].map((d) => `2016-${d}`),
  ...['01-08 20:02:03', '01-09 21:02:03', '01-12 21:02:03', '01-12 21:08:03', '01-18 12:02:03'].map((d) => `2016-${d}`),
];

const snapshots = RESTIC_TEST_SNAPSHOTS.map((t, i) => ({ id: `${i}`, time: new Date(`${t.replace(' ', 'T')}Z`) }));
const timeOf = (id: string) => snapshots[Number(id)].time.toISOString().replace('.000Z', 'Z');

/** Each case: restic's policy number in TestApplyPolicy, the policy, and [kept time, reasons] newest first. */
const CASES: { n: number; policy: RetentionPolicy; keep: [string, string[]][] }[] = [
  {
    n: 14,
    policy: { keepMonthly: 6 },
    keep: [
      ['2016-01-18T12:02:03Z', ['monthly snapshot']],
      ['2015-11-22T10:20:30Z', ['monthly snapshot']],
      ['2015-10-22T10:20:30Z', ['monthly snapshot']],
      ['2015-09-22T10:20:30Z', ['monthly snapshot']],
      ['2015-08-22T10:20:30Z', ['monthly snapshot']],
      ['2014-11-22T10:20:30Z', ['monthly snapshot']],
    ],
  },
  {
    n: 15,
    policy: { keepDaily: 2, keepWeekly: 2, keepMonthly: 6 },
    keep: [
      ['2016-01-18T12:02:03Z', ['daily snapshot', 'weekly snapshot', 'monthly snapshot']],
      ['2016-01-12T21:08:03Z', ['daily snapshot', 'weekly snapshot']],
      ['2015-11-22T10:20:30Z', ['monthly snapshot']],
      ['2015-10-22T10:20:30Z', ['monthly snapshot']],
      ['2015-09-22T10:20:30Z', ['monthly snapshot']],
      ['2015-08-22T10:20:30Z', ['monthly snapshot']],
      ['2014-11-22T10:20:30Z', ['monthly snapshot']],
    ],
  },
  {
    n: 16,
    policy: { keepYearly: 10 },
    keep: [
      ['2016-01-18T12:02:03Z', ['yearly snapshot']],
      ['2015-11-22T10:20:30Z', ['yearly snapshot']],
      ['2014-11-22T10:20:30Z', ['yearly snapshot']],
      ['2014-08-08T10:20:30Z', ['oldest yearly snapshot']],
    ],
  },
  {
    n: 33,
    policy: { keepWithinMonthly: '1y2m3d3h' },
    keep: [
      ['2016-01-18T12:02:03Z', ['monthly within 1y2m3d3h']],
      ['2015-11-22T10:20:30Z', ['monthly within 1y2m3d3h']],
      ['2015-10-22T10:20:30Z', ['monthly within 1y2m3d3h']],
      ['2015-09-22T10:20:30Z', ['monthly within 1y2m3d3h']],
      ['2015-08-22T10:20:30Z', ['monthly within 1y2m3d3h']],
      ['2014-11-22T10:20:30Z', ['monthly within 1y2m3d3h']],
    ],
  },
  {
    n: 39,
    policy: { keepDaily: 3, keepWeekly: 2, keepMonthly: 'unlimited', keepYearly: 'unlimited' },
    keep: [
      ['2016-01-18T12:02:03Z', ['daily snapshot', 'weekly snapshot', 'monthly snapshot', 'yearly snapshot']],
      ['2016-01-12T21:08:03Z', ['daily snapshot', 'weekly snapshot']],
      ['2016-01-09T21:02:03Z', ['daily snapshot']],
      ['2015-11-22T10:20:30Z', ['monthly snapshot', 'yearly snapshot']],
      ['2015-10-22T10:20:30Z', ['monthly snapshot']],
      ['2015-09-22T10:20:30Z', ['monthly snapshot']],
      ['2015-08-22T10:20:30Z', ['monthly snapshot']],
      ['2014-11-22T10:20:30Z', ['monthly snapshot', 'yearly snapshot']],
      ['2014-10-22T10:20:30Z', ['monthly snapshot']],
      ['2014-09-22T10:20:30Z', ['monthly snapshot']],
      ['2014-08-22T10:20:30Z', ['monthly snapshot']],
      ['2014-08-08T10:20:30Z', ['oldest monthly snapshot', 'oldest yearly snapshot']],
    ],
  },
];

describe("applyRetention with resticVersion '0.18' reproduces restic's own golden results (TestApplyPolicy)", () => {
  it('the snapshot list is the 103 snapshots of restic’s test', () => {
    expect(snapshots).toHaveLength(103);
  });

  for (const c of CASES) {
    it(`policy ${c.n}: ${JSON.stringify(c.policy)}`, () => {
      const result = applyRetention(snapshots, c.policy, { timezone: 'UTC', now: new Date('2030-01-01T00:00:00Z'), resticVersion: '0.18' });
      expect(result.keep.map((k) => [timeOf(k.id), k.reasons])).toEqual(c.keep);
      expect(result.keep.length + result.remove.length).toBe(snapshots.length);
    });
  }

  it('the 0.14 semantics differ on the cases where restic 0.18 keeps the oldest backup (so the cases above can tell)', () => {
    const yearly = applyRetention(snapshots, { keepYearly: 10 }, { timezone: 'UTC', now: new Date('2030-01-01T00:00:00Z'), resticVersion: '0.14' });
    expect(yearly.keep.map((k) => timeOf(k.id))).toEqual(['2016-01-18T12:02:03Z', '2015-11-22T10:20:30Z', '2014-11-22T10:20:30Z']);
  });
});
