import { access } from 'node:fs/promises';
import { Injectable, OnModuleInit } from '@nestjs/common';
import { Readable } from 'node:stream';
import { encodeFileName } from './file-name-bytes';
import { ProcessRunner } from './process-runner';

/** What GNU tar should archive: entries relative to `cwd`, or the whole tree when `entries` is omitted. */
export interface TarCreateOptions {
  cwd: string;
  /**
   * Relative paths to archive without recursion, in this order, decoded as in file-name-bytes.ts (tar is given
   * their exact bytes); an async iterable is pulled as tar reads the list, with back-pressure; when it throws, the
   * list ends there and the caller must fail the run. Omit to archive `.` recursively.
   */
  entries?: string[] | AsyncIterable<string>;
  signal: AbortSignal;
}

/**
 * The metadata options given to GNU tar on create and extract: POSIX ACLs and extended attributes (all namespaces:
 * `user.*`, and `security.capability`, `trusted.*` where the process may set them; GNU tar extracts only `user.*`
 * unless told `--xattrs-include`), plus SELinux contexts where the system runs SELinux.
 */
const METADATA_OPTIONS = ['--xattrs', '--xattrs-include=*', '--acls'];

/**
 * pax options on create: extended header names without the process id (`%p`), so two archives of the same tree
 * are alike, and no `atime`/`ctime` records: the access time changes on every read and neither is restored.
 */
const PAX_OPTIONS = '--pax-option=exthdr.name=%d/PaxHeaders/%f,delete=atime,delete=ctime';

/**
 * GNU tar behind an injectable class. Archives are POSIX pax (`--format=posix`, readable by any tar since POSIX.1-2001):
 * names of any bytes and length, modes, owners, mtimes to the nanosecond, symlinks (as links), hard links, sparse
 * files, extended attributes and POSIX ACLs (and SELinux contexts where SELinux runs). tar runs in the C.UTF-8
 * locale, so names are archived and extracted as the same bytes whether or not they are valid UTF-8 (GNU tar keeps
 * the bytes of a name it cannot convert). Exit code 1 ("file changed as we read it") is a warning, not a failure.
 */
@Injectable()
export class TarArchiver implements OnModuleInit {
  /** The metadata options in use: {@link METADATA_OPTIONS}, plus `--selinux` once {@link onModuleInit} found SELinux. */
  private metadata = METADATA_OPTIONS;

  constructor(private readonly processes: ProcessRunner) {}

  /** Adds `--selinux` when SELinux runs here (selinuxfs mounted) and this tar knows the option. */
  async onModuleInit(): Promise<void> {
    if (
      !(await access('/sys/fs/selinux/enforce').then(
        () => true,
        () => false,
      ))
    )
      return;
    const help = await this.processes.output('tar', ['--help']).catch(() => '');
    if (help.includes('--selinux')) this.metadata = [...METADATA_OPTIONS, '--selinux'];
  }

  /** Streams a tar archive to stdout. @returns the stream and the promise of tar's outcome (stderr as warnings). */
  create(options: TarCreateOptions): { stream: Readable; done: Promise<string[]> } {
    const args = ['--create', '--file=-', '--format=posix', PAX_OPTIONS, ...this.metadata, '--sparse', '--warning=no-file-ignored', '-C', options.cwd];
    if (options.entries) args.push('--no-recursion', '--null', '--verbatim-files-from', '--files-from=-');
    else args.push('.');
    const proc = this.processes.spawn('tar', args, { signal: options.signal, okExitCodes: [1] });
    if (options.entries) {
      const entries = options.entries;
      const list = Readable.from(nameBlocks(entries), { objectMode: false, highWaterMark: NAME_BLOCK_BYTES });
      list.once('error', () => proc.stdin.end());
      list.pipe(proc.stdin);
    } else {
      proc.stdin.end();
    }
    const done = proc.done.then(({ exitCode, stderr }) => (exitCode === 1 ? warningsOf(stderr) : []));
    return { stream: proc.stdout, done };
  }

  /**
   * Extracts an archive read from `input` into `cwd`, keeping permissions, mtimes (to the nanosecond), extended
   * attributes, ACLs (and owners when run as root). GNU tar refuses members with `..` and strips leading `/`, so
   * nothing lands outside `cwd`.
   * @returns tar's warnings: what it could not restore although the archive holds it (an extended attribute the
   *   process may not set, such as `security.capability` when not root, or one the target's file system refuses)
   */
  async extract(cwd: string, input: Readable, signal: AbortSignal): Promise<string[]> {
    const proc = this.processes.spawn('tar', ['--extract', '--file=-', '--preserve-permissions', ...this.metadata, '--delay-directory-restore', '-C', cwd], {
      signal,
    });
    let inputError: Error | undefined;
    input.once('error', (error) => {
      inputError = error;
      proc.stdin.destroy();
    });
    input.pipe(proc.stdin);
    proc.stdout.resume();
    let stderr: string;
    try {
      ({ stderr } = await proc.done);
    } catch (error) {
      throw inputError ?? error;
    }
    if (inputError) throw inputError;
    return warningsOf(stderr);
  }

  /** `tar --version`, first line. */
  async version(): Promise<string> {
    return (await this.processes.output('tar', ['--version'])).split('\n')[0];
  }
}

const NUL = Buffer.of(0);

/** Bytes of NUL-terminated names gathered before they are written to tar's stdin. */
const NAME_BLOCK_BYTES = 1 << 15;

/**
 * The names as tar's `--null --files-from` list, their exact bytes each followed by NUL, in blocks of about
 * {@link NAME_BLOCK_BYTES}: one pipe write per block, not per name (a tree of 34,000 small files made 34,000 writes).
 * tar starts once the first block (or the whole list, when shorter) is gathered; the names never wait on tar (the
 * walk does not depend on its progress), so a block is always completed or ended.
 */
async function* nameBlocks(entries: string[] | AsyncIterable<string>): AsyncGenerator<Buffer> {
  let parts: Buffer[] = [];
  let bytes = 0;
  const iterator = (Array.isArray(entries) ? toAsync(entries) : entries)[Symbol.asyncIterator]();
  let next = iterator.next();
  for (;;) {
    const result = await next;
    if (result.done) break;
    next = iterator.next();
    const name = encodeFileName(result.value);
    parts.push(name, NUL);
    bytes += name.length + 1;
    if (bytes >= NAME_BLOCK_BYTES) {
      yield Buffer.concat(parts, bytes);
      parts = [];
      bytes = 0;
    }
  }
  if (bytes > 0) yield Buffer.concat(parts, bytes);
}

async function* toAsync<T>(items: T[]): AsyncGenerator<T> {
  yield* items;
}

/** tar's stderr as warnings: one per line, without the `tar: ` prefix. */
function warningsOf(stderr: string): string[] {
  return stderr
    .split('\n')
    .filter(Boolean)
    .map((l) => l.replace(/^tar: /, ''));
}
