import { ChildProcess, spawn } from 'node:child_process';
import { mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ControllableServer } from '../contract/storage-driver-contract';
import { freePort } from './server-process';

const CHILD = join(__dirname, 's3rver-process.js');
const READY_TIMEOUT_MS = 15_000;

/** An s3rver process on 127.0.0.1 with one bucket, that a test can kill (SIGKILL) and start again with its data. */
export interface S3TestServer extends ControllableServer {
  /** `http://127.0.0.1:<port>`, for the driver's `endpoint` setting (path-style addressing). */
  readonly endpoint: string;
  readonly bucket: string;
  /** The data directory (s3rver's file store). */
  readonly directory: string;
  /** Ids of the multipart uploads the server still holds (neither completed nor aborted), read from its store. */
  pendingUploads(): string[];
  /** Kills the process if it runs and removes the data directory. */
  close(): Promise<void>;
}

/**
 * Starts s3rver in a child process on a free loopback port, with a fresh temporary data directory and `bucket`
 * created, and waits (polling ListBuckets) until it answers.
 * s3rver runs with `--openssl-legacy-provider`: its listing continuation tokens use DES, which OpenSSL 3 refuses
 * otherwise (listing pages fail). The child is killed when this process exits, whatever happens to the test.
 * @throws when the server does not answer within 15 s (with its output).
 */
export async function startS3Server(bucket = 'dr-test'): Promise<S3TestServer> {
  const port = await freePort();
  const directory = mkdtempSync(join(tmpdir(), 'dr-s3rver-'));
  const endpoint = `http://127.0.0.1:${port}`;
  let child: ChildProcess | undefined;
  let exited: Promise<void> = Promise.resolve();
  let stopping: Promise<void> = Promise.resolve();
  const killOnExit = () => child?.kill('SIGKILL');
  process.once('exit', killOnExit);

  const start = async (): Promise<void> => {
    await stopping;
    if (child) throw new Error('s3rver is already running');
    let output = '';
    const proc = spawn(process.execPath, [CHILD, String(port), directory, bucket], {
      env: { PATH: process.env.PATH, HOME: process.env.HOME, NODE_OPTIONS: '--openssl-legacy-provider' },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    child = proc;
    proc.stdout.on('data', (d) => (output += d));
    proc.stderr.on('data', (d) => (output += d));
    exited = new Promise((resolve) => proc.once('exit', () => resolve()));
    const deadline = Date.now() + READY_TIMEOUT_MS;
    for (;;) {
      if (proc.exitCode !== null || proc.signalCode !== null) {
        child = undefined;
        throw new Error(`s3rver exited during start:\n${output}`);
      }
      try {
        const res = await fetch(`${endpoint}/`, { signal: AbortSignal.timeout(1000) });
        await res.arrayBuffer();
        if (res.ok) return;
      } catch {
        // not listening yet
      }
      if (Date.now() > deadline) {
        proc.kill('SIGKILL');
        await exited;
        child = undefined;
        throw new Error(`s3rver not ready after ${READY_TIMEOUT_MS} ms:\n${output}`);
      }
      await new Promise((r) => setTimeout(r, 50));
    }
  };

  const stop = (): Promise<void> => {
    if (child) {
      const proc = child;
      proc.kill('SIGKILL');
      stopping = exited.then(() => {
        if (child === proc) child = undefined;
      });
    }
    return stopping;
  };

  await start().catch((error: unknown) => {
    process.removeListener('exit', killOnExit);
    rmSync(directory, { recursive: true, force: true });
    throw error;
  });
  return {
    endpoint,
    bucket,
    directory,
    start,
    stop,
    pendingUploads: () => {
      try {
        return readdirSync(join(directory, bucket, '._S3rver_uploads'));
      } catch (error) {
        if ((error as NodeJS.ErrnoException).code === 'ENOENT') return [];
        throw error;
      }
    },
    close: async () => {
      await stop();
      process.removeListener('exit', killOnExit);
      rmSync(directory, { recursive: true, force: true });
    },
  };
}
