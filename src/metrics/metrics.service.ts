import { Injectable } from '@nestjs/common';
import { collectDefaultMetrics, Counter, Histogram, Registry } from 'prom-client';

/**
 * Duration buckets in seconds, from a second to eight hours: small filesystem backups finish in seconds, large
 * database dumps and restores take hours.
 */
export const DURATION_BUCKETS_SECONDS = [0.5, 1, 5, 15, 30, 60, 120, 300, 600, 1200, 1800, 3600, 7200, 14400, 28800];

/** Outcome label of a backup or restore: the job's final status, lower-cased. */
export type JobOutcome = 'completed' | 'failed';
/** Outcome label of a verification: it ran and found nothing, it ran and found problems, or it could not run. */
export type VerificationOutcome = 'ok' | 'problems' | 'error';

/**
 * The service's Prometheus metrics, in a registry of its own (not prom-client's global one, so that several
 * applications in one process, as in the tests, do not collide). Names follow the Prometheus naming guide
 * (https://prometheus.io/docs/practices/naming/): `dr_` prefix, base units (seconds, bytes), `_total` counters.
 *
 * Counters and histograms count what THIS process ran since it started (sum them over replicas, use `rate()`);
 * the plan gauges are computed from the metadata store at scrape time by {@link PlanAgeCollector}, so every
 * replica reports the same, correct values, also after a restart.
 */
@Injectable()
export class MetricsService {
  readonly registry = new Registry();

  readonly backups = new Counter({
    name: 'dr_backups_total',
    help: 'Backups run by this process, by engine and outcome (completed, failed).',
    labelNames: ['engine', 'outcome'] as const,
    registers: [this.registry],
  });

  readonly restores = new Counter({
    name: 'dr_restores_total',
    help: 'Restores (recoveries) run by this process, by engine and outcome (completed, failed).',
    labelNames: ['engine', 'outcome'] as const,
    registers: [this.registry],
  });

  readonly verifications = new Counter({
    name: 'dr_verifications_total',
    help: 'Verifications run by this process, by mode (checksum, restore) and outcome (ok, problems, error: could not run).',
    labelNames: ['mode', 'outcome'] as const,
    registers: [this.registry],
  });

  readonly backupDuration = new Histogram({
    name: 'dr_backup_duration_seconds',
    help: 'Duration of backups run by this process, from start to the signed manifest (or the failure), in seconds.',
    labelNames: ['engine', 'outcome'] as const,
    buckets: DURATION_BUCKETS_SECONDS,
    registers: [this.registry],
  });

  readonly restoreDuration = new Histogram({
    name: 'dr_restore_duration_seconds',
    help: 'Duration of restores run by this process, from start to a usable target (the measured RTO), in seconds.',
    labelNames: ['engine', 'outcome'] as const,
    buckets: DURATION_BUCKETS_SECONDS,
    registers: [this.registry],
  });

  readonly backupBytesWritten = new Counter({
    name: 'dr_backup_bytes_written_total',
    help: 'Bytes stored by completed backups of this process (after compression and encryption), by engine.',
    labelNames: ['engine'] as const,
    registers: [this.registry],
  });

  constructor() {
    collectDefaultMetrics({ register: this.registry });
  }

  /** Records a finished backup. `durationSeconds` may be null when the record has no start time. */
  recordBackup(engine: string, outcome: JobOutcome, durationSeconds: number | null, storedBytes: number | null): void {
    this.backups.inc({ engine, outcome });
    if (durationSeconds !== null) this.backupDuration.observe({ engine, outcome }, durationSeconds);
    if (outcome === 'completed' && storedBytes) this.backupBytesWritten.inc({ engine }, storedBytes);
  }

  /** Records a finished restore. */
  recordRestore(engine: string, outcome: JobOutcome, durationSeconds: number | null): void {
    this.restores.inc({ engine, outcome });
    if (durationSeconds !== null) this.restoreDuration.observe({ engine, outcome }, durationSeconds);
  }

  /** Records a finished verification. */
  recordVerification(mode: string, outcome: VerificationOutcome): void {
    this.verifications.inc({ mode, outcome });
  }

  /** The exposition in the Prometheus text format; its content type is {@link contentType}. */
  scrape(): Promise<string> {
    return this.registry.metrics();
  }

  /** `text/plain; version=0.0.4; charset=utf-8`. */
  get contentType(): string {
    return this.registry.contentType;
  }
}
