import { randomUUID } from 'node:crypto';
import type { Request } from 'express';

/** A request id we accept from a client or a proxy: 1-128 characters of `[A-Za-z0-9._:-]`. */
const SANE_TOKEN = /^[A-Za-z0-9._:-]{1,128}$/;

/**
 * The request's id: `request.id` if a logging layer set one, else the `X-Request-Id` header if it is a sane
 * token, else a new UUID v4. The result is stored on `request.id` so every later reader sees the same value.
 */
export function requestIdOf(request: Request & { id?: unknown }): string {
  if (typeof request.id === 'string' && SANE_TOKEN.test(request.id)) return request.id;
  if (typeof request.id === 'number') return String(request.id);
  const header = request.headers['x-request-id'];
  const presented = Array.isArray(header) ? header[0] : header;
  const id = presented && SANE_TOKEN.test(presented) ? presented : randomUUID();
  request.id = id;
  return id;
}
