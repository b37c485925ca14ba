import { plainToInstance } from 'class-transformer';
import { validate } from 'class-validator';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  applyRetention,
  formatResticDuration,
  isEmptyRetentionPolicy,
  parseResticDuration,
  ResticSemantics,
  RetentionOptions,
  RetentionPolicy,
} from '../../src/backup/retention-policy';
import { DrError } from '../../src/errors/dr-error';
import { findRestic, ForgetGroup, ResticRepo, rfc3339InZone, zonedWallTime } from '../support/restic';

const NOW = new Date('2030-01-01T00:00:00Z');
/** restic 0.14 semantics: no extra oldest backup, so that bucket tests show only the buckets. */
const ONLY_BUCKETS = { resticVersion: '0.14' } as const;

/** A backup whose id is its ISO time (or `id`). */
const at = (iso: string, id = iso) => ({ id, time: new Date(iso) });

function run(snapshots: { id: string; time: Date }[], policy: RetentionPolicy, options: Partial<RetentionOptions> = {}) {
  return applyRetention(snapshots, policy, { timezone: 'UTC', now: NOW, ...options });
}
const kept = (snapshots: { id: string; time: Date }[], policy: RetentionPolicy, options: Partial<RetentionOptions> = {}) =>
  run(snapshots, policy, options).keep.map((k) => k.id);
const reasonsOf = (snapshots: { id: string; time: Date }[], policy: RetentionPolicy, options: Partial<RetentionOptions> = {}) =>
  Object.fromEntries(run(snapshots, policy, options).keep.map((k) => [k.id, k.reasons]));

