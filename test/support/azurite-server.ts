import { ChildProcess, spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { BlobServiceClient, StorageSharedKeyCredential } from '@azure/storage-blob';
import { ControllableServer } from '../contract/storage-driver-contract';
import { freePort } from './server-process';

/** Azurite's well-known development account (public, documented; not a secret). */
export const AZURITE_ACCOUNT = 'devstoreaccount1';
export const AZURITE_KEY = 'Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw==';

const AZURITE_BLOB_MAIN = join(dirname(require.resolve('azurite/package.json')), 'dist', 'src', 'blob', 'main.js');

/**
 * What runs in the child: Azurite's blob service, plus one hook. Azurite keeps its metadata (LokiJS) in memory and
 * saves it every 5 s, so a SIGKILL loses the last seconds of acknowledged writes, which the real service never
 * does. The hook saves every LokiJS database when the parent sends `flush`; {@link AzuriteServer.stop} flushes, then
 * SIGKILLs. Connections still break mid-request; only Azurite's lost-writes window is closed.
 */
const CHILD_SCRIPT = `
const [main, ...args] = process.argv.slice(1);
const Loki = require(require.resolve('lokijs', { paths: [require('path').dirname(main)] }));
const databases = new Set();
const configure = Loki.prototype.configureOptions;
Loki.prototype.configureOptions = function (...a) { databases.add(this); return configure.apply(this, a); };
process.on('message', (m) => {
  if (!m || m.type !== 'flush') return;
  Promise.all([...databases].map((db) => new Promise((done) => db.saveDatabase(() => done()))))
    .then(() => process.send({ type: 'flushed', id: m.id }));
});
process.argv = [process.argv[0], main, ...args];
require(main);
`;

/** An Azurite blob service in a child process, for contract and driver tests. */
export interface AzuriteServer extends ControllableServer {
  /** `http://127.0.0.1:<port>/devstoreaccount1` */
  accountUrl: string;
  /** A connection string with the development account's key. */
  connectionString: string;
  /** Creates a container (if missing) with the development account's key. */
  createContainer(name: string): Promise<void>;
  /** Stops the server for good and removes its data directory. */
  close(): Promise<void>;
}

/**
 * Starts Azurite's blob service on a free 127.0.0.1 port with a temporary data directory (`--location`),
 * `--skipApiVersionCheck` (the SDK speaks a newer API version than Azurite), `--loose`, `--silent` and
 * `--disableTelemetry`, waits until it answers HTTP, and creates `containers`. `stop()` flushes Azurite's metadata
 * and SIGKILLs it; `start()` restarts it on the same port and data. The child is killed if the test process exits.
 * @param readyTimeoutMs how long to wait for the first HTTP answer (ms)
 */
export async function startAzurite(containers: string[] = [], readyTimeoutMs = 20_000): Promise<AzuriteServer> {
  const port = await freePort();
  const location = mkdtempSync(join(tmpdir(), 'dr-azurite-'));
  const accountUrl = `http://127.0.0.1:${port}/${AZURITE_ACCOUNT}`;
  let child: ChildProcess | null = null;
  let output = '';
  let flushes = 0;
  const killOnExit = () => child?.kill('SIGKILL');
  process.once('exit', killOnExit);

  const launch = async (): Promise<void> => {
    output = '';
    const args = ['--blobHost', '127.0.0.1', '--blobPort', String(port), '--location', location];
    args.push('--skipApiVersionCheck', '--loose', '--silent', '--disableTelemetry');
    const started = spawn(process.execPath, ['-e', CHILD_SCRIPT, AZURITE_BLOB_MAIN, ...args], {
      stdio: ['ignore', 'pipe', 'pipe', 'ipc'],
      env: { PATH: process.env.PATH, HOME: process.env.HOME },
    });
    child = started;
    started.stdout!.on('data', (d) => (output += d));
    started.stderr!.on('data', (d) => (output += d));
    const deadline = Date.now() + readyTimeoutMs;
    for (;;) {
      if (started.exitCode !== null || started.signalCode !== null) {
        throw new Error(`Azurite exited (${started.exitCode ?? started.signalCode}):\n${output}`);
      }
      try {
        await fetch(`${accountUrl}?comp=list`, { signal: AbortSignal.timeout(1000) });
        return; // any HTTP answer (403 without credentials) means it is listening
      } catch {
        // not yet
      }
      if (Date.now() > deadline) {
        started.kill('SIGKILL');
        throw new Error(`Azurite not ready after ${readyTimeoutMs} ms:\n${output}`);
      }
      await new Promise((r) => setTimeout(r, 100));
    }
  };

  const kill = async (): Promise<void> => {
    const running = child;
    child = null;
    if (!running || running.exitCode !== null || running.signalCode !== null) return;
    const exited = new Promise((resolve) => running.once('exit', resolve));
    running.kill('SIGKILL');
    await exited;
  };

  const flush = async (): Promise<void> => {
    const running = child;
    if (!running?.connected) return;
    const id = ++flushes;
    await new Promise<void>((resolve) => {
      const timer = setTimeout(done, 2000); // a flush that cannot answer must not block the kill
      function done() {
        clearTimeout(timer);
        running!.off('message', onMessage);
        resolve();
      }
      function onMessage(m: { type?: string; id?: number }) {
        if (m?.type === 'flushed' && m.id === id) done();
      }
      running.on('message', onMessage);
      running.send({ type: 'flush', id });
    });
  };

  const connectionString = `DefaultEndpointsProtocol=http;AccountName=${AZURITE_ACCOUNT};AccountKey=${AZURITE_KEY};BlobEndpoint=${accountUrl};`;
  const createContainer = async (name: string): Promise<void> => {
    const service = new BlobServiceClient(accountUrl, new StorageSharedKeyCredential(AZURITE_ACCOUNT, AZURITE_KEY));
    await service.getContainerClient(name).createIfNotExists();
  };

  await launch();
  try {
    for (const name of containers) await createContainer(name);
  } catch (error) {
    await kill();
    rmSync(location, { recursive: true, force: true });
    throw error;
  }
  return {
    accountUrl,
    connectionString,
    createContainer,
    stop: async () => {
      await flush();
      await kill();
    },
    start: async () => {
      if (child) return;
      await launch();
    },
    close: async () => {
      await kill();
      process.off('exit', killOnExit);
      rmSync(location, { recursive: true, force: true });
    },
  };
}
