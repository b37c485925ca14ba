import { IsOptional, ValidateBy, ValidationOptions, buildMessage } from 'class-validator';
import { DrError, FieldProblem } from '../errors/dr-error';

/*
 * Backup retention with the semantics of restic's `forget --keep-*` policy.
 *
 * Source of the algorithm (restic, BSD-2-Clause), read for this port:
 *  - `internal/restic/snapshot_policy.go` (moved to `internal/data/snapshot_policy.go` on restic's master):
 *    `ApplyPolicy`, the bucket functions `ymdh`/`ymd`/`yw`/`ym`/`y`/`always`, `findLatestTimestamp`, `ExpirePolicy.Empty`;
 *  - `internal/restic/duration.go` (`internal/data/duration.go`): `ParseDuration`, `Duration.String`;
 *  - `cmd/restic/cmd_forget.go`: `ForgetPolicyCount` ("unlimited" = -1), `verifyForgetOptions` (no negative values);
 *  - `doc/060_forget.rst`: "Removing snapshots according to a policy";
 *  - Go's `time.Time.AddDate` / `time.Date` / `time.Time.ISOWeek` for the calendar arithmetic restic relies on.
 * This file is an independent TypeScript implementation of that behaviour, not a copy of restic's code.
 */

/** A `keep*` count: a whole number of buckets (0 = rule off), or `'unlimited'` (restic ≥ 0.16 `--keep-* unlimited`; `-1` is accepted as its alias). */
export type KeepCount = number | 'unlimited';

/**
 * Which restic release's `forget` to mirror. The releases differ only in what happens to the OLDEST backup:
 *  - `'0.14'`: restic 0.14/0.15 (Debian 12's `restic`). The oldest backup is kept only if a rule picks it like any other.
 *  - `'0.16'`: restic 0.16/0.17. A `keep-{last,hourly,daily,weekly,monthly,yearly}` rule whose count is not used up
 *    when it reaches the oldest backup keeps it too (restic PR #4366), with the rule's plain reason.
 *  - `'0.18'` (default; restic 0.18 and the current docs): the same, and the `keep-within-*` rules do it as well
 *    (for an oldest backup within their duration); when the oldest backup is kept only for being the oldest, the
 *    reason says so: `oldest yearly snapshot`, `oldest daily within 7d` (restic PR #5039).
 * `'unlimited'` counts are honoured in every mode (in restic 0.14 a negative count silently disabled the rule).
 */
export type ResticSemantics = '0.14' | '0.16' | '0.18';

export interface RetentionOptions {
  /** IANA time zone in which hours, days, ISO weeks, months and years are cut (restic uses the machine's local zone). */
  timezone: string;
  /**
   * The current time. Backups dated after it are never used as the "latest" backup that the `keepWithin*` durations
   * are measured from (restic `findLatestTimestamp`). Defaults to the time of the call; pass it for a fully deterministic result.
   */
  now?: Date;
  /** Which restic release to mirror; default `'0.18'`. */
  resticVersion?: ResticSemantics;
}

/** What to keep and what to remove. Both lists are ordered newest first, as restic lists them. */
export interface RetentionResult {
  /** Every kept backup with all the rules that keep it, in restic's order and wording (e.g. `daily snapshot`, `within 1y2m`). */
  keep: { id: string; reasons: string[] }[];
  remove: { id: string }[];
}

/** A duration as restic's `--keep-within*` options take it: whole years, months, days and hours. */
export interface ResticDuration {
  years: number;
  months: number;
  days: number;
  hours: number;
}

const COUNT_FIELDS = ['keepLast', 'keepHourly', 'keepDaily', 'keepWeekly', 'keepMonthly', 'keepYearly'] as const;
const DURATION_FIELDS = ['keepWithin', 'keepWithinHourly', 'keepWithinDaily', 'keepWithinWeekly', 'keepWithinMonthly', 'keepWithinYearly'] as const;
type CountField = (typeof COUNT_FIELDS)[number];
type DurationField = (typeof DURATION_FIELDS)[number];

/** Largest number accepted in a count or in one component of a duration. */
const MAX_NUMBER = 999_999;

