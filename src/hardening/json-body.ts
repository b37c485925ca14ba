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
