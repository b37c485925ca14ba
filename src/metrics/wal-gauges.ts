import { Injectable, Logger } from '@nestjs/common';
import { Gauge } from 'prom-client';
import { BackupPlanRepository } from '../backup/backup.repository';
import { MetricsService } from './metrics.service';
import { WalArchivesService, WalArchiveStatus } from '../wal/wal-archives.service';

/** How long a scrape reuses the archives' state (each state lists the archive in its store), in ms. */
const STATUS_CACHE_MS = 15_000;

/**
 * WAL archive gauges, computed at scrape time from each archive's store listing (cached {@link STATUS_CACHE_MS}):
 * - `dr_wal_archive_achieved_rpo_seconds{archive}`: seconds since the newest archived segment was stored;
 * - `dr_wal_archive_last_segment_timestamp_seconds{archive}`: Unix time of that segment;
 * - `dr_wal_archive_gaps{archive}`: segments missing between the oldest kept base backup and the newest segment
 *   (an alert condition: a recovery past the gap is impossible);
 * - `dr_plan_wal_rpo_seconds{plan,archive}`: the achieved RPO of each enabled postgres-base plan (its archive's).
 * An archive whose store cannot be read has no sample for that scrape (logged).
 */
@Injectable()
export class WalGauges {
  private readonly logger = new Logger(WalGauges.name);
  private cache: { at: number; rows: Promise<{ id: string; name: string; status: WalArchiveStatus }[]> } | null = null;

  constructor(
    metrics: MetricsService,
    private readonly archives: WalArchivesService,
    private readonly plans: BackupPlanRepository,
  ) {
    // collect() runs with the gauge as `this`: the queries are reached through these closures
    const archiveRows = () => this.rows();
    const walPlans = () => this.walPlans();
    new Gauge({
      name: 'dr_wal_archive_achieved_rpo_seconds',
      help: 'Seconds since the newest WAL segment of each WAL archive was stored (the achieved RPO of point-in-time recovery).',
      labelNames: ['archive'] as const,
      registers: [metrics.registry],
      async collect() {
        this.reset();
        for (const r of await archiveRows()) if (r.status.achievedRpoSeconds !== null) this.set({ archive: r.name }, r.status.achievedRpoSeconds);
      },
    });
    new Gauge({
      name: 'dr_wal_archive_last_segment_timestamp_seconds',
      help: 'Unix time (seconds) at which the newest WAL segment of each WAL archive was stored.',
      labelNames: ['archive'] as const,
      registers: [metrics.registry],
      async collect() {
        this.reset();
        for (const r of await archiveRows()) if (r.status.newestSegmentAt) this.set({ archive: r.name }, r.status.newestSegmentAt.getTime() / 1000);
      },
    });
    new Gauge({
      name: 'dr_wal_archive_gaps',
      help: 'WAL segments missing from each WAL archive between the oldest kept base backup and the newest segment (alert when > 0).',
      labelNames: ['archive'] as const,
      registers: [metrics.registry],
      async collect() {
        this.reset();
        for (const r of await archiveRows()) this.set({ archive: r.name }, r.status.continuity.missingCount);
      },
    });
    new Gauge({
      name: 'dr_plan_wal_rpo_seconds',
      help: "Achieved RPO (seconds since the newest archived WAL segment) of each enabled postgres-base plan's WAL archive.",
      labelNames: ['plan', 'archive'] as const,
      registers: [metrics.registry],
      async collect() {
        this.reset();
        const rows = await archiveRows();
        for (const plan of await walPlans()) {
          const r = rows.find((x) => x.id === plan.archiveId);
          if (r?.status.achievedRpoSeconds != null) this.set({ plan: plan.name, archive: r.name }, r.status.achievedRpoSeconds);
        }
      },
    });
  }

  /** Enabled postgres-base plans and their WAL archive. */
  private async walPlans(): Promise<{ name: string; archiveId: string }[]> {
    try {
      const plans = await this.plans.ofEngine('postgres-base', true);
      return plans.map((p) => ({ name: p.name, archiveId: String((p.source as { walArchiveId?: string }).walArchiveId) }));
    } catch (error) {
      this.logger.warn(`WAL plans not available: ${(error as Error).message}`);
      return [];
    }
  }

  private rows(): Promise<{ id: string; name: string; status: WalArchiveStatus }[]> {
    if (!this.cache || Date.now() - this.cache.at > STATUS_CACHE_MS) {
      this.cache = { at: Date.now(), rows: this.load() };
    }
    return this.cache.rows;
  }

  private async load(): Promise<{ id: string; name: string; status: WalArchiveStatus }[]> {
    const rows: { id: string; name: string; status: WalArchiveStatus }[] = [];
    try {
      for (const archive of await this.archives.list()) {
        try {
          rows.push({ id: archive.id, name: archive.name, status: await this.archives.status(archive) });
        } catch (error) {
          this.logger.warn(`WAL archive ${archive.name} state not available: ${(error as Error).message}`);
        }
      }
    } catch (error) {
      this.logger.warn(`WAL archives not available: ${(error as Error).message}`);
    }
    return rows;
  }
}