describe('applyRetention: count rules', () => {
  it('keepLast keeps the n newest backups, whatever the input order; both lists come newest first', () => {
    const snaps = ['2024-01-03T10:00:00Z', '2024-01-01T10:00:00Z', '2024-01-05T10:00:00Z', '2024-01-02T10:00:00Z', '2024-01-04T10:00:00Z'].map((t) => at(t));
    const r = run(snaps, { keepLast: 2 });
    expect(r.keep).toEqual([
      { id: '2024-01-05T10:00:00Z', reasons: ['last snapshot'] },
      { id: '2024-01-04T10:00:00Z', reasons: ['last snapshot'] },
    ]);
    expect(r.remove.map((s) => s.id)).toEqual(['2024-01-03T10:00:00Z', '2024-01-02T10:00:00Z', '2024-01-01T10:00:00Z']);
  });

  it('keepHourly keeps the newest backup of each hour, counting only hours that have a backup', () => {
    const snaps = ['2024-05-01T10:05:00Z', '2024-05-01T10:55:00Z', '2024-05-01T11:10:00Z', '2024-05-01T14:00:00Z', '2024-05-01T14:30:00Z'].map((t) => at(t));
    expect(kept(snaps, { keepHourly: 2 })).toEqual(['2024-05-01T14:30:00Z', '2024-05-01T11:10:00Z']);
    expect(kept(snaps, { keepHourly: 3 })).toEqual(['2024-05-01T14:30:00Z', '2024-05-01T11:10:00Z', '2024-05-01T10:55:00Z']);
  });

  it("keepDaily reproduces the documentation's example: 12 Sundays, --keep-daily 4 keeps the last four Sundays", () => {
    const sundays = ['09-01', '09-08', '09-15', '09-22', '09-29', '10-06', '10-13', '10-20', '10-27', '11-03', '11-10', '11-17'].map((d) =>
      at(`2019-${d}T11:00:00Z`),
    );
    const r = run(sundays, { keepDaily: 4 });
    expect(r.keep.map((k) => k.id)).toEqual(['2019-11-17T11:00:00Z', '2019-11-10T11:00:00Z', '2019-11-03T11:00:00Z', '2019-10-27T11:00:00Z']);
    expect(r.keep.every((k) => k.reasons.join() === 'daily snapshot')).toBe(true);
    expect(r.remove).toHaveLength(8);
  });

  it('keepWeekly uses ISO weeks (Monday to Sunday, week 1 holds the first Thursday), across year ends', () => {
    const snaps = [
      '2025-01-01T12:00:00Z', // Wed, 2025-W01
      '2024-12-30T01:00:00Z', // Mon, 2025-W01
      '2024-12-29T23:00:00Z', // Sun, 2024-W52
      '2022-01-02T12:00:00Z', // Sun, 2021-W52
      '2022-01-01T12:00:00Z', // Sat, 2021-W52
      '2021-12-27T12:00:00Z', // Mon, 2021-W52
      '2021-12-26T12:00:00Z', // Sun, 2021-W51
      '2021-01-04T12:00:00Z', // Mon, 2021-W01
      '2021-01-03T12:00:00Z', // Sun, 2020-W53
      '2020-12-31T12:00:00Z', // Thu, 2020-W53
    ].map((t) => at(t));
    expect(kept(snaps, { keepWeekly: 'unlimited' }, ONLY_BUCKETS)).toEqual([
      '2025-01-01T12:00:00Z',
      '2024-12-29T23:00:00Z',
      '2022-01-02T12:00:00Z',
      '2021-12-26T12:00:00Z',
      '2021-01-04T12:00:00Z',
      '2021-01-03T12:00:00Z',
    ]);
  });

  it('keepMonthly and keepYearly cut at midnight of the first day', () => {
    const snaps = ['2024-01-01T00:00:00Z', '2023-12-31T23:59:59Z', '2023-12-01T00:00:00Z', '2023-11-30T23:59:59Z', '2023-11-15T12:00:00Z'].map((t) => at(t));
    expect(kept(snaps, { keepMonthly: 'unlimited' }, ONLY_BUCKETS)).toEqual(['2024-01-01T00:00:00Z', '2023-12-31T23:59:59Z', '2023-11-30T23:59:59Z']);
    expect(kept(snaps, { keepYearly: -1 }, ONLY_BUCKETS)).toEqual(['2024-01-01T00:00:00Z', '2023-12-31T23:59:59Z']);
  });

  it('"unlimited" (or -1) keeps every bucket; 0 turns a rule off', () => {
    const snaps = ['2024-01-01T10:00:00Z', '2024-01-01T11:00:00Z', '2024-01-02T10:00:00Z'].map((t) => at(t));
    expect(kept(snaps, { keepLast: 'unlimited' })).toHaveLength(3);
    expect(kept(snaps, { keepLast: -1 })).toHaveLength(3);
    expect(kept(snaps, { keepDaily: 'unlimited', keepLast: 0 }, ONLY_BUCKETS)).toEqual(['2024-01-02T10:00:00Z', '2024-01-01T11:00:00Z']);
    expect(kept(snaps, { keepDaily: 'unlimited' })).toHaveLength(3); // restic 0.16+: an unlimited rule always keeps the oldest too
  });

  it('lists every rule that keeps a backup, in restic order (within, last, hourly … yearly, hourly within … yearly within)', () => {
    const snaps = ['2024-06-30T20:00:00Z', '2024-06-30T08:00:00Z', '2024-06-29T20:00:00Z', '2024-05-31T20:00:00Z'].map((t) => at(t));
    expect(
      reasonsOf(
        snaps,
        {
          keepYearly: 1,
          keepMonthly: 2,
          keepWeekly: 1,
          keepDaily: 2,
          keepHourly: 1,
          keepLast: 1,
          keepWithin: '1d',
          keepWithinDaily: '1y',
          keepWithinMonthly: '1y',
        },
        { resticVersion: '0.14' },
      ),
    ).toEqual({
      '2024-06-30T20:00:00Z': [
        'within 1d',
        'last snapshot',
        'hourly snapshot',
        'daily snapshot',
        'weekly snapshot',
        'monthly snapshot',
        'yearly snapshot',
        'daily within 1y',
        'monthly within 1y',
      ],
      '2024-06-30T08:00:00Z': ['within 1d'],
      '2024-06-29T20:00:00Z': ['daily snapshot', 'daily within 1y'],
      '2024-05-31T20:00:00Z': ['monthly snapshot', 'daily within 1y', 'monthly within 1y'],
    });
  });

  it("the documentation's --keep-daily 7 --keep-weekly 5 --keep-monthly 12 --keep-yearly 75 over three years of daily backups", () => {
    const snaps = [];
    for (let t = Date.UTC(2022, 0, 1, 12); t <= Date.UTC(2024, 11, 31, 12); t += 86_400_000)
      snaps.push({ id: new Date(t).toISOString().slice(0, 10), time: new Date(t) });
    const r = run(snaps, { keepDaily: 7, keepWeekly: 5, keepMonthly: 12, keepYearly: 75 }, { resticVersion: '0.14' });
    const reasons = Object.fromEntries(r.keep.map((k) => [k.id, k.reasons]));
    const count = (reason: string) => r.keep.filter((k) => k.reasons.includes(reason)).length;
    expect([count('daily snapshot'), count('weekly snapshot'), count('monthly snapshot'), count('yearly snapshot')]).toEqual([7, 5, 12, 3]);
    expect(reasons['2024-12-31']).toEqual(['daily snapshot', 'weekly snapshot', 'monthly snapshot', 'yearly snapshot']);
    expect(reasons['2024-12-29']).toEqual(['daily snapshot', 'weekly snapshot']); // a Sunday among the dailies
    expect(reasons['2024-12-22']).toEqual(['weekly snapshot']);
    expect(reasons['2024-01-31']).toEqual(['monthly snapshot']);
    expect(reasons['2023-12-31']).toEqual(['yearly snapshot']); // the 12 monthlies are Jan-Dec 2024
    expect(reasons['2022-12-31']).toEqual(['yearly snapshot']);
    // 7 dailies; 3 more weeklies (12-29 is a daily, 12-31 too); 11 more monthlies; 2 more yearlies.
    expect(r.keep).toHaveLength(7 + 3 + 11 + 2);
  });
});

describe('applyRetention: the oldest backup (restic 0.16+ keeps it while a rule has counts left)', () => {
  const snaps = ['2024-09-01T10:00:00Z', '2024-05-01T10:00:00Z', '2024-02-01T10:00:00Z'].map((t) => at(t));

  it('0.14 keeps only the newest backup of the year; 0.16 also the oldest; 0.18 says so in the reason', () => {
    expect(reasonsOf(snaps, { keepYearly: 5 }, { resticVersion: '0.14' })).toEqual({ '2024-09-01T10:00:00Z': ['yearly snapshot'] });
    expect(reasonsOf(snaps, { keepYearly: 5 }, { resticVersion: '0.16' })).toEqual({
      '2024-09-01T10:00:00Z': ['yearly snapshot'],
      '2024-02-01T10:00:00Z': ['yearly snapshot'],
    });
    expect(reasonsOf(snaps, { keepYearly: 5 })).toEqual({
      '2024-09-01T10:00:00Z': ['yearly snapshot'],
      '2024-02-01T10:00:00Z': ['oldest yearly snapshot'],
    });
  });

  it('not when the rule has used up its count', () => {
    expect(kept(snaps, { keepYearly: 1 })).toEqual(['2024-09-01T10:00:00Z']);
    expect(kept(snaps, { keepMonthly: 2 })).toEqual(['2024-09-01T10:00:00Z', '2024-05-01T10:00:00Z']);
    expect(reasonsOf(snaps, { keepMonthly: 3 })['2024-02-01T10:00:00Z']).toEqual(['monthly snapshot']); // its own bucket: no "oldest"
  });

  it('0.18 applies it to the keep-within-* rules too (when the oldest backup is within the duration)', () => {
    const days = ['2024-09-03T10:00:00Z', '2024-09-02T18:00:00Z', '2024-09-02T10:00:00Z'].map((t) => at(t));
    expect(reasonsOf(days, { keepWithinDaily: '7d' }, { resticVersion: '0.16' })).toEqual({
      '2024-09-03T10:00:00Z': ['daily within 7d'],
      '2024-09-02T18:00:00Z': ['daily within 7d'],
    });
    expect(reasonsOf(days, { keepWithinDaily: '7d' })['2024-09-02T10:00:00Z']).toEqual(['oldest daily within 7d']);
    expect(kept(days, { keepWithinDaily: '1d' })).toEqual(['2024-09-03T10:00:00Z', '2024-09-02T18:00:00Z']); // oldest not within 1d
  });
});

