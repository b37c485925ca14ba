import { ChildProcess, spawn } from 'node:child_process';
import { join } from 'node:path';
import { createServer } from 'node:net';
import { openApiContract } from './openapi-contract';

const MAIN = join(__dirname, '..', '..', 'dist', 'main.js');

/** A service running as its own process (`node dist/main.js`), for tests that kill or duplicate it. */
export interface ServerProcess {
  child: ChildProcess;
  url: string;
  output: () => string;
  /** SIGKILL: no shutdown hook runs, as in a crash or an OOM kill. */
  kill9(): Promise<void>;
  /** SIGTERM and wait for the exit. @returns the exit code, or the signal that ended it (Nest re-raises SIGTERM after its shutdown hooks) */
  stop(): Promise<number | string | null>;
}

/** A free TCP port on the loopback interface. */
export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address() as { port: number };
      server.close(() => resolve(port));
    });
    server.on('error', reject);
  });
}

/** Starts the built service with `env` and waits until its readiness probe answers 200 (or fails after `timeoutMs`). */
export async function startServerProcess(env: Record<string, string>, timeoutMs = 60_000): Promise<ServerProcess> {
  const port = await freePort();
  const child = spawn(process.execPath, ['--no-incremental-marking', MAIN], {
    env: { PATH: process.env.PATH, HOME: process.env.HOME, HOST: '127.0.0.1', PORT: String(port), DR_LOG_LEVEL: 'log', ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let output = '';
  child.stdout.on('data', (d) => (output += d));
  child.stderr.on('data', (d) => (output += d));
  const exited = new Promise<number | string | null>((resolve) => child.once('exit', (code, signal) => resolve(code ?? signal)));
  const url = `http://127.0.0.1:${port}`;
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    if (child.exitCode !== null) throw new Error(`service exited with ${child.exitCode}:\n${output}`);
    try {
      const res = await fetch(`${url}/actuator/health/readiness`);
      if (res.status === 200) break;
    } catch {
      // not listening yet
    }
    if (Date.now() > deadline) {
      child.kill('SIGKILL');
      throw new Error(`service not ready after ${timeoutMs} ms:\n${output}`);
    }
    await new Promise((r) => setTimeout(r, 200));
  }
  return {
    child,
    url,
    output: () => output,
    kill9: async () => {
      child.kill('SIGKILL');
      await exited;
    },
    stop: async () => {
      child.kill('SIGTERM');
      return exited;
    },
  };
}

/**
 * fetch() against a server process with the admin key; returns status and parsed JSON body.
 * Throws when the response breaks api-docs/openapi.yaml (see `OpenApiContract`).
 */
export async function call(server: ServerProcess, key: string, method: string, path: string, body?: unknown): Promise<{ status: number; body: any }> {
  const res = await fetch(`${server.url}${path}`, {
    method,
    headers: { 'X-API-Key': key, 'Content-Type': 'application/json' },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  const text = await res.text();
  const contentType = res.headers.get('content-type') ?? undefined;
  const parsed = text && /[/+]json\b/.test(contentType ?? '') ? JSON.parse(text) : undefined;
  const violation = openApiContract().violationOf({ method, path, status: res.status, contentType, body: parsed, hasBody: text.length > 0 });
  if (violation) throw new Error(violation);
  return { status: res.status, body: text ? JSON.parse(text) : undefined };
}