const COUNT_MESSAGE = 'must be a whole number from 0 to 999999, or "unlimited" (or -1) to keep all';
const DURATION_MESSAGE =
  'must be a restic duration such as "2y5m7d3h": one or more whole numbers, each followed by its unit ' +
  'y (years), m (months), d (days) or h (hours), each unit at most once, numbers up to 999999';

function isKeepCount(value: unknown): value is KeepCount {
  return value === 'unlimited' || (typeof value === 'number' && Number.isInteger(value) && value >= -1 && value <= MAX_NUMBER);
}

function isResticDuration(value: unknown): value is string {
  return typeof value === 'string' && parseDuration(value) !== null;
}

/** class-validator: a {@link KeepCount}. */
export function IsKeepCount(validationOptions?: ValidationOptions): PropertyDecorator {
  return ValidateBy(
    {
      name: 'isKeepCount',
      validator: { validate: isKeepCount, defaultMessage: buildMessage((each) => `${each}$property ${COUNT_MESSAGE}`, validationOptions) },
    },
    validationOptions,
  );
}

/** class-validator: a restic duration string (see {@link parseResticDuration}). */
export function IsResticDuration(validationOptions?: ValidationOptions): PropertyDecorator {
  return ValidateBy(
    {
      name: 'isResticDuration',
      validator: { validate: isResticDuration, defaultMessage: buildMessage((each) => `${each}$property ${DURATION_MESSAGE}`, validationOptions) },
    },
    validationOptions,
  );
}

/**
 * A backup plan's retention policy, with the meaning of restic's `forget` options (restic `ExpirePolicy`,
 * `doc/060_forget.rst`). Every field is optional; a backup is kept when ANY rule keeps it, everything else is removed.
 *
 * Counts (`keepLast` … `keepYearly`) are numbers of buckets: going from the newest backup to the oldest, the newest
 * backup of each hour/day/ISO week (Monday–Sunday)/month/year that has one is kept, until `n` such buckets were kept;
 * calendar buckets are cut in the plan's time zone and only buckets that contain a backup count.
 * Durations (`keepWithin*`) are measured back from the newest backup (not from now), in calendar years/months/days
 * (wall-clock, like Go's `AddDate`) and then hours (elapsed time).
 *
 * An empty policy (no field set, all counts 0, all durations zero) keeps everything: restic refuses to act on an
 * empty policy, and for a backup service the safe reading of "no retention configured" is "remove nothing".
 */
export class RetentionPolicy {
  /** Keep the `n` newest backups (`--keep-last`). */
  @IsOptional()
  @IsKeepCount()
  keepLast?: KeepCount;

  /** Keep the newest backup of each of the last `n` hours that have one (`--keep-hourly`). */
  @IsOptional()
  @IsKeepCount()
  keepHourly?: KeepCount;

  /** Keep the newest backup of each of the last `n` days that have one (`--keep-daily`). */
  @IsOptional()
  @IsKeepCount()
  keepDaily?: KeepCount;

  /** Keep the newest backup of each of the last `n` ISO weeks (Monday to Sunday) that have one (`--keep-weekly`). */
  @IsOptional()
  @IsKeepCount()
  keepWeekly?: KeepCount;

  /** Keep the newest backup of each of the last `n` months that have one (`--keep-monthly`). */
  @IsOptional()
  @IsKeepCount()
  keepMonthly?: KeepCount;

  /** Keep the newest backup of each of the last `n` years that have one (`--keep-yearly`). */
  @IsOptional()
  @IsKeepCount()
  keepYearly?: KeepCount;

  /** Keep every backup made within this duration before the newest backup, e.g. `2y5m7d3h` (`--keep-within`). */
  @IsOptional()
  @IsResticDuration()
  keepWithin?: string;

  /** Keep the newest backup of every hour within this duration before the newest backup (`--keep-within-hourly`). */
  @IsOptional()
  @IsResticDuration()
  keepWithinHourly?: string;

  /** Keep the newest backup of every day within this duration before the newest backup (`--keep-within-daily`). */
  @IsOptional()
  @IsResticDuration()
  keepWithinDaily?: string;