describe('applyRetention: time zones', () => {
  it('cuts days in the plan time zone: 23:30 UTC is the next day in Europe/Paris', () => {
    const snaps = [at('2024-03-14T22:30:00Z'), at('2024-03-14T23:30:00Z')];
    expect(kept(snaps, { keepDaily: 'unlimited' }, ONLY_BUCKETS)).toEqual(['2024-03-14T23:30:00Z']);
    expect(kept(snaps, { keepDaily: 'unlimited' }, { ...ONLY_BUCKETS, timezone: 'Europe/Paris' })).toEqual(['2024-03-14T23:30:00Z', '2024-03-14T22:30:00Z']);
  });

  it('cuts years, months and ISO weeks in the zone, west and east of UTC, including half-hour offsets', () => {
    const newYear = [at('2024-01-01T03:00:00Z'), at('2023-12-31T12:00:00Z')]; // 22:00 and 07:00 on 31 Dec in New York
    expect(kept(newYear, { keepYearly: 5 }, { resticVersion: '0.14' })).toEqual(['2024-01-01T03:00:00Z', '2023-12-31T12:00:00Z']);
    expect(kept(newYear, { keepYearly: 5 }, { timezone: 'America/New_York', resticVersion: '0.14' })).toEqual(['2024-01-01T03:00:00Z']);
    const kolkata = [at('2024-06-30T18:31:00Z'), at('2024-06-30T18:29:00Z')]; // 00:01 on 1 July and 23:59 on 30 June IST
    expect(kept(kolkata, { keepMonthly: 5 }, { resticVersion: '0.14' })).toEqual(['2024-06-30T18:31:00Z']);
    expect(kept(kolkata, { keepMonthly: 5 }, { timezone: 'Asia/Kolkata', resticVersion: '0.14' })).toEqual(['2024-06-30T18:31:00Z', '2024-06-30T18:29:00Z']);
    const sunday = [at('2024-03-10T23:30:00Z'), at('2024-03-10T22:30:00Z')]; // Monday 00:30 and Sunday 23:30 in Paris
    expect(kept(sunday, { keepWeekly: 5 }, { resticVersion: '0.14' })).toEqual(['2024-03-10T23:30:00Z']);
    expect(kept(sunday, { keepWeekly: 5 }, { timezone: 'Europe/Paris', resticVersion: '0.14' })).toHaveLength(2);
  });

  it('DST fall-back: the repeated hour is one hourly bucket in the zone', () => {
    const snaps = [at('2024-10-27T01:30:00Z'), at('2024-10-27T00:30:00Z')]; // 02:30 CET and 02:30 CEST in Paris
    expect(kept(snaps, { keepHourly: 'unlimited' }, ONLY_BUCKETS)).toHaveLength(2);
    expect(reasonsOf(snaps, { keepHourly: 'unlimited' }, { ...ONLY_BUCKETS, timezone: 'Europe/Paris' })).toEqual({
      '2024-10-27T01:30:00Z': ['hourly snapshot'],
    });
  });

  it('DST spring-forward: a 23-hour day is one daily bucket in the zone', () => {
    const snaps = [at('2024-03-31T21:59:00Z'), at('2024-03-30T23:00:00Z')]; // 23:59 CEST and 00:00 CET on 31 March in Paris
    expect(kept(snaps, { keepDaily: 'unlimited' }, ONLY_BUCKETS)).toHaveLength(2);
    expect(kept(snaps, { keepDaily: 'unlimited' }, { ...ONLY_BUCKETS, timezone: 'Europe/Paris' })).toEqual(['2024-03-31T21:59:00Z']);
  });

  it('rejects an unknown time zone', () => {
    expect(() => run([at('2024-01-01T00:00:00Z')], { keepLast: 1 }, { timezone: 'Mars/Olympus' })).toThrow(DrError);
  });
});

