import { randomUUID } from 'node:crypto';
import type { IncomingMessage, ServerResponse } from 'node:http';

/** Header carrying the request id, read from the client and always echoed in the response. */
export const REQUEST_ID_HEADER = 'X-Request-Id';

/** A client's request id is kept when it is a short token: letters, digits and `._:-`, 1 to 128 characters. */
const SANE_REQUEST_ID = /^[A-Za-z0-9._:-]{1,128}$/;

/**
 * The id of a request: the client's `X-Request-Id` when it is a sane token (so ids can be followed across
 * services), else a new UUID (v4). Sets the `X-Request-Id` response header. pino-http stores the result in
 * `req.id`, where interceptors and filters can read it.
 */
export function requestIdOf(req: IncomingMessage, res: ServerResponse): string {
  const header = req.headers['x-request-id'];
  const presented = Array.isArray(header) ? header[0] : header;
  const id = presented && SANE_REQUEST_ID.test(presented) ? presented : randomUUID();
  res.setHeader(REQUEST_ID_HEADER, id);
  return id;
}
