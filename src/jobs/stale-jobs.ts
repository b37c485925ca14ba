import { FindOptionsWhere, In, LessThan, ObjectLiteral, Repository } from 'typeorm';
import { QueryDeepPartialEntity } from 'typeorm/query-builder/QueryPartialEntity';
import { JobStatus } from './job-status';

/** The columns a job table has in common (backups, recoveries, verifications, copies). */
export interface JobRow extends ObjectLiteral {
  id: string;
  /** A {@link JobStatus}, or a kind's own status before or after the shared ones (a recovery's AWAITING_APPROVAL). */
  status: string;
  heartbeatAt: Date | null;
  createdAt: Date;
}

/**
 * Marks FAILED, with `reason`, the jobs whose process died: RUNNING with a heartbeat older than `leaseSeconds`,
 * or PENDING for longer than that (accepted, never started). Each row is claimed with a conditional UPDATE, so
 * with several replicas every stale job is reaped exactly once.
 * @param running ids this process is running itself (never reaped: their heartbeat may just be late).
 * @returns the rows reaped (as they were before), for the caller's own cleanup.
 */
export async function reapStaleJobs<T extends JobRow>(
  repository: Repository<T>,
  leaseSeconds: number,
  running: ReadonlySet<string>,
  reason: string,
): Promise<T[]> {
  const cutoff = new Date(Date.now() - leaseSeconds * 1000);
  const stale = await repository.find({
    where: [
      { status: In([JobStatus.RUNNING]), heartbeatAt: LessThan(cutoff) },
      { status: In([JobStatus.PENDING]), createdAt: LessThan(cutoff) },
    ] as FindOptionsWhere<T>[],
  });
  const reaped: T[] = [];
  for (const row of stale) {
    if (running.has(row.id)) continue;
    const result = await repository
      .createQueryBuilder()
      .update()
      .set(jobColumns<T>({ status: JobStatus.FAILED, error: reason, finishedAt: new Date() }))
      .where('id = :id AND status IN (:...statuses)', { id: row.id, statuses: [JobStatus.RUNNING, JobStatus.PENDING] })
      .andWhere('(heartbeat_at IS NULL OR heartbeat_at < :cutoff)', { cutoff })
      .execute();
    if (result.affected) reaped.push(row);
  }
  return reaped;
}

/** The columns the job lifecycle writes, which every job table has. */
export interface JobColumns {
  status?: string;
  error?: string | null;
  startedAt?: Date | null;
  finishedAt?: Date | null;
  heartbeatAt?: Date | null;
  runnerId?: string | null;
  durationMs?: number | null;
}

/**
 * Columns of a job row as TypeORM's `update` takes them. For a row type known only as a generic `T` (the job code
 * shared by every kind), TypeScript cannot prove `Partial<T>` assignable to TypeORM's deep-partial update type,
 * though it is one: this is the one place that says so.
 */
export function jobColumns<T extends ObjectLiteral>(fields: Partial<T> | JobColumns): QueryDeepPartialEntity<T> {
  return fields as QueryDeepPartialEntity<T>;
}

/** The criteria "row `id`" (and `more`) of a job table, for a row type known only as a generic `T`. */
export function jobWhere<T extends JobRow>(id: string, more: Partial<JobRow> = {}): FindOptionsWhere<T> {
  return { id, ...more } as FindOptionsWhere<T>;
}
