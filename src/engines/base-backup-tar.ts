import { Transform } from 'node:stream';
import { extract, Headers } from 'tar-stream';

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
 * A pass-through stream that parses the base tar of `pg_basebackup -Ft -D -` flowing through it (tar-stream) and
 * keeps `backup_label` (format: `do_pg_backup_start` in src/backend/access/transam/xlog.c) and the tail of
 * `backup_manifest` (JSON, https://www.postgresql.org/docs/15/backup-manifest-format.html, which pg_basebackup
 * appends to the tar written to stdout). Back-pressure is kept: a chunk passes on once the parser has taken it.
 */
export class BaseBackupTarReader extends Transform {
  private readonly parser = extract();
  private parseError?: Error;
  private label = '';
  private manifestTail = '';

  constructor() {
    super({ highWaterMark: 1 << 20 });
    this.parser.on('entry', (header: Headers, stream, next) => {
      const name = header.name.replace(/^\.\//, '');
      stream.on('error', () => undefined);
      stream.on('data', (chunk: Buffer) => {
        if (name === 'backup_label') this.label += chunk.toString('utf8');
        else if (name === 'backup_manifest') this.manifestTail = (this.manifestTail + chunk.toString('utf8')).slice(-MANIFEST_TAIL_BYTES);
      });
      stream.on('end', () => next());
    });
    this.parser.on('error', (error: Error) => {
      this.parseError = error;
    });
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

  override _transform(chunk: Buffer, _encoding: BufferEncoding, callback: (error?: Error | null, data?: Buffer) => void): void {
    if (this.parseError) return callback(this.parseError);
    if (this.parser.write(chunk)) callback(null, chunk);
    else this.parser.once('drain', () => callback(this.parseError ?? null, chunk));
  }

  override _destroy(error: Error | null, callback: (error?: Error | null) => void): void {
    this.parser.destroy();
    callback(error);
  }

  override _flush(callback: (error?: Error | null) => void): void {
    this.parser.once('finish', () => callback(this.parseError ?? null));
    this.parser.once('error', (error: Error) => callback(error));
    this.parser.end();
  }
}