  /** Keep the newest backup of every ISO week within this duration before the newest backup (`--keep-within-weekly`). */
  @IsOptional()
  @IsResticDuration()
  keepWithinWeekly?: string;

  /** Keep the newest backup of every month within this duration before the newest backup (`--keep-within-monthly`). */
  @IsOptional()
  @IsResticDuration()
  keepWithinMonthly?: string;

  /** Keep the newest backup of every year within this duration before the newest backup (`--keep-within-yearly`). */
  @IsOptional()
  @IsResticDuration()
  keepWithinYearly?: string;
}

/** `s` as a restic duration, or null. Stricter than restic's `ParseDuration` only in refusing repeated units and huge numbers. */
function parseDuration(s: string): ResticDuration | null {
  const text = s.trim();
  if (!/^(\d+[ymdh])+$/.test(text)) return null;
  const d: ResticDuration = { years: 0, months: 0, days: 0, hours: 0 };
  const seen = new Set<string>();
  for (const [, digits, unit] of text.matchAll(/(\d+)([ymdh])/g)) {
    const n = Number(digits);
    if (seen.has(unit) || n > MAX_NUMBER) return null;
    seen.add(unit);
    if (unit === 'y') d.years = n;
    else if (unit === 'm') d.months = n;
    else if (unit === 'd') d.days = n;
    else d.hours = n;
  }
  return d;
}

/**
 * Parses a restic duration (restic `ParseDuration`): `<n>y`, `<n>m` (months), `<n>d`, `<n>h` in any combination,
 * e.g. `2y5m7d3h`. Negative values (which restic's `forget` rejects too) and repeated units are refused.
 * @throws DrError VALIDATION_FAILED naming `field`.
 */
export function parseResticDuration(s: string, field = 'keepWithin'): ResticDuration {
  const d = typeof s === 'string' ? parseDuration(s) : null;
  if (!d) throw DrError.validation([{ field, message: `${field} ${DURATION_MESSAGE}; got ${JSON.stringify(s)}` }]);
  return d;
}

/** restic `Duration.String`: the non-zero parts in the order y, m, d, h (`1y2m`, `7d`, `3h`); `''` for a zero duration. */
export function formatResticDuration(d: ResticDuration): string {
  return (d.years ? `${d.years}y` : '') + (d.months ? `${d.months}m` : '') + (d.days ? `${d.days}d` : '') + (d.hours ? `${d.hours}h` : '');
}

function isZero(d: ResticDuration | null): boolean {
  return !d || (d.years === 0 && d.months === 0 && d.days === 0 && d.hours === 0);
}

interface NormalizedPolicy {
  counts: Record<CountField, number>; // 0 = off, -1 = unlimited
  durations: Record<DurationField, ResticDuration | null>; // null = off
}

/** Validates and normalizes a policy; every problem is reported at once. @throws DrError VALIDATION_FAILED */
function normalizePolicy(policy: RetentionPolicy | null | undefined): NormalizedPolicy {
  const problems: FieldProblem[] = [];
  const source = (policy ?? {}) as Record<string, unknown>;
  const counts = {} as Record<CountField, number>;
  for (const field of COUNT_FIELDS) {
    const value = source[field];
    if (value === undefined || value === null) counts[field] = 0;
    else if (isKeepCount(value)) counts[field] = value === 'unlimited' ? -1 : value;
    else problems.push({ field, message: `${field} ${COUNT_MESSAGE}; got ${JSON.stringify(value)}` });
  }
  const durations = {} as Record<DurationField, ResticDuration | null>;
  for (const field of DURATION_FIELDS) {
    const value = source[field];
    if (value === undefined || value === null) durations[field] = null;
    else {
      const d = typeof value === 'string' ? parseDuration(value) : null;
      if (d) durations[field] = isZero(d) ? null : d;
      else problems.push({ field, message: `${field} ${DURATION_MESSAGE}; got ${JSON.stringify(value)}` });
    }
  }
  if (problems.length) throw DrError.validation(problems);
  return { counts, durations };
}

/**
 * Whether a policy keeps everything because no rule is set (restic `ExpirePolicy.Empty`: all counts 0, all durations zero).
 * @throws DrError VALIDATION_FAILED for an invalid policy.
 */
