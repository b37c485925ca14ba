import { setTimeout as sleep } from 'node:timers/promises';
import { SingleBar } from 'cli-progress';
import { JobStatus } from '../jobs/job-status';
import { formatBytes } from './format';
import { CliInterrupted, interruption } from './interrupt';

/** What the waiter shows of a job: its status and the bytes processed so far. */
export interface JobProgress {
  status: JobStatus;
  bytes: number;
}

/** How to follow one job until it finishes. */
export interface WaitOptions<T> {
  /** `backup` or `restore`: the first word of each progress line. */
  kind: string;
  id: string;
  /** Reads the job's current record. */
  fetch: () => Promise<T>;
  progress: (job: T) => JobProgress;
  /** Known total (shows a bar with a percentage); otherwise a spinner. */
  totalBytes?: number | null;
  pollMs?: number;
  /** Interval of the plain progress lines (non-TTY). */
  lineEveryMs?: number;
  /** Defaults to whether both stdout and stderr are terminals. */
  tty?: boolean;
}

interface ProgressView {
  update(p: JobProgress): void;
  stop(): void;
}

const FRAMES = ['⠋', '⠙', '⠹', '⠸', '⠼', '⠴', '⠦', '⠧', '⠇', '⠏'];
const FINISHED = new Set([JobStatus.COMPLETED, JobStatus.FAILED]);

/** A redrawn line on the terminal (stderr): spinner or bar, bytes so far, elapsed time. */
class BarView implements ProgressView {
  private readonly bar: SingleBar;
  private frame = 0;

  constructor(
    kind: string,
    id: string,
    private readonly total?: number | null,
  ) {
    const head = `${kind} {id} {status}`;
    const format = total
      ? `${head} [{bar}] {percentage}% {bytes} of {totalBytes} | {duration_formatted}`
      : `{spinner} ${head} {bytes} read | {duration_formatted}`;
    this.bar = new SingleBar({ format, stream: process.stderr, hideCursor: true, clearOnComplete: true, barsize: 30 });
    this.bar.start(total || 1, 0, { id, status: JobStatus.PENDING, bytes: formatBytes(0), totalBytes: formatBytes(total), spinner: FRAMES[0] });
  }

  update(p: JobProgress): void {
    const value = this.total ? Math.min(p.bytes, this.total) : 0;
    this.bar.update(value, { status: p.status, bytes: formatBytes(p.bytes), spinner: FRAMES[this.frame++ % FRAMES.length] });
  }

  stop(): void {
    this.bar.stop();
  }
}

/** Plain lines on stderr for logs and pipes: one on each status change, then one every `everyMs`. */
class LineView implements ProgressView {
  private lastAt = 0;
  private lastStatus?: JobStatus;

  constructor(
    private readonly kind: string,
    private readonly id: string,
    private readonly everyMs: number,
  ) {}

  update(p: JobProgress): void {
    if (FINISHED.has(p.status)) return;
    const now = Date.now();
    if (p.status === this.lastStatus && now - this.lastAt < this.everyMs) return;
    this.lastAt = now;
    this.lastStatus = p.status;
    process.stderr.write(`${this.kind} ${this.id} ${p.status} ${formatBytes(p.bytes)}\n`);
  }

  stop(): void {}
}

/**
 * Polls a job every `pollMs` (250 ms) until it is COMPLETED or FAILED, showing progress on stderr.
 * @returns the final record. @throws CliInterrupted when the user interrupts (SIGINT/SIGTERM).
 */
export async function waitForJob<T>(options: WaitOptions<T>): Promise<T> {
  const { kind, id } = options;
  const tty = options.tty ?? Boolean(process.stdout.isTTY && process.stderr.isTTY);
  const view: ProgressView = tty ? new BarView(kind, id, options.totalBytes) : new LineView(kind, id, options.lineEveryMs ?? 5000);
  const interrupted = () => new CliInterrupted(`interrupted: ${kind} ${id} is aborted and will be recorded FAILED`);
  try {
    for (;;) {
      if (interruption.signal.aborted) throw interrupted();
      const job = await options.fetch();
      const progress = options.progress(job);
      view.update(progress);
      if (FINISHED.has(progress.status)) return job;
      await sleep(options.pollMs ?? 250, undefined, { signal: interruption.signal }).catch(() => {
        throw interrupted();
      });
    }
  } finally {
    view.stop();
  }
}
