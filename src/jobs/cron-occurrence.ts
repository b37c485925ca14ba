import { CronTime } from 'cron';

/**
 * The scheduled occurrence a cron tick belongs to: the latest occurrence of `expression` at or before
 * `now + toleranceMs` (a timer that fires a little early), searched from `now - lookbackMs` (one that fires late). Every replica that fires for the same occurrence
 * computes the same instant, even with clocks a little apart, so the instant can key an exclusive claim.
 * @returns null when no occurrence falls in the window.
 */
export function currentOccurrence(expression: string, timezone: string, now = new Date(), toleranceMs = 250, lookbackMs = 30_000): Date | null {
  const cron = new CronTime(expression, timezone);
  const limit = now.getTime() + toleranceMs;
  let candidate = cron.getNextDateFrom(new Date(now.getTime() - lookbackMs), timezone).toJSDate();
  if (candidate.getTime() > limit) return null;
  for (;;) {
    const next = cron.getNextDateFrom(candidate, timezone).toJSDate();
    if (next.getTime() > limit) return candidate;
    candidate = next;
  }
}

/** Whether `expression` is a valid cron expression (5 fields, or 6 with seconds) in `timezone`. */
export function isValidCron(expression: string, timezone = 'UTC'): boolean {
  try {
    new CronTime(expression, timezone);
    return true;
  } catch {
    return false;
  }
}