export function isEmptyRetentionPolicy(policy: RetentionPolicy | null | undefined): boolean {
  return isEmptyPolicy(normalizePolicy(policy));
}

function isEmptyPolicy(p: NormalizedPolicy): boolean {
  return COUNT_FIELDS.every((f) => p.counts[f] === 0) && DURATION_FIELDS.every((f) => p.durations[f] === null);
}

// ---------------------------------------------------------------------------------------------------------------
// Calendar arithmetic in an IANA zone, as Go's time package does it for restic.

interface WallClock {
  year: number;
  month: number; // 1-12
  day: number;
  hour: number;
}

const formatters = new Map<string, Intl.DateTimeFormat>();

function formatterFor(timezone: string): Intl.DateTimeFormat {
  let f = formatters.get(timezone);
  if (!f) {
    f = new Intl.DateTimeFormat('en-US', {
      timeZone: timezone,
      hourCycle: 'h23',
      era: 'short',
      year: 'numeric',
      month: 'numeric',
      day: 'numeric',
      hour: 'numeric',
      minute: 'numeric',
      second: 'numeric',
    });
    formatters.set(timezone, f);
  }
  return f;
}

/** Epoch milliseconds of a proleptic-Gregorian UTC wall clock; out-of-range fields carry over like Go's `time.Date`. */
function utcMillis(year: number, monthIndex: number, day: number, hour = 0, minute = 0, second = 0, ms = 0): number {
  const d = new Date(0);
  d.setUTCFullYear(year, monthIndex, day); // unlike Date.UTC, keeps years 0-99 as they are
  d.setUTCHours(hour, minute, second, ms);
  return d.getTime();
}

interface ZonedParts {
  year: number;
  month: number;
  day: number;
  hour: number;
  minute: number;
  second: number;
}

function zonedParts(ms: number, timezone: string): ZonedParts {
  const parts: Record<string, string> = {};
  for (const p of formatterFor(timezone).formatToParts(new Date(ms))) parts[p.type] = p.value;
  const year = Number(parts.year);
  return {
    year: parts.era === 'BC' || parts.era === 'B' ? 1 - year : year, // Go: year 0 is 1 BC
    month: Number(parts.month),
    day: Number(parts.day),
    hour: Number(parts.hour),
    minute: Number(parts.minute),
    second: Number(parts.second),
  };
}

/** UTC offset of `timezone` at instant `ms`, in milliseconds (whole seconds). */
function offsetAt(ms: number, timezone: string): number {
  const p = zonedParts(ms, timezone);
  return utcMillis(p.year, p.month - 1, p.day, p.hour, p.minute, p.second) - Math.floor(ms / 1000) * 1000;
}

function wallClock(ms: number, timezone: string): WallClock {
  const p = zonedParts(ms, timezone);
  return { year: p.year, month: p.month, day: p.day, hour: p.hour };
}

/**
 * Go's `t.AddDate(years, months, days)` for `t` at `ms` in `timezone`: the wall clock's year, month and day are
 * shifted and normalized (so 31 March minus 1 month is 3 March, or 2 March in a leap year), the time of day is kept,
 * and the result is resolved in the zone the way Go's `time.Date` does it: the offset is looked up at the wall time
 * read as UTC and, if the instant that gives falls in another zone period, looked up again there. A wall time that
 * a DST change skips or repeats therefore resolves as in restic (Paris 02:30 on a spring-forward day becomes 03:30
 * CEST, on a fall-back day 02:30 CET). NaN when the result is outside the range of a JavaScript Date.
 */
function addDate(ms: number, timezone: string, years: number, months: number, days: number): number {
  const p = zonedParts(ms, timezone);
  const subSecond = ms - Math.floor(ms / 1000) * 1000;
  const unix = utcMillis(p.year + years, p.month - 1 + months, p.day + days, p.hour, p.minute, p.second, subSecond);
  if (Number.isNaN(unix)) return NaN;
  // Go time.Date: look the offset up at the wall time taken as UTC; if the instant that gives lies in another
  // zone period, use the offset of that period instead.
  const first = offsetAt(unix, timezone);
  return unix - offsetAt(unix - first, timezone);
}

