/** Object keys refused in JSON bodies: they reach class-transformer's type lookups and prototype chains. */
const FORBIDDEN_KEYS = new Set(['__proto__', 'constructor', 'prototype']);

/**
 * `JSON.parse` reviver for the body parser: refuses a body that has a `__proto__`, `constructor` or `prototype`
 * key at any depth (prototype pollution; class-transformer takes `constructor` for a type and throws a TypeError
 * that would otherwise become a 500). body-parser turns the throw into a 400, answered as VALIDATION_FAILED
 * "malformed request body".
 * @throws SyntaxError on a forbidden key.
 */
export function rejectPrototypeKeys(key: string, value: unknown): unknown {
  if (FORBIDDEN_KEYS.has(key)) throw new SyntaxError(`forbidden key "${key}" in JSON body`);
  return value;
}
