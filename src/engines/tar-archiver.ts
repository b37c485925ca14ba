import { Injectable } from '@nestjs/common';
import { Readable } from 'node:stream';
import { ProcessRunner } from './process-runner';

/** What GNU tar should archive: entries relative to `cwd`, or the whole tree when `entries` is omitted. */
export interface TarCreateOptions {
  cwd: string;
  /**
   * Relative paths to archive without recursion, in this order (an async iterable is pulled as tar reads the
   * list, with back-pressure; when it throws, the list ends there and the caller must fail the run); omit to
   * archive `.` recursively.
   */
  entries?: string[] | AsyncIterable<string>;
  signal: AbortSignal;
}

/**
 * GNU tar behind an injectable class. Archives keep modes, mtimes, owners and symlinks (as links), in GNU format,
 * readable by any tar. Exit code 1 ("file changed as we read it") is a warning, not a failure.
 */
@Injectable()
export class TarArchiver {
  constructor(private readonly processes: ProcessRunner) {}

  /** Streams a tar archive to stdout. @returns the stream and the promise of tar's outcome (stderr as warnings). */
  create(options: TarCreateOptions): { stream: Readable; done: Promise<string[]> } {
    const args = ['--create', '--file=-', '--format=gnu', '--sparse', '--warning=no-file-ignored', '-C', options.cwd];
    if (options.entries) args.push('--no-recursion', '--null', '--verbatim-files-from', '--files-from=-');
    else args.push('.');
    const proc = this.processes.spawn('tar', args, { signal: options.signal, okExitCodes: [1] });
    if (options.entries) {
      const entries = options.entries;
      const list = Array.isArray(entries)
        ? Readable.from(entries.map((e) => `${e}\0`))
        : Readable.from((async function* () {
            for await (const e of entries) yield `${e}\0`;
          })());
      list.once('error', () => proc.stdin.end());
      list.pipe(proc.stdin);
    } else {
      proc.stdin.end();
    }
    const done = proc.done.then(({ exitCode, stderr }) =>
      exitCode === 1 ? stderr.split('\n').filter(Boolean).map((l) => l.replace(/^tar: /, '')) : [],
    );
    return { stream: proc.stdout, done };
  }

  /**
   * Extracts an archive read from `input` into `cwd`, keeping permissions and mtimes (and owners when run as root).
   * GNU tar refuses members with `..` and strips leading `/`, so nothing lands outside `cwd`.
   */
  async extract(cwd: string, input: Readable, signal: AbortSignal): Promise<void> {
    const proc = this.processes.spawn(
      'tar',
      ['--extract', '--file=-', '--preserve-permissions', '--delay-directory-restore', '-C', cwd],
      { signal },
    );
    let inputError: Error | undefined;
    input.once('error', (error) => {
      inputError = error;
      proc.stdin.destroy();
    });
    input.pipe(proc.stdin);
    proc.stdout.resume();
    try {
      await proc.done;
    } catch (error) {
      throw inputError ?? error;
    }
    if (inputError) throw inputError;
  }

  /** `tar --version`, first line. */
  async version(): Promise<string> {
    return (await this.processes.output('tar', ['--version'])).split('\n')[0];
  }
}
