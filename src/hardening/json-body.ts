import type { IncomingMessage, ServerResponse } from 'node:http';
import { DrError } from '../errors/dr-error';
import { jsonDepthProblem } from './request-shape';

/** Object keys refused in JSON bodies: they reach class-transformer's type lookups and prototype chains. */
const FORBIDDEN_KEYS = new Set(['__proto__', 'constructor', 'prototype']);

/**
 * `JSON.parse` reviver for the body parser. Refuses a body that has, at any depth:
 * - a `__proto__`, `constructor` or `prototype` key (prototype pollution; class-transformer takes `constructor` for
 *   a type and throws a TypeError that would otherwise become a 500);
 * - a NUL character (U+0000) in a string or key: PostgreSQL cannot store it in `text` or `jsonb`, so it would fail
 *   at insert time as a 500; no field of this API has a use for it.
 * body-parser turns the throw into a 400, answered as VALIDATION_FAILED "malformed request body".
 * @throws SyntaxError on a forbidden key or a NUL character.
 */
export function rejectUnsafeJson(key: string, value: unknown): unknown {
  if (FORBIDDEN_KEYS.has(key)) throw new SyntaxError(`forbidden key "${key}" in JSON body`);
  if (key.includes('\u0000') || (typeof value === 'string' && value.includes('\u0000'))) {
    throw new SyntaxError('NUL character in JSON body');
  }
  return value;
}

/**
 * body-parser's `verify` hook for JSON bodies: runs on the raw bytes before JSON.parse. Refuses a body nested
 * deeper than 32 levels ({@link jsonDepthProblem}: 400 VALIDATION_FAILED naming where), and a charset other than
 * UTF-8 (415: JSON exchanged between systems is UTF-8, RFC 8259 section 8.1, and the depth scan reads UTF-8).
 * body-parser keeps the status of an error that carries one.
 * @throws DrError (with `status` 400) or an Error with `status` 415.
 */
export function verifyJsonBody(_req: IncomingMessage, _res: ServerResponse, body: Buffer, encoding: string | null): void {
  if (encoding && !/^utf-?8$/i.test(encoding)) {
    throw Object.assign(new Error(`unsupported charset "${encoding.toUpperCase()}": JSON bodies are UTF-8`), { status: 415, type: 'charset.unsupported' });
  }
  const problem = jsonDepthProblem(body);
  if (problem) throw Object.assign(DrError.validation([problem]), { status: 400 });
}
