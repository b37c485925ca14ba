import { Logger } from '@nestjs/common';
import { ObjectLiteral, Repository } from 'typeorm';
import { jobColumns } from './stale-jobs';

/**
 * Keeps a RUNNING job's `heartbeat_at` fresh and writes its progress, every `intervalMs`, until stopped.
 * A job whose heartbeat goes stale belongs to a process that died; the reaper marks it FAILED.
 */
export class JobHeartbeat<T extends ObjectLiteral & { id: string }> {
  private readonly logger = new Logger(JobHeartbeat.name);
  private timer?: NodeJS.Timeout;
  private writing?: Promise<unknown>;

  constructor(
    private readonly repository: Repository<T>,
    private readonly id: string,
    private readonly progress: () => Partial<T>,
    private readonly intervalMs: number,
  ) {}

  start(): this {
    this.timer = setInterval(() => {
      if (this.writing) return; // the previous write is still going; skip a beat rather than queue
      this.writing = this.repository
        .update(this.id, jobColumns<T>({ ...this.progress(), heartbeatAt: new Date() }))
        .catch((error: Error) => this.logger.warn(`heartbeat of ${this.id} failed: ${error.message}`))
        .finally(() => (this.writing = undefined));
    }, this.intervalMs);
    this.timer.unref();
    return this;
  }

  /** Stops the beats and waits for a write in flight, so a final status update is not overwritten. */
  async stop(): Promise<void> {
    clearInterval(this.timer);
    await this.writing;
  }
}
