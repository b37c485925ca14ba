import { createServer, IncomingHttpHeaders, IncomingMessage, OutgoingHttpHeaders, request as httpRequest } from 'node:http';
import { AddressInfo } from 'node:net';

/** One request that went through the proxy. */
export interface ProxiedRequest {
  method: string;
  /** Path and query, e.g. `/devstoreaccount1/c/blob?comp=block&blockid=...`. */
  url: string;
  headers: IncomingHttpHeaders;
  /** Request body size in bytes. */
  bodyBytes: number;
  /** When the proxy received the request and when the answer was complete (ms, `performance.now()`). */
  startedAt: number;
  endedAt?: number;
}

/** A canned answer the proxy gives instead of forwarding. */
export interface ProxyAnswer {
  status: number;
  headers?: OutgoingHttpHeaders;
  body?: string;
}

/** Hooks of a {@link startHttpProxy} proxy; each sees the request before it is forwarded. */
export interface ProxyHooks {
  /** Holds the request this long (ms) before forwarding it, to make overlapping requests observable. */
  delayMs?(req: IncomingMessage): number;
  /** Answers the request itself (nothing is forwarded) when it returns an answer. */
  answer?(req: IncomingMessage): ProxyAnswer | undefined;
  /** Changes the upstream answer's status before it is sent back (the request did reach the server). */
  responseStatus?(req: IncomingMessage, status: number): number;
  /** Changes the upstream answer's headers before they are sent back. */
  responseHeaders?(req: IncomingMessage, headers: IncomingHttpHeaders): IncomingHttpHeaders;
}

export interface HttpProxy {
  /** `http://127.0.0.1:<port>` */
  origin: string;
  requests: ProxiedRequest[];
  /** The largest number of requests matching `filter` that were in flight at the same time. */
  maxConcurrent(filter: (r: ProxiedRequest) => boolean): number;
  close(): Promise<void>;
}

/**
 * A recording HTTP/1.1 proxy on 127.0.0.1 in front of `upstream` (`host:port`), for tests that observe or alter
 * what a client sends to a storage emulator (request concurrency, sizes, simulated service answers).
 */
export async function startHttpProxy(upstream: string, hooks: ProxyHooks = {}): Promise<HttpProxy> {
  const [host, port] = upstream.split(':');
  const requests: ProxiedRequest[] = [];
  const server = createServer((req, res) => {
    const record: ProxiedRequest = { method: req.method!, url: req.url!, headers: req.headers, bodyBytes: 0, startedAt: performance.now() };
    requests.push(record);
    req.on('data', (chunk: Buffer) => (record.bodyBytes += chunk.length));
    res.on('close', () => (record.endedAt = performance.now()));
    const canned = hooks.answer?.(req);
    if (canned) {
      req.resume();
      req.on('end', () => res.writeHead(canned.status, canned.headers).end(canned.body));
      return;
    }
    req.pause();
    setTimeout(
      () => {
        const upstreamReq = httpRequest({ host, port: Number(port), method: req.method, path: req.url, headers: req.headers }, (upstreamRes) => {
          const headers = hooks.responseHeaders ? hooks.responseHeaders(req, { ...upstreamRes.headers }) : upstreamRes.headers;
          res.writeHead(hooks.responseStatus?.(req, upstreamRes.statusCode!) ?? upstreamRes.statusCode!, headers);
          upstreamRes.pipe(res);
        });
        upstreamReq.on('error', () => res.destroy());
        req.pipe(upstreamReq);
        req.resume();
      },
      hooks.delayMs?.(req) ?? 0,
    );
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    origin: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
    requests,
    maxConcurrent: (filter) => {
      const events = requests.filter(filter).flatMap((r) => [
        { at: r.startedAt, delta: 1 },
        { at: r.endedAt ?? Infinity, delta: -1 },
      ]);
      events.sort((a, b) => a.at - b.at || a.delta - b.delta);
      let current = 0;
      let max = 0;
      for (const e of events) max = Math.max(max, (current += e.delta));
      return max;
    },
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}