/** Go `time.Time.ISOWeek` of a calendar date: `[isoYear, week]`, weeks from Monday, week 1 holding the year's first Thursday. */
function isoWeek(year: number, month: number, day: number): [number, number] {
  const date = utcMillis(year, month - 1, day);
  const weekday = (new Date(date).getUTCDay() + 6) % 7; // Monday = 0
  const thursday = new Date(date + (3 - weekday) * 86_400_000);
  const isoYear = thursday.getUTCFullYear();
  const dayOfYear = Math.round((thursday.getTime() - utcMillis(isoYear, 0, 1)) / 86_400_000);
  return [isoYear, Math.floor(dayOfYear / 7) + 1];
}

// restic's bucket functions (`snapshot_policy.go`): two backups share a bucket when these values are equal.
type Bucker = (w: WallClock, nr: number) => number;
const ymdh: Bucker = (w) => w.year * 1_000_000 + w.month * 10_000 + w.day * 100 + w.hour;
const ymd: Bucker = (w) => w.year * 10_000 + w.month * 100 + w.day;
const yw: Bucker = (w) => {
  const [year, week] = isoWeek(w.year, w.month, w.day);
  return year * 100 + week;
};
const ym: Bucker = (w) => w.year * 100 + w.month;
const y: Bucker = (w) => w.year;
const always: Bucker = (_w, nr) => nr;

/** Go's zero `time.Time` (0001-01-01T00:00:00Z): restic's starting value for the latest timestamp. */
const GO_ZERO_TIME = utcMillis(1, 0, 1);

// ---------------------------------------------------------------------------------------------------------------

/**
 * Decides which backups a retention policy keeps, exactly as restic's `forget` does (restic `ApplyPolicy` in
 * `internal/restic/snapshot_policy.go`), for the backups of ONE plan (restic applies the policy per snapshot group).
 *
 *  - Backups are considered newest first (restic sorts with `sort.Stable` on time); backups with the same time keep
 *    their input order, the earlier one counting as the newer (restic's order for such ties is its listing order).
 *  - `keepWithin` keeps a backup whose time is strictly after `latest.AddDate(-y, -m, -d) - h hours`, where `latest`
 *    is the newest backup not dated after `options.now` (restic `findLatestTimestamp`), NOT the current time.
 *  - Each count rule keeps the first (newest) backup of every new bucket value (`ymdh`, `ymd`, ISO `yw`, `ym`, `y`;
 *    `always` for keep-last) while its count lasts; `'unlimited'` never runs out. Wall clocks and ISO weeks are
 *    taken in `options.timezone`, so an hour repeated by a DST change is one bucket.
 *  - Each `keepWithin<Unit>` rule does the same, without a count, for backups strictly after its cutoff.
 *  - Depending on {@link RetentionOptions.resticVersion}, the oldest backup is also kept by rules with counts left.
 *  - Reasons are restic's, in restic's order: `within <d>`, `last snapshot`, `hourly snapshot` … `yearly snapshot`,
 *    `hourly within <d>` … `yearly within <d>`, with `<d>` in restic's normalized form (`1y2m`).
 *  - An empty policy keeps every backup, each with the reason `policy is empty` (as restic's `ApplyPolicy` did
 *    before the check moved to its command line, which refuses to remove anything for an empty policy).
 *
 * Pure apart from reading the clock when `options.now` is not given.
 * @throws DrError VALIDATION_FAILED for an invalid policy or time zone.
 * @throws Error for an invalid backup time or a repeated id (caller bugs).
 */