describe('applyRetention: keepWithin', () => {
  it('is measured from the newest backup, not from now, and keeps only backups strictly after the cutoff', () => {
    const snaps = [
      '2020-06-10T12:00:00.000Z',
      '2020-06-09T00:00:00.000Z',
      '2020-06-08T12:00:00.001Z',
      '2020-06-08T12:00:00.000Z',
      '2020-06-01T00:00:00.000Z',
    ].map((t) => at(t));
    const r = run(snaps, { keepWithin: '2d' });
    expect(r.keep).toEqual([
      { id: '2020-06-10T12:00:00.000Z', reasons: ['within 2d'] },
      { id: '2020-06-09T00:00:00.000Z', reasons: ['within 2d'] },
      { id: '2020-06-08T12:00:00.001Z', reasons: ['within 2d'] },
    ]);
    expect(r.remove.map((s) => s.id)).toEqual(['2020-06-08T12:00:00.000Z', '2020-06-01T00:00:00.000Z']);
  });

  it('subtracts months like Go AddDate: 31 March minus 1 month is 2 March in a leap year', () => {
    const snaps = ['2024-03-31T12:00:00Z', '2024-03-02T12:01:00Z', '2024-03-02T11:59:00Z', '2024-02-29T13:00:00Z'].map((t) => at(t));
    expect(kept(snaps, { keepWithin: '1m' })).toEqual(['2024-03-31T12:00:00Z', '2024-03-02T12:01:00Z']);
    expect(run(snaps, { keepWithin: '1m' }).keep[0].reasons).toEqual(['within 1m']);
  });

  it('counts days on the wall clock and hours in elapsed time: 1d and 24h differ across a DST change', () => {
    // Paris: newest 12:00 CEST on 30 March 2025 (a 23-hour day). 1d: 12:00 CET the day before (11:00Z); 24h: 10:00Z.
    const snaps = [at('2025-03-30T10:00:00Z'), at('2025-03-29T10:30:00Z'), at('2025-03-29T09:30:00Z')];
    expect(kept(snaps, { keepWithin: '1d' }, { timezone: 'Europe/Paris' })).toEqual(['2025-03-30T10:00:00Z']);
    expect(kept(snaps, { keepWithin: '24h' }, { timezone: 'Europe/Paris' })).toEqual(['2025-03-30T10:00:00Z', '2025-03-29T10:30:00Z']);
    expect(kept(snaps, { keepWithin: '1d' })).toEqual(['2025-03-30T10:00:00Z', '2025-03-29T10:30:00Z']);
  });

  it('resolves a cutoff on a wall time skipped or repeated by DST as Go time.Date does', () => {
    // Newest 02:30 CEST on 1 April 2024; 1d earlier is 02:30 on 31 March, which Paris skips: Go makes it 03:30 CEST (01:30Z).
    const spring = [at('2024-04-01T00:30:00Z'), at('2024-03-31T01:45:00Z'), at('2024-03-31T01:15:00Z')];
    expect(kept(spring, { keepWithin: '1d' }, { timezone: 'Europe/Paris' })).toEqual(['2024-04-01T00:30:00Z', '2024-03-31T01:45:00Z']);
    // New York skips 02:30 on 10 March 2024; Go makes it 01:30 EST (06:30Z).
    const springNy = [at('2024-03-11T06:30:00Z'), at('2024-03-10T06:45:00Z'), at('2024-03-10T06:15:00Z')];
    expect(kept(springNy, { keepWithin: '1d' }, { timezone: 'America/New_York' })).toEqual(['2024-03-11T06:30:00Z', '2024-03-10T06:45:00Z']);
    // Newest 02:30 CET on 28 October 2024; 02:30 on the 27th happens twice: Go takes the second one (CET, 01:30Z).
    const fall = [at('2024-10-28T01:30:00Z'), at('2024-10-27T01:45:00Z'), at('2024-10-27T00:45:00Z')];
    expect(kept(fall, { keepWithin: '1d' }, { timezone: 'Europe/Paris' })).toEqual(['2024-10-28T01:30:00Z', '2024-10-27T01:45:00Z']);
  });

  it('ignores backups dated in the future when finding the newest one (and keeps them)', () => {
    const snaps = [at('2024-07-01T00:00:00Z'), at('2024-05-31T12:00:00Z'), at('2024-05-30T12:00:00Z'), at('2024-05-20T12:00:00Z')];
    const now = new Date('2024-06-01T00:00:00Z');
    expect(kept(snaps, { keepWithin: '3d' }, { now })).toEqual(['2024-07-01T00:00:00Z', '2024-05-31T12:00:00Z', '2024-05-30T12:00:00Z']);
    expect(kept(snaps, { keepWithin: '3d' })).toEqual(['2024-07-01T00:00:00Z']); // with NOW (2030) nothing is in the future
    expect(kept(snaps, { keepWithin: '3d' }, { now: new Date('2000-01-01T00:00:00Z') })).toHaveLength(4); // all in the future
  });

  it('keeps everything for durations reaching before the earliest representable date', () => {
    expect(kept([at('2024-01-01T00:00:00Z'), at('1970-01-01T00:00:00Z')], { keepWithin: '999999y' })).toHaveLength(2);
  });
});

describe('applyRetention: keepWithin<Unit>', () => {
  it('keeps the newest backup of each bucket within the duration of the newest backup', () => {
    const snaps = ['2024-06-10T20:00:00Z', '2024-06-10T08:00:00Z', '2024-06-09T20:00:00Z', '2024-06-09T08:00:00Z', '2024-06-07T20:00:00Z'].map((t) => at(t));
    expect(reasonsOf(snaps, { keepWithinDaily: '2d' })).toEqual({
      '2024-06-10T20:00:00Z': ['daily within 2d'],
      '2024-06-09T20:00:00Z': ['daily within 2d'],
    });
    expect(kept(snaps, { keepWithinHourly: '1d12h' })).toEqual(['2024-06-10T20:00:00Z', '2024-06-10T08:00:00Z', '2024-06-09T20:00:00Z']); // 06-09 08:00 is the cutoff itself
    expect(kept(snaps, { keepWithinHourly: '1d13h' })).toEqual([
      '2024-06-10T20:00:00Z',
      '2024-06-10T08:00:00Z',
      '2024-06-09T20:00:00Z',
      '2024-06-09T08:00:00Z',
    ]);
    expect(reasonsOf(snaps, { keepWithinWeekly: '1m', keepWithinMonthly: '1y', keepWithinYearly: '75y' })['2024-06-10T20:00:00Z']).toEqual([
      'weekly within 1m',
      'monthly within 1y',
      'yearly within 75y',
    ]);
  });
});

