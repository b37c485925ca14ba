import { ChildProcess, spawn } from 'node:child_process';
import { Injectable } from '@nestjs/common';
import { PassThrough, Readable, Writable } from 'node:stream';

/** Options of one child process. `env` is added to a minimal environment (PATH, HOME, LANG). */
export interface SpawnOptions {
  env?: Record<string, string | undefined>;
  cwd?: string;
  /** Kills the process (SIGTERM, then SIGKILL after 5 s) when aborted. */
  signal?: AbortSignal;
  /** Exit codes treated as success besides 0 (e.g. GNU tar's 1, "some files changed while read"). */
  okExitCodes?: number[];
}

/** A running child process with its streams and a promise of its outcome. */
export interface RunningProcess {
  readonly stdin: Writable;
  readonly stdout: Readable;
  /** Resolves with the exit code and the tail of stderr; rejects with {@link ProcessFailedError}. */
  readonly done: Promise<{ exitCode: number; stderr: string }>;
  readonly child: ChildProcess;
}

/** A child process that exited with a failure code or was killed. Its message holds the tail of stderr. */
export class ProcessFailedError extends Error {
  constructor(
    readonly command: string,
    readonly exitCode: number | null,
    readonly stderr: string,
  ) {
    super(`${command} failed (${exitCode === null ? 'killed' : `exit code ${exitCode}`})${stderr ? `: ${stderr.trim()}` : ''}`);
  }
}

const STDERR_TAIL_BYTES = 4096;

/**
 * Runs external tools (pg_dump, pg_restore, tar). Arguments are passed as an argv array (no shell) and
 * secrets only through `env`, so they appear neither in a shell nor in `ps` output.
 */
@Injectable()
export class ProcessRunner {
  spawn(command: string, args: string[], options: SpawnOptions = {}): RunningProcess {
    const child = spawn(command, args, {
      cwd: options.cwd,
      env: {
        PATH: process.env.PATH,
        HOME: process.env.HOME,
        LANG: 'C.UTF-8',
        LC_ALL: 'C.UTF-8',
        TZ: 'UTC',
        ...options.env,
      },
      stdio: ['pipe', 'pipe', 'pipe'],
    });
    let stderr = '';
    child.stderr.setEncoding('utf8');
    child.stderr.on('data', (chunk: string) => {
      stderr = (stderr + chunk).slice(-STDERR_TAIL_BYTES);
    });
    // EPIPE on stdin when the process exits early is reported through the exit code instead.
    child.stdin.on('error', () => undefined);
    const onAbort = () => {
      child.kill('SIGTERM');
      setTimeout(() => child.exitCode === null && child.kill('SIGKILL'), 5000).unref();
    };
    options.signal?.addEventListener('abort', onAbort, { once: true });
    const name = command.split('/').pop() ?? command;
    const done = new Promise<{ exitCode: number; stderr: string }>((resolve, reject) => {
      child.once('error', (error) => reject(new ProcessFailedError(name, null, error.message)));
      child.once('close', (code) => {
        options.signal?.removeEventListener('abort', onAbort);
        if (code !== null && (code === 0 || options.okExitCodes?.includes(code))) resolve({ exitCode: code, stderr });
        else reject(new ProcessFailedError(name, code, stderr));
      });
    });
    done.catch(() => undefined); // callers await it; never an unhandled rejection
    // Claim stdout at once: Node discards the stdout of a child that exits before anyone reads it (flushStdio),
    // which would turn a small, fast dump into an empty artifact. The PassThrough keeps back-pressure.
    const stdout = child.stdout.pipe(new PassThrough({ highWaterMark: 1 << 20 }));
    child.stdout.once('error', (error) => stdout.destroy(error));
    return { stdin: child.stdin, stdout, done, child };
  }

  /** Runs a command to completion and returns its stdout (small outputs only, e.g. `--version`). */
  async output(command: string, args: string[], options: SpawnOptions = {}): Promise<string> {
    const proc = this.spawn(command, args, options);
    proc.stdin.end();
    const chunks: Buffer[] = [];
    proc.stdout.on('data', (c: Buffer) => chunks.push(c));
    await proc.done;
    return Buffer.concat(chunks).toString('utf8');
  }
}
