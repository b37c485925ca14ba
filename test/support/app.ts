import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { INestApplication } from '@nestjs/common';
import request from 'supertest';
import { createApp } from '../../src/bootstrap';
import { AppConfig } from '../../src/config/app-config';
import { createDatabase, databaseUrl, dropDatabase } from './database';
import { contractRequest } from './openapi-contract';

export const API = '/api/v1/disaster-recovery';
export const ADMIN_KEY = 'test-admin-key-0123456789abcdefghij';

/** An in-process service on a fresh database of the local PostgreSQL, with its own data and restore dirs. */
export interface TestService {
  app: INestApplication;
  /** supertest on the app; every response is checked against api-docs/openapi.yaml (see `contractRequest`). */
  http: () => ReturnType<typeof request>;
  database: string;
  dataDir: string;
  restoreRoot: string;
  /** The environment the configuration was built from (process.env with the test's settings over it). */
  configEnv: NodeJS.ProcessEnv;
  close(): Promise<void>;
}

/**
 * Boots the real application (real migrations, real engines, real storage) on a fresh database.
 * `env` overrides the configuration (`DR_*`, `DATABASE_URL`: handed to {@link AppConfig.fromEnv}, never written to
 * process.env); its other variables (`DRS_*`, `DR_TEST_*`...) are the secrets that references name (`env:NAME`),
 * which the service reads from its process environment: those are set for the service's life and put back on close.
 */
export async function startService(env: Record<string, string> = {}): Promise<TestService> {
  const database = await createDatabase('drt');
  const dataDir = mkdtempSync(join(tmpdir(), 'dr-data-'));
  const restoreRoot = mkdtempSync(join(tmpdir(), 'dr-restores-'));
  const settings: Record<string, string> = {
    DATABASE_URL: databaseUrl(database),
    DR_DATA_DIR: dataDir,
    DR_RESTORE_ROOTS: restoreRoot,
    DR_ADMIN_API_KEY: ADMIN_KEY,
    DR_SCHEDULER_ENABLED: 'false',
    DR_LOG_LEVEL: 'error',
    ...env,
  };
  // Test files run one after another in one process: the secret variables this one sets are put back on close.
  const secrets = Object.fromEntries(Object.entries(settings).filter(([k]) => !isConfigVariable(k)));
  const previous = Object.fromEntries(Object.keys(secrets).map((k) => [k, process.env[k]]));
  Object.assign(process.env, secrets);
  const configEnv = { ...process.env, ...settings };
  const app = await createApp(AppConfig.fromEnv(configEnv));
  await app.init();
  return {
    app,
    http: () => contractRequest(app.getHttpServer()),
    database,
    dataDir,
    restoreRoot,
    configEnv,
    close: async () => {
      await app.close();
      await dropDatabase(database);
      for (const [k, v] of Object.entries(previous)) {
        if (v === undefined) delete process.env[k];
        else process.env[k] = v;
      }
    },
  };
}

/** Whether `name` is read by {@link AppConfig.fromEnv} (a setting) rather than named by a secret reference. */
function isConfigVariable(name: string): boolean {
  return (name.startsWith('DR_') && !name.startsWith('DR_TEST_')) || ['DATABASE_URL', 'PORT', 'HOST', 'DISASTER_RECOVERY_PORT'].includes(name);
}

/** Polls `fetch` every 100 ms until `done` holds or `timeoutMs` passes. @returns the last value */
export async function waitFor<T>(fetch: () => Promise<T>, done: (value: T) => boolean, timeoutMs = 60_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await fetch();
    if (done(value) || Date.now() > deadline) return value;
    await new Promise((r) => setTimeout(r, 100));
  }
}

const TERMINAL = ['COMPLETED', 'FAILED'];

/** Starts a backup through the API and waits for its outcome. @returns the final backup body */
export async function backupAndWait(service: TestService, body: object, key = ADMIN_KEY): Promise<Record<string, any>> {
  const created = await service.http().post(`${API}/backups`).set('X-API-Key', key).send(body);
  if (created.status !== 202) throw new Error(`backup not accepted: ${created.status} ${JSON.stringify(created.body)}`);
  return waitFor(
    async () => (await service.http().get(`${API}/backups/${created.body.id}`).set('X-API-Key', key)).body,
    (b) => TERMINAL.includes(b.status),
  );
}

/** Starts a recovery through the API and waits for its outcome. @returns the final recovery body */
export async function recoverAndWait(service: TestService, body: object, key = ADMIN_KEY): Promise<Record<string, any>> {
  const created = await service.http().post(`${API}/recovery`).set('X-API-Key', key).send(body);
  if (created.status !== 202) throw new Error(`recovery not accepted: ${created.status} ${JSON.stringify(created.body)}`);
  return waitFor(
    async () => (await service.http().get(`${API}/recovery/${created.body.id}`).set('X-API-Key', key)).body,
    (r) => TERMINAL.includes(r.status),
  );
}