describe('applyRetention: ties and input', () => {
  it('backups with the same time keep their input order (the first one counts as the newer)', () => {
    const a = { id: 'a', time: new Date('2024-01-01T10:00:00Z') };
    const b = { id: 'b', time: new Date('2024-01-01T10:00:00Z') };
    expect(kept([a, b], { keepLast: 1 })).toEqual(['a']);
    expect(kept([b, a], { keepLast: 1 })).toEqual(['b']);
    expect(kept([b, a], { keepDaily: 1 }, { resticVersion: '0.14' })).toEqual(['b']);
  });

  it('an empty policy keeps everything; so do zero counts and zero durations', () => {
    const snaps = [at('2024-01-01T10:00:00Z'), at('2024-01-02T10:00:00Z')];
    expect(run(snaps, {})).toEqual({
      keep: [
        { id: '2024-01-02T10:00:00Z', reasons: ['policy is empty'] },
        { id: '2024-01-01T10:00:00Z', reasons: ['policy is empty'] },
      ],
      remove: [],
    });
    expect(run(snaps, { keepLast: 0, keepWithin: '0d' }).remove).toEqual([]);
    expect(isEmptyRetentionPolicy({ keepDaily: 0, keepWithinDaily: '0y0h' })).toBe(true);
    expect(isEmptyRetentionPolicy({ keepDaily: 1 })).toBe(false);
  });

  it('handles no backups, and rejects repeated ids and invalid times', () => {
    expect(run([], { keepLast: 1 })).toEqual({ keep: [], remove: [] });
    expect(() => run([at('2024-01-01T00:00:00Z', 'x'), at('2024-01-02T00:00:00Z', 'x')], { keepLast: 1 })).toThrow(/appears twice/);
    expect(() => run([{ id: 'x', time: new Date('nope') }], { keepLast: 1 })).toThrow(/invalid time/);
  });
});

describe('RetentionPolicy validation', () => {
  const check = async (plain: object) => {
    const errors = await validate(plainToInstance(RetentionPolicy, plain), { whitelist: true, forbidNonWhitelisted: true });
    return errors.flatMap((e) => Object.values(e.constraints ?? {}));
  };

  it('accepts counts, "unlimited", -1 and restic durations', async () => {
    expect(await check({})).toEqual([]);
    expect(await check({ keepLast: 3, keepHourly: 0, keepDaily: 'unlimited', keepWeekly: -1, keepMonthly: 12, keepYearly: 75 })).toEqual([]);
    expect(
      await check({
        keepWithin: '2y5m7d3h',
        keepWithinHourly: '3d',
        keepWithinDaily: '7d',
        keepWithinWeekly: '1m',
        keepWithinMonthly: '1y',
        keepWithinYearly: '75y',
      }),
    ).toEqual([]);
  });

  it('rejects bad values with a message that says what is expected', async () => {
    expect(await check({ keepDaily: -2 })).toEqual(['keepDaily must be a whole number from 0 to 999999, or "unlimited" (or -1) to keep all']);
    for (const bad of [1.5, '7', 'all', 1_000_000]) expect(await check({ keepLast: bad })).toHaveLength(1);
    const [message] = await check({ keepWithin: '1w' });
    expect(message).toMatch(/^keepWithin must be a restic duration such as "2y5m7d3h"/);
    for (const bad of ['', '7', 'd', '-1d', '1.5d', '1d2d', '1d 2h', 7, '1000000h']) expect(await check({ keepWithinDaily: bad })).toHaveLength(1);
    expect(await check({ keepForever: true })).toHaveLength(1);
  });

  it('applyRetention validates too, reporting every bad field', () => {
    try {
      run([at('2024-01-01T00:00:00Z')], { keepLast: -5, keepWithin: '1w' });
      throw new Error('no error');
    } catch (err) {
      expect(err).toBeInstanceOf(DrError);
      expect((err as DrError).code).toBe('VALIDATION_FAILED');
      expect((err as DrError).details.map((d) => d.field)).toEqual(['keepLast', 'keepWithin']);
    }
  });

  it('parses and prints restic durations', () => {
    expect(parseResticDuration('2y5m7d3h')).toEqual({ years: 2, months: 5, days: 7, hours: 3 });
    expect(formatResticDuration(parseResticDuration('3h2y'))).toBe('2y3h');
    expect(formatResticDuration(parseResticDuration(' 0y14d '))).toBe('14d');
    expect(() => parseResticDuration('5w')).toThrow(DrError);
  });
});

// ---------------------------------------------------------------------------------------------------------------
// The check that matters: the same decisions as the real restic binary.
//
// One throw-away repository (restic init, then a cheap scrypt key so each restic command opens it in ~0.1 s), one
// restic host per scenario (forget groups snapshots by host, so each scenario is its own snapshot group):
//  - real `restic backup --time <wall clock> --host <scenario>` with TZ=<zone> for the small scenarios: restic's
//    own reading of wall clocks, including those a DST change skips;
//  - for the long histories, copies of one of those real snapshots with only the time changed (written as restic
//    writes snapshots: see ResticRepo.cloneSnapshot), ~250 of them in milliseconds instead of minutes.
// Then `restic forget --dry-run --json --host <scenario> <flags>` with TZ=<zone> for each policy, and the kept
// list, the removed list (both in restic's order) and every reason must equal applyRetention's, run with the
// semantics of the installed restic (0.14 on Debian 12).

