/** A backup or recovery record as the API returns it (the fields these tests read). */
export interface JobRecord {
  id: string;
  status: string;
  error?: string | null;
  sizeBytes?: number;
  durationMs?: number;
}

/**
 * The service's REST API at `baseUrl` (`http://host:port`), called with an `X-API-Key`, as an operator would from
 * outside the container.
 */
export class ServiceApi {
  constructor(
    private readonly baseUrl: string,
    private readonly apiKey: string,
  ) {}

  /** One request under /api/v1/disaster-recovery. @throws when the status is not `expected` (with the body) */
  async call<T = any>(method: string, path: string, body?: unknown, expected = [200, 201, 202]): Promise<T> {
    const res = await fetch(`${this.baseUrl}/api/v1/disaster-recovery${path}`, {
      method,
      headers: { 'X-API-Key': this.apiKey, ...(body === undefined ? {} : { 'Content-Type': 'application/json' }) },
      body: body === undefined ? undefined : JSON.stringify(body),
      signal: AbortSignal.timeout(60_000),
    });
    const text = await res.text();
    if (!expected.includes(res.status)) throw new Error(`${method} ${path}: ${res.status} ${text}`);
    return (text ? JSON.parse(text) : undefined) as T;
  }

  /** Polls `GET path` until the record leaves PENDING/RUNNING. @throws when it has not within `timeoutMs` */
  async waitForJob(path: string, timeoutMs = 300_000): Promise<JobRecord> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const record = await this.call<JobRecord>('GET', path);
      if (!['PENDING', 'RUNNING'].includes(record.status)) return record;
      if (Date.now() > deadline) throw new Error(`${path} still ${record.status} after ${timeoutMs} ms`);
      await new Promise((resolve) => setTimeout(resolve, 500));
    }
  }

  /** Starts a backup and waits for its outcome. @returns the final record (COMPLETED or FAILED) */
  async backup(request: Record<string, unknown>): Promise<JobRecord> {
    const { id } = await this.call<JobRecord>('POST', '/backups', request);
    return this.waitForJob(`/backups/${id}`);
  }

  /** Starts a FULL recovery of `backupId` into `target` and waits for its outcome. */
  async restore(backupId: string, target: Record<string, unknown>, extra: Record<string, unknown> = {}): Promise<JobRecord> {
    const { id } = await this.call<JobRecord>('POST', '/recovery', { backupId, type: 'FULL', target, ...extra });
    return this.waitForJob(`/recovery/${id}`);
  }
}

/** Polls `url` until it answers 200. @returns ms waited. @throws after `timeoutMs` */
export async function waitForHttp200(url: string, timeoutMs: number): Promise<number> {
  const start = Date.now();
  for (;;) {
    const status = await fetch(url, { signal: AbortSignal.timeout(2_000) }).then(
      (r) => r.status,
      () => 0,
    );
    if (status === 200) return Date.now() - start;
    if (Date.now() - start > timeoutMs) throw new Error(`${url} did not answer 200 within ${timeoutMs} ms (last: ${status})`);
    await new Promise((resolve) => setTimeout(resolve, 250));
  }
}
