import { currentOccurrence, isValidCron } from '../../src/jobs/cron-occurrence';

describe('currentOccurrence', () => {
  it('maps every tick near an occurrence to the same instant, so replicas claim the same key', () => {
    const nominal = new Date('2026-11-23T02:00:00.000Z');
    for (const offsetMs of [-200, -1, 0, 5, 350, 999, 20_000]) {
      const at = currentOccurrence('0 2 * * *', 'UTC', new Date(nominal.getTime() + offsetMs));
      expect(at?.toISOString()).toBe(nominal.toISOString());
    }
  });

  it('picks the latest occurrence of a fast schedule and none far from any occurrence', () => {
    expect(currentOccurrence('*/2 * * * * *', 'UTC', new Date('2026-11-23T10:00:03.010Z'))?.toISOString()).toBe('2026-11-23T10:00:02.000Z');
    expect(currentOccurrence('0 2 * * *', 'UTC', new Date('2026-11-23T12:00:00Z'))).toBeNull();
  });

  it('honours the plan time zone', () => {
    const at = currentOccurrence('0 2 * * *', 'Europe/Paris', new Date('2026-11-23T01:00:00.200Z'));
    expect(at?.toISOString()).toBe('2026-11-23T01:00:00.000Z');
  });

  it('validates expressions', () => {
    expect(isValidCron('0 2 * * *')).toBe(true);
    expect(isValidCron('*/5 * * * * *')).toBe(true);
    expect(isValidCron('61 * * * *')).toBe(false);
    expect(isValidCron('nightly')).toBe(false);
  });
});