/**
 * About two years of backups (wall clocks in the zone under test), irregular on purpose: several per day on some
 * days, gaps of weeks, year ends and ISO week 1 starting in December, the EU and US DST days (with wall times that
 * a DST change skips or repeats), a leap day, and a newest backup on 30 March 2025 (a 23-hour day in Paris), a
 * month after "30 February", for the keep-within edges.
 */
const HISTORY = [
  '2022-12-31 23:59:00',
  '2023-01-01 00:00:30',
  '2023-01-02 00:10:00',
  '2023-01-08 23:30:00',
  '2023-01-09 00:30:00',
  '2023-01-31 23:45:00',
  '2023-02-01 00:15:00',
  '2023-02-28 09:00:00',
  '2023-03-12 01:10:00',
  '2023-03-12 02:30:00',
  '2023-03-12 03:50:00',
  '2023-03-26 01:10:00',
  '2023-03-26 02:30:00',
  '2023-03-26 03:50:00',
  '2023-04-30 23:00:00',
  '2023-05-01 01:00:00',
  '2023-06-01 10:00:00',
  '2023-07-05 10:00:00',
  '2023-07-05 11:15:00',
  '2023-08-20 20:00:00',
  '2023-09-30 23:59:59',
  '2023-10-01 00:00:01',
  '2023-10-29 01:59:00',
  '2023-10-29 02:30:00',
  '2023-10-29 03:01:00',
  '2023-11-05 00:59:00',
  '2023-11-05 01:30:00',
  '2023-11-05 02:01:00',
  '2023-11-30 12:00:00',
  '2023-12-31 22:30:00',
  '2023-12-31 23:30:00',
  '2024-01-01 00:30:00',
  '2024-01-07 23:59:00',
  '2024-01-08 00:01:00',
  '2024-02-29 12:00:00',
  '2024-03-01 00:00:00',
  '2024-03-10 01:59:00',
  '2024-03-10 02:15:00',
  '2024-03-10 03:45:00',
  '2024-03-31 01:59:00',
  '2024-03-31 02:15:00',
  '2024-03-31 03:45:00',
  '2024-05-31 23:30:00',
  '2024-06-01 00:30:00',
  '2024-06-30 12:00:00',
  '2024-08-05 21:00:00',
  '2024-09-15 10:00:00',
  '2024-10-27 01:59:00',
  '2024-10-27 02:30:00',
  '2024-10-27 03:01:00',
  '2024-11-03 00:59:00',
  '2024-11-03 01:30:00',
  '2024-11-03 02:01:00',
  '2024-11-30 23:00:00',
  '2024-12-01 01:00:00',
  '2024-12-29 23:30:00',
  '2024-12-30 00:30:00',
  '2024-12-31 23:59:00',
  '2025-01-01 00:01:00',
  '2025-01-06 00:00:00',
  '2025-01-31 12:00:00',
  '2025-02-28 12:00:00',
  '2025-03-01 12:00:00',
  '2025-03-02 11:00:00',
  '2025-03-02 13:00:00',
  '2025-03-09 02:30:00',
  '2025-03-09 03:10:00',
  '2025-03-20 09:00:00',
  '2025-03-27 08:00:00',
  '2025-03-28 20:00:00',
  '2025-03-29 09:00:00',
  '2025-03-29 11:30:00',
  '2025-03-29 12:30:00',
  '2025-03-30 01:30:00',
  '2025-03-30 02:30:00',
  '2025-03-30 09:10:00',
  '2025-03-30 09:40:00',
  '2025-03-30 10:05:00',
  '2025-03-30 11:00:00',
  '2025-03-30 12:00:00',
];

interface Comparison {
  flags: string[];
  policy: RetentionPolicy;
  /** Only compared with restic 0.16+ (`unlimited`). */
  needsUnlimited?: boolean;
}

const POLICIES: Comparison[] = [
  { flags: ['--keep-last', '5'], policy: { keepLast: 5 } },
  { flags: ['--keep-hourly', '12'], policy: { keepHourly: 12 } },
  { flags: ['--keep-daily', '10'], policy: { keepDaily: 10 } },
  { flags: ['--keep-weekly', '8'], policy: { keepWeekly: 8 } },
  { flags: ['--keep-monthly', '12'], policy: { keepMonthly: 12 } },
  { flags: ['--keep-yearly', '2'], policy: { keepYearly: 2 } },
  // Counts beyond the number of buckets: every hour/day/week/month of the history is compared, DST nights included.
  { flags: ['--keep-hourly', '1000'], policy: { keepHourly: 1000 } },
  { flags: ['--keep-daily', '1000'], policy: { keepDaily: 1000 } },
  { flags: ['--keep-weekly', '200'], policy: { keepWeekly: 200 } },
  { flags: ['--keep-monthly', '100'], policy: { keepMonthly: 100 } },
  {
    flags: ['--keep-daily', '7', '--keep-weekly', '5', '--keep-monthly', '12', '--keep-yearly', '75'],
    policy: { keepDaily: 7, keepWeekly: 5, keepMonthly: 12, keepYearly: 75 },
  },
  { flags: ['--keep-within', '2y5m7d3h'], policy: { keepWithin: '2y5m7d3h' } },
  { flags: ['--keep-within', '1y2m'], policy: { keepWithin: '1y2m' } },
  { flags: ['--keep-within', '1m'], policy: { keepWithin: '1m' } },
  { flags: ['--keep-within', '1d'], policy: { keepWithin: '1d' } },
  { flags: ['--keep-within', '24h'], policy: { keepWithin: '24h' } },
  {
    flags: ['--keep-within-daily', '7d', '--keep-within-weekly', '1m', '--keep-within-monthly', '1y', '--keep-within-yearly', '75y'],
    policy: { keepWithinDaily: '7d', keepWithinWeekly: '1m', keepWithinMonthly: '1y', keepWithinYearly: '75y' },
  },
  { flags: ['--keep-within-hourly', '3d'], policy: { keepWithinHourly: '3d' } },
  { flags: ['--keep-within-hourly', '5y', '--keep-within-daily', '5y'], policy: { keepWithinHourly: '5y', keepWithinDaily: '5y' } },
  { flags: ['--keep-last', '3', '--keep-daily', '10', '--keep-within', '14d'], policy: { keepLast: 3, keepDaily: 10, keepWithin: '14d' } },
  {
    flags: ['--keep-hourly', '24', '--keep-daily', '30', '--keep-weekly', '8', '--keep-monthly', '6', '--keep-within', '1y', '--keep-within-weekly', '6m'],
    policy: { keepHourly: 24, keepDaily: 30, keepWeekly: 8, keepMonthly: 6, keepWithin: '1y', keepWithinWeekly: '6m' },
  },
  { flags: ['--keep-monthly', 'unlimited', '--keep-daily', '3'], policy: { keepMonthly: 'unlimited', keepDaily: 3 }, needsUnlimited: true },
];

