import { Logger } from '@nestjs/common';
import { SchedulerRegistry } from '@nestjs/schedule';

/** How long shutdown waits for aborted jobs to record their failure; the reaper of the next start does the rest. */
export const SHUTDOWN_GRACE_MS = 15_000;

/**
 * The jobs of one kind (backups, recoveries, verifications, copies) this process runs in the background: started
 * without awaiting, each with an abort signal for shutdown, and their ids known so the reaper skips them.
 */
export class BackgroundJobs {
  private readonly running = new Map<string, { abort: AbortController; finished: Promise<void> }>();

  constructor(private readonly logger: Logger) {}

  /**
   * Runs `job` in the background. Its errors are logged, never thrown: a job records its own outcome.
   * @returns a promise that settles when the job has finished (never rejects).
   */
  start(id: string, job: (signal: AbortSignal) => Promise<void>): Promise<void> {
    const abort = new AbortController();
    const finished = job(abort.signal)
      .catch((error: Error) => this.logger.error(`${id}: ${error.stack ?? error.message}`))
      .finally(() => this.running.delete(id));
    this.running.set(id, { abort, finished });
    return finished;
  }

  /** Ids of the jobs running in this process. */
  ids(): ReadonlySet<string> {
    return new Set(this.running.keys());
  }

  /** The promise of a running job's end, if it runs here. */
  finished(id: string): Promise<void> | undefined {
    return this.running.get(id)?.finished;
  }

  /** Aborts every job (their child processes are killed) and waits, at most `graceMs`, for them to record it. */
  async abortAll(graceMs = SHUTDOWN_GRACE_MS): Promise<void> {
    const jobs = [...this.running.values()];
    for (const job of jobs) {
      try {
        job.abort.abort();
      } catch {
        // an abort listener threw (a stream already destroyed); the job's own promise reports what matters
      }
    }
    await settleWithin(Promise.all(jobs.map((j) => j.finished)), graceMs);
  }
}

/** Waits for `promise`, at most `ms`. */
export async function settleWithin(promise: Promise<unknown>, ms: number): Promise<void> {
  let timer: NodeJS.Timeout | undefined;
  await Promise.race([promise, new Promise((resolve) => (timer = setTimeout(resolve, ms)))]);
  clearTimeout(timer);
}

/** A failure reason for records: the error's message (built by us or by the tools, never holding secrets). */
export function describeError(error: unknown): string {
  const message = error instanceof Error ? error.message : String(error);
  return message.length > 2000 ? `${message.slice(0, 2000)}…` : message;
}

/**
 * Reaps once now, then every half job lease: the jobs of a process that died (kill -9, OOM) are marked FAILED
 * by whichever replica notices first.
 */
export async function startReaper(
  registry: SchedulerRegistry,
  name: string,
  leaseSeconds: number,
  reap: () => Promise<unknown>,
  logger: Logger,
): Promise<void> {
  await reap();
  const timer = setInterval(() => void reap().catch((e: Error) => logger.warn(`${name}: ${e.message}`)), Math.max(1000, (leaseSeconds * 1000) / 2));
  registry.addInterval(name, timer);
}
