import { createHash } from 'node:crypto';
import { mkdirSync, rmSync, existsSync } from 'node:fs';
import { connect } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Logger } from '@nestjs/common';

/** Where a `pg` client finds the embedded server: a Unix socket directory and port, as libpq names them. */
export interface EmbeddedEndpoint {
  /** Directory holding `.s.PGSQL.<port>`. */
  socketDir: string;
  port: number;
}

const SOCKET_PORT = 5432;
/** Unix socket paths are limited to 107 bytes on Linux (sun_path). */
const MAX_SOCKET_PATH = 100;

/**
 * The embedded metadata store used when `DATABASE_URL` is unset: PGlite (PostgreSQL compiled to WASM) kept in
 * `<dataDir>/pgdata`, served over the PostgreSQL wire protocol on a Unix socket by pglite-socket, so that TypeORM
 * and the `pg` driver talk to it exactly as they talk to a real server.
 *
 * Limits (see README): one process only; all connections share one backend session, so advisory locks do
 * nothing and a query issued outside an open transaction's own manager waits for that transaction to end.
 */
export class EmbeddedPostgres {
  private readonly logger = new Logger(EmbeddedPostgres.name);
  private server?: { stop(): Promise<void> };
  private db?: { close(): Promise<void> };

  constructor(private readonly dataDir: string) {}

  /** The socket endpoint for `dataDir`; a short path under the temp dir when the data dir's path is too long. */
  endpoint(): EmbeddedEndpoint {
    let socketDir = join(this.dataDir, 'run');
    if (join(socketDir, `.s.PGSQL.${SOCKET_PORT}`).length > MAX_SOCKET_PATH) {
      const digest = createHash('sha256').update(this.dataDir).digest('hex').slice(0, 12);
      socketDir = join(tmpdir(), `dr-${digest}`);
    }
    return { socketDir, port: SOCKET_PORT };
  }

  /**
   * Starts PGlite and its socket server unless another process of this service already serves `dataDir`,
   * in which case that server is reused (the CLI beside a running service).
   * @param maxConnections must exceed the pool size of every client that will connect.
   * @returns the endpoint to connect to.
   */
  async start(maxConnections: number): Promise<EmbeddedEndpoint> {
    const endpoint = this.endpoint();
    const socketPath = join(endpoint.socketDir, `.s.PGSQL.${endpoint.port}`);
    mkdirSync(endpoint.socketDir, { recursive: true, mode: 0o700 });
    if (existsSync(socketPath)) {
      if (await isListening(socketPath)) {
        this.logger.log(`embedded database already served at ${socketPath}; connecting to it`);
        return endpoint;
      }
      rmSync(socketPath, { force: true }); // stale socket left by a killed process
    }
    const pgdata = join(this.dataDir, 'pgdata');
    mkdirSync(pgdata, { recursive: true, mode: 0o700 });
    // Both packages ship CommonJS builds; loaded lazily so a DATABASE_URL deployment never loads the WASM.
    const { PGlite } = await import('@electric-sql/pglite');
    const { PGLiteSocketServer } = await import('@electric-sql/pglite-socket');
    const db = await PGlite.create(pgdata);
    const server = new PGLiteSocketServer({ db, path: socketPath, maxConnections });
    await server.start();
    this.db = db;
    this.server = server;
    this.logger.log(`embedded PostgreSQL (PGlite) at ${pgdata}, socket ${socketPath}`);
    return endpoint;
  }

  /** Stops the socket server and closes PGlite, flushing it to disk. Safe to call when not started. */
  async stop(): Promise<void> {
    await this.server?.stop();
    await this.db?.close();
    this.server = undefined;
    this.db = undefined;
  }
}

function isListening(socketPath: string): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = connect(socketPath);
    socket.once('connect', () => {
      socket.destroy();
      resolve(true);
    });
    socket.once('error', () => resolve(false));
  });
}
