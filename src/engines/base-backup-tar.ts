import { Headers } from 'tar-stream';
import { TarMemberReader, TarPassThrough } from './tar-pass-through';

/** Bytes kept of the end of `backup_manifest` (its WAL-Ranges come last; the file list before it can be large). */
const MANIFEST_TAIL_BYTES = 64 * 1024;

/** What a base backup's tar says of its WAL range. */
export interface BaseBackupLabel {
  /** `START WAL LOCATION` of backup_label (LSN as PostgreSQL prints it). */
  startLsn: string;
  /** `START TIMELINE` of backup_label. */
  timeline: number;
  /** `START TIME` of backup_label (`2026-11-24 15:35:44 UTC`). */
  startTime: string;
  /** `End-LSN` of the last WAL-Ranges entry of backup_manifest. */
  endLsn: string;
}

/**
 * A pass-through stream that parses the base tar of `pg_basebackup -Ft -D -` flowing through it and keeps
 * `backup_label` (format: `do_pg_backup_start` in src/backend/access/transam/xlog.c) and the tail of
 * `backup_manifest` (JSON, https://www.postgresql.org/docs/15/backup-manifest-format.html, which pg_basebackup
 * appends to the tar written to stdout).
 */
export class BaseBackupTarReader extends TarPassThrough {
  private label = '';
  private manifestTail = '';

  protected member(header: Headers): TarMemberReader {
    const name = header.name.replace(/^\.\//, '');
    if (name === 'backup_label') return { data: (chunk) => (this.label += chunk.toString('utf8')) };
    if (name === 'backup_manifest') {
      return { data: (chunk) => (this.manifestTail = (this.manifestTail + chunk.toString('utf8')).slice(-MANIFEST_TAIL_BYTES)) };
    }
    return {};
  }

  /**
   * The WAL range read from the tar, once it has ended.
   * @throws Error when backup_label or the manifest's WAL-Ranges were not found or not understood.
   */
  result(): BaseBackupLabel {
    const start = /^START WAL LOCATION: ([0-9A-F]+\/[0-9A-F]+)/m.exec(this.label);
    const timeline = /^START TIMELINE: (\d+)/m.exec(this.label);
    const time = /^START TIME: (.+)$/m.exec(this.label);
    const ranges = [...this.manifestTail.matchAll(/"End-LSN":\s*"([0-9A-F]+\/[0-9A-F]+)"/g)];
    if (!start || !timeline || !time) throw new Error('the base backup holds no readable backup_label (START WAL LOCATION, START TIMELINE)');
    if (!ranges.length) throw new Error('the base backup holds no backup_manifest with WAL-Ranges (pg_basebackup --no-manifest is not supported)');
    return { startLsn: start[1], timeline: Number(timeline[1]), startTime: time[1].trim(), endLsn: ranges[ranges.length - 1][1] };
  }
}