interface Scenario {
  host: string;
  timezone: string;
  /** Made by `restic backup --time <wall clock>` with TZ=<zone>; our id is the wall clock. */
  backups?: readonly string[];
  /** Copies of a real snapshot at these instants (see {@link ResticRepo.cloneSnapshot}); our id is the RFC 3339 time in the zone. */
  clones?: readonly Date[];
  policies: Comparison[];
}

/** The history as instants in `timezone` (a wall clock that DST skips or repeats resolves as restic would), plus `extra`. */
const history = (timezone: string, extra: string[] = []) => [...HISTORY.map((w) => zonedWallTime(w, timezone)), ...extra.map((t) => new Date(t))];

const SCENARIOS: Scenario[] = [
  // The history in three zones. The extra instants are the other 02:30 (or 01:30) of each DST fall-back night, so
  // that the repeated hour holds two backups.
  { host: 'paris', timezone: 'Europe/Paris', clones: history('Europe/Paris', ['2023-10-29T00:30:00Z', '2024-10-27T00:30:00Z']), policies: POLICIES },
  { host: 'newyork', timezone: 'America/New_York', clones: history('America/New_York', ['2023-11-05T06:30:00Z', '2024-11-03T06:30:00Z']), policies: POLICIES },
  {
    // UTC+10:30, and +11 in (southern) summer: DST moves the clock by 30 minutes, on the first Sunday of April and October.
    host: 'lordhowe',
    timezone: 'Australia/Lord_Howe',
    clones: history('Australia/Lord_Howe', ['2023-04-01T14:45:00Z', '2023-04-01T15:15:00Z', '2024-10-05T15:20:00Z', '2024-10-05T15:40:00Z']),
    policies: POLICIES.filter((c) =>
      [
        '--keep-hourly 1000',
        '--keep-daily 1000',
        '--keep-weekly 200',
        '--keep-monthly 100',
        '--keep-within 1d',
        '--keep-within 24h',
        '--keep-within-hourly 5y --keep-within-daily 5y',
      ].includes(c.flags.join(' ')),
    ),
  },
  {
    // restic's documentation example: a backup every Sunday for 12 weeks, `forget --keep-daily 4`.
    host: 'doc',
    timezone: 'Europe/Paris',
    backups: ['09-01', '09-08', '09-15', '09-22', '09-29', '10-06', '10-13', '10-20', '10-27', '11-03', '11-10', '11-17'].map((d) => `2019-${d} 11:00:00`),
    policies: [{ flags: ['--keep-daily', '4'], policy: { keepDaily: 4 } }],
  },
  {
    // keep-within cutoffs on a wall time that DST skips: 02:30 on 31 March 2024 in Paris, on 10 March in New York.
    host: 'dst-paris-spring',
    timezone: 'Europe/Paris',
    backups: ['2024-03-30 02:30:00', '2024-03-31 01:15:00', '2024-03-31 03:15:00', '2024-03-31 03:45:00', '2024-04-01 02:30:00'],
    policies: [
      { flags: ['--keep-within', '1d'], policy: { keepWithin: '1d' } },
      { flags: ['--keep-within', '1d1h'], policy: { keepWithin: '1d1h' } },
    ],
  },
  {
    host: 'dst-newyork',
    timezone: 'America/New_York',
    backups: ['2024-03-10 01:15:00', '2024-03-10 01:45:00', '2024-03-10 03:15:00', '2024-03-11 02:30:00'],
    policies: [{ flags: ['--keep-within', '1d'], policy: { keepWithin: '1d' } }],
  },
  {
    // ... and on one that it repeats: 02:30 on 27 October 2024 in Paris (02:45 CEST is 00:45Z, 02:45 CET 01:45Z).
    host: 'dst-paris-fall',
    timezone: 'Europe/Paris',
    backups: ['2024-10-28 02:30:00'],
    clones: [new Date('2024-10-27T00:45:00Z'), new Date('2024-10-27T01:45:00Z')],
    policies: [{ flags: ['--keep-within', '1d'], policy: { keepWithin: '1d' } }],
  },
];

const restic = findRestic();
if (!restic) console.warn('retention-policy.spec: SKIPPING the comparison with real restic: no `restic` binary on PATH (apt-get install restic)');
if (!restic && process.env.CI) {
  // CI installs restic (.ci/run): there, a missing binary must not quietly skip the check that matters.
  it('restic is installed in CI', () => {
    throw new Error('no `restic` binary on PATH in CI: .ci/run must install the Debian package restic');
  });
}
const semantics: ResticSemantics = !restic ? '0.18' : restic.major > 0 || restic.minor >= 18 ? '0.18' : restic.minor >= 16 ? '0.16' : '0.14';

