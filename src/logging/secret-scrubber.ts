/**
 * Patterns of secrets that may end up in log text (messages, URLs, error messages), each with its replacement.
 * The API key format is the service's own (`dr_<12 hex prefix>_<base64url secret>`, see ApiKeysService); the
 * prefix is kept (it identifies the key and is stored in clear), the secret part is masked.
 */
const PATTERNS: [RegExp, string][] = [
  // userinfo password of any URL: postgresql://user:pw@host → postgresql://user:***@host (RFC 3986 §3.2.1)
  [/\b([a-z][a-z0-9+.-]*:\/\/[^\s:/?#@]*):[^\s/?#@]*@/gi, '$1:***@'],
  // the same URL percent-encoded, as a query parameter of a logged request URL: postgresql%3A%2F%2Fu%3Apw%40host
  [/\b([a-z][a-z0-9+.-]*%3A%2F%2F[^\s%/?#@&]*)%3A[^\s/?#@&]*?%40/gi, '$1%3A***%40'],
  // age X25519 identities (https://age-encryption.org/v1): AGE-SECRET-KEY-1 + Bech32 data
  [/AGE-SECRET-KEY-1[0-9A-Za-z]+/g, 'AGE-SECRET-KEY-1***'],
  // HTTP bearer tokens (RFC 6750 §2.1 b64token)
  [/\bBearer\s+[A-Za-z0-9\-._~+/]+=*/gi, 'Bearer ***'],
  // API keys of this service
  [/\bdr_([0-9a-f]{12})_[A-Za-z0-9_-]+/g, 'dr_$1_***'],
  // key=value pairs of query strings, libpq connection strings and environment dumps (PGPASSWORD=...)
  [/\b(\w*(?:password|passwd|pwd|secret|token|api[_-]?key))=(?:'[^']*'|"[^"]*"|[^\s&;,]+)/gi, '$1=***'],
  // the same as JSON members: "password": "..."
  [/("\w*(?:password|secret|token|api[_-]?key)"\s*:\s*)"(?:[^"\\]|\\.)*"/gi, '$1"***"'],
];

/** Names of members whose values are secrets whatever they look like (query parameters, JSON bodies, headers). */
const SECRET_NAME = /pass(word|wd)?$|^pwd$|secret|token|api[-_]?key|authorization|cookie|credential/i;

/** `text` with every secret the {@link PATTERNS} recognise replaced by `***`. */
export function scrubSecrets(text: string): string {
  let result = text;
  for (const [pattern, replacement] of PATTERNS) result = result.replace(pattern, replacement);
  return result;
}

/**
 * A copy of `value` with {@link scrubSecrets} applied to every string and the values of members named like
 * secrets ({@link SECRET_NAME}: `password`, `token`, `apiKey`...) replaced by `***`, recursing through plain objects and arrays
 * up to `depth` levels (deeper values are left out). Other objects (streams, requests) are returned as they are:
 * only already-serialized log data should be passed here.
 */
export function scrubDeep(value: unknown, depth = 6): unknown {
  if (typeof value === 'string') return scrubSecrets(value);
  if (value === null || typeof value !== 'object') return value;
  if (depth <= 0) return '[too deep]';
  if (Array.isArray(value)) return value.map((v) => scrubDeep(v, depth - 1));
  const proto: unknown = Object.getPrototypeOf(value);
  if (proto !== Object.prototype && proto !== null) return value;
  return Object.fromEntries(Object.entries(value).map(([k, v]) => [k, typeof v === 'string' && SECRET_NAME.test(k) ? '***' : scrubDeep(v, depth - 1)]));
}