export function applyRetention(snapshots: readonly { id: string; time: Date }[], policy: RetentionPolicy, options: RetentionOptions): RetentionResult {
  const p = normalizePolicy(policy);
  const timezone = options.timezone;
  try {
    formatterFor(timezone);
  } catch {
    throw DrError.validation([{ field: 'timezone', message: `unknown time zone ${JSON.stringify(timezone)}` }]);
  }
  const semantics = options.resticVersion ?? '0.18';
  if (!['0.14', '0.16', '0.18'].includes(semantics)) throw new Error(`unknown resticVersion ${JSON.stringify(semantics)}`);
  const oldestForCounts = semantics !== '0.14';
  const oldestForWithin = semantics === '0.18';
  const oldestPrefix = semantics === '0.18';

  const seen = new Set<string>();
  const list = snapshots.map((s, index) => {
    const ms = s.time instanceof Date ? s.time.getTime() : NaN;
    if (Number.isNaN(ms)) throw new Error(`backup ${s.id} has an invalid time`);
    if (seen.has(s.id)) throw new Error(`backup id ${s.id} appears twice`);
    seen.add(s.id);
    return { id: s.id, ms, index };
  });
  list.sort((a, b) => b.ms - a.ms || a.index - b.index);

  if (isEmptyPolicy(p)) return { keep: list.map((s) => ({ id: s.id, reasons: ['policy is empty'] })), remove: [] };
  if (list.length === 0) return { keep: [], remove: [] };

  // restic findLatestTimestamp: the newest backup that is not in the future; Go's zero time when there is none.
  const now = (options.now ?? new Date()).getTime();
  if (Number.isNaN(now)) throw new Error('options.now is an invalid date');
  let latest = GO_ZERO_TIME;
  let latestZone = 'UTC'; // Go's zero time is in UTC
  for (const s of list) {
    if (s.ms > latest && s.ms < now) {
      latest = s.ms;
      latestZone = timezone;
    }
  }
  /** `latest.AddDate(-y, -m, -d).Add(-h hours)`; -Infinity when that is before the earliest Date. */
  const cutoff = (d: ResticDuration): number => {
    const t = addDate(latest, latestZone, -d.years, -d.months, -d.days) - d.hours * 3_600_000;
    return Number.isNaN(t) ? -Infinity : t;
  };

  const buckets = (
    [
      ['keepLast', always, 'last snapshot'],
      ['keepHourly', ymdh, 'hourly snapshot'],
      ['keepDaily', ymd, 'daily snapshot'],
      ['keepWeekly', yw, 'weekly snapshot'],
      ['keepMonthly', ym, 'monthly snapshot'],
      ['keepYearly', y, 'yearly snapshot'],
    ] as const
  ).map(([field, bucker, reason]) => ({ count: p.counts[field], bucker, reason, last: -1 }));

  const within = p.durations.keepWithin;
  const withinCutoff = within ? cutoff(within) : NaN;
  const bucketsWithin = (
    [
      ['keepWithinHourly', ymdh, 'hourly within'],
      ['keepWithinDaily', ymd, 'daily within'],
      ['keepWithinWeekly', yw, 'weekly within'],
      ['keepWithinMonthly', ym, 'monthly within'],
      ['keepWithinYearly', y, 'yearly within'],
    ] as const
  ).flatMap(([field, bucker, reason]) => {
    const d = p.durations[field];
    return d ? [{ bucker, reason: `${reason} ${formatResticDuration(d)}`, cutoff: cutoff(d), last: -1 }] : [];
  });

  const result: RetentionResult = { keep: [], remove: [] };
  list.forEach((cur, nr) => {
    const reasons: string[] = [];
    const oldest = nr === list.length - 1;
    const wall = wallClock(cur.ms, timezone);

    if (within && cur.ms > withinCutoff) reasons.push(`within ${formatResticDuration(within)}`);

    for (const b of buckets) {
      if (b.count > 0 || b.count === -1) {
        const val = b.bucker(wall, nr);
        if (val !== b.last || (oldestForCounts && oldest)) {
          reasons.push(oldestPrefix && oldest && val === b.last ? `oldest ${b.reason}` : b.reason);
          b.last = val;
          if (b.count > 0) b.count--;
        }
      }
    }

    for (const b of bucketsWithin) {
      if (cur.ms > b.cutoff) {
        const val = b.bucker(wall, nr);
        if (val !== b.last || (oldestForWithin && oldest)) {
          reasons.push(oldestPrefix && oldest && val === b.last ? `oldest ${b.reason}` : b.reason);
          b.last = val;
        }
      }
    }

    if (reasons.length) result.keep.push({ id: cur.id, reasons });
    else result.remove.push({ id: cur.id });
  });
  return result;
}