(restic ? describe : describe.skip)(`applyRetention agrees with the real restic binary (${restic ? restic.text : 'SKIPPED: restic is not installed'})`, () => {
  let dir: string;
  let repo: ResticRepo;
  /** Per host: our backups (ids: see {@link Scenario}), and restic's snapshot id → our id. */
  const ours = new Map<string, { id: string; time: Date }[]>();
  const idOf = new Map<string, string>();
  /** `restic forget --dry-run --json` of each scenario and policy. */
  const forgets = new Map<string, ForgetGroup | Error>();
  const key = (s: Scenario, c: Comparison) => `${s.host} ${c.flags.join(' ')}`;
  const skipped = (c: Comparison) => c.needsUnlimited === true && semantics === '0.14';

  beforeAll(async () => {
    const started = Date.now();
    dir = mkdtempSync(join(tmpdir(), 'retention-restic-'));
    repo = await ResticRepo.create(dir);
    const labels = new Map<string, string>(); // restic short id of a real backup -> our id
    for (const s of SCENARIOS) {
      if (s.backups) for (const [wall, shortId] of await repo.backupAt(s.host, s.timezone, s.backups)) labels.set(shortId, wall);
    }
    const made = Date.now() - started;
    const template = (await repo.snapshots('doc'))[0];
    if (!/\+02:00$/.test(template.time)) {
      // Without time zone data restic (Go) silently works in UTC, and the comparison would be meaningless.
      throw new Error(`restic did not apply TZ=Europe/Paris (got ${template.time}): is the tzdata package installed?`);
    }
    let cloned = 0;
    for (const s of SCENARIOS) {
      if (s.clones) repo.cloneSnapshot(template, s.host, s.timezone, s.clones);
      cloned += s.clones?.length ?? 0;
      const cloneIds = new Map((s.clones ?? []).map((t) => [t.getTime(), rfc3339InZone(t, s.timezone)]));
      const list = (await repo.snapshots(s.host)).map((sn) => {
        const time = new Date(sn.time);
        // a real backup by its id, a copy by its time
        const label = [...labels].find(([shortId]) => sn.id.startsWith(shortId))?.[1] ?? cloneIds.get(time.getTime());
        if (!label) throw new Error(`restic snapshot ${sn.id} (${sn.time}) of ${s.host} was not made by this test`);
        idOf.set(sn.id, label);
        return { id: label, time };
      });
      expect(list).toHaveLength((s.backups?.length ?? 0) + (s.clones?.length ?? 0));
      expect(new Set(list.map((b) => b.time.getTime())).size).toBe(list.length); // no two wall clocks resolved to the same instant
      ours.set(s.host, list);
    }
    // Every `restic forget --dry-run` up front, a few at a time; the tests below compare.
    const runs = SCENARIOS.flatMap((s) => s.policies.filter((c) => !skipped(c)).map((c) => ({ s, c })));
    let next = 0;
    const worker = async () => {
      while (next < runs.length) {
        const { s, c } = runs[next++];
        forgets.set(
          key(s, c),
          await repo.forgetDryRun(s.host, s.timezone, c.flags).catch((err: unknown) => (err instanceof Error ? err : new Error(String(err)))),
        );
      }
    };
    await Promise.all([worker(), worker(), worker(), worker()]);
    console.log(
      `retention-policy.spec: ${labels.size} backups made with restic backup --time in ${made} ms, ${cloned} copies, ` +
        `${runs.length} forget runs; ${Date.now() - started} ms in all; ${restic?.text}`,
    );
  }, 180_000);

  afterAll(() => {
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  for (const s of SCENARIOS) {
    for (const c of s.policies) {
      const title = `${s.host} (${s.timezone}): forget ${c.flags.join(' ')}`;
      if (skipped(c)) {
        it.skip(`${title} (restic ${restic?.major}.${restic?.minor} has no "unlimited")`, () => undefined);
        continue;
      }
      it(title, async () => {
        const group = forgets.get(key(s, c));
        if (!group || group instanceof Error) throw group ?? new Error('restic forget did not run');
        const label = (id: string) => idOf.get(id) ?? `unknown restic snapshot ${id}`;
        const keep = group.keep ?? [];
        // restic lists the reasons in the order of `keep`; their snapshot objects carry no id, so check the times.
        const reasons = group.reasons ?? [];
        expect(reasons.map((r) => new Date(r.snapshot.time).getTime())).toEqual(keep.map((sn) => new Date(sn.time).getTime()));
        const theirs = {
          keep: keep.map((sn) => label(sn.id)),
          remove: (group.remove ?? []).map((sn) => label(sn.id)),
          reasons: Object.fromEntries(reasons.map((r, i) => [label(keep[i].id), r.matches])),
        };
        const result = applyRetention(ours.get(s.host) ?? [], c.policy, { timezone: s.timezone, now: new Date(), resticVersion: semantics });
        expect({
          keep: result.keep.map((k) => k.id),
          remove: result.remove.map((r) => r.id),
          reasons: Object.fromEntries(result.keep.map((k) => [k.id, k.reasons])),
        }).toEqual(theirs);
        expect(theirs.keep.length).toBeGreaterThan(0);
      });
    }
  }

  it('the documentation example keeps exactly what the documentation shows', () => {
    const group = forgets.get('doc --keep-daily 4');
    if (!group || group instanceof Error) throw group ?? new Error('restic forget did not run');
    expect((group.keep ?? []).map((sn) => idOf.get(sn.id))).toEqual([
      '2019-11-17 11:00:00',
      '2019-11-10 11:00:00',
      '2019-11-03 11:00:00',
      '2019-10-27 11:00:00',
    ]);
  });
});
