import { ChildProcess, spawn } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { freePort } from './server-process';

const SERVER = join(__dirname, 'gcs-emulator-server.js');

/** The package holding the emulator (firebase-tools), installed with `npm ci --prefix test/emulators/gcs`. */
export const GCS_EMULATOR_PACKAGE = join(__dirname, '..', 'emulators', 'gcs');

/** Whether the emulator's package is installed. */
export function gcsEmulatorInstalled(): boolean {
  return existsSync(join(GCS_EMULATOR_PACKAGE, 'node_modules', 'firebase-tools', 'package.json'));
}

/** One request the emulator received on a resumable upload session. */
export interface SessionRequest {
  /** Object name the session writes. */
  object: string;
  /** The request's Content-Range (`bytes 0-16777215/*`), or `DELETE` for a cancellation. */
  contentRange: string | null;
  /** Body bytes received. */
  bytes: number;
  /** HTTP status answered (308 for an accepted intermediate chunk, 200 when finalized, 499 cancelled). */
  status: number;
}

/** A GCS emulator in a child process (see gcs-emulator-server.js for what it is and what was changed). */
export interface GcsEmulator {
  /** `http://127.0.0.1:<port>`, for the driver's `apiEndpoint`. */
  readonly apiEndpoint: string;
  /** Kills the process with SIGKILL (connections break mid-request) and waits for it to exit. */
  stop(): Promise<void>;
  /** Starts it again on the same port with the same data directory: published objects are still there. */
  start(): Promise<void>;
  /** Kills the process if it runs and deletes the data directory. */
  close(): Promise<void>;
  /** Requests received on upload sessions since the last start (the log lives in the emulator process). */
  sessionRequests(): Promise<SessionRequest[]>;
}

/**
 * Starts the emulator on a free 127.0.0.1 port with a fresh temp data dir and creates `bucket` (the emulator
 * creates a bucket on first reference; a listing does it).
 * @throws Error with the child's output when it does not answer within `timeoutMs`.
 */
export async function startGcsEmulator(bucket: string, timeoutMs = 30_000): Promise<GcsEmulator> {
  const port = await freePort();
  const dataDir = mkdtempSync(join(tmpdir(), 'dr-gcs-emulator-'));
  const apiEndpoint = `http://127.0.0.1:${port}`;
  let child: ChildProcess | undefined;
  let exited: Promise<void> = Promise.resolve();
  const killOnExit = () => child?.kill('SIGKILL');
  process.once('exit', killOnExit);

  const start = async (): Promise<void> => {
    if (child) throw new Error('GCS emulator already running');
    const proc = spawn(process.execPath, [SERVER, String(port), dataDir], {
      env: { PATH: process.env.PATH, HOME: dataDir, TMPDIR: dataDir, NODE_ENV: 'test' },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    child = proc;
    let output = '';
    proc.stderr.on('data', (d) => (output += d));
    exited = new Promise((resolve) => proc.once('exit', () => resolve()));
    await new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => {
        proc.kill('SIGKILL');
        reject(new Error(`GCS emulator not ready after ${timeoutMs} ms:\n${output}`));
      }, timeoutMs);
      proc.stdout.on('data', (d) => {
        output += d;
        if (/^ready$/m.test(output)) {
          clearTimeout(timer);
          resolve();
        }
      });
      proc.once('exit', (code, signal) => {
        clearTimeout(timer);
        child = undefined;
        reject(new Error(`GCS emulator exited (${code ?? signal}):\n${output}`));
      });
    });
    proc.stdout.resume();
    const res = await fetch(`${apiEndpoint}/storage/v1/b/${bucket}/o?maxResults=1`);
    if (!res.ok) throw new Error(`GCS emulator: creating bucket ${bucket} answered ${res.status}`);
  };

  const stop = async (): Promise<void> => {
    const proc = child;
    if (!proc) return;
    proc.kill('SIGKILL');
    await exited;
    child = undefined;
  };

  await start();
  return {
    apiEndpoint,
    start,
    stop,
    close: async () => {
      await stop();
      process.removeListener('exit', killOnExit);
      rmSync(dataDir, { recursive: true, force: true });
    },
    sessionRequests: async () => (await (await fetch(`${apiEndpoint}/_emulator/chunks`)).json()) as SessionRequest[],
  };
}
