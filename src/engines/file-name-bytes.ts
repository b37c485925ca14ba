/**
 * File names are bytes on Linux: any byte but `/` and NUL, with no encoding. The service handles them as JavaScript
 * strings decoded the way Python's `surrogateescape` error handler does (PEP 383): a name that is valid UTF-8 becomes
 * the usual string, and each byte that is not part of a valid UTF-8 sequence becomes the lone surrogate
 * U+DC80..U+DCFF (0xDC00 + the byte). Valid UTF-8 never decodes to a lone surrogate, so the mapping is one-to-one:
 * {@link encodeFileName} gives back the exact bytes, and names that are valid UTF-8 (all names written before this
 * existed) are unchanged. Such strings round-trip through `JSON.stringify`/`JSON.parse` (lone surrogates are written as
 * `\udcXX` escapes), which the scratch spools rely on; what leaves the service (the file index of the details
 * object, the API) carries them as base64 instead (see {@link indexPathOf} in file-index.ts).
 */

import { isUtf8 } from 'node:buffer';

/** A lone low surrogate that stands for an undecodable byte (not the second half of a surrogate pair). */
const ESCAPED_BYTE = /(?<![\ud800-\udbff])[\udc80-\udcff]/;
const ESCAPED_BYTES = /(?<![\ud800-\udbff])[\udc80-\udcff]/g;
/** Any surrogate: a string without one is plain UTF-16 text (the common case, checked first). */
const SURROGATE = /[\ud800-\udfff]/;
/** Any lone surrogate, high or low. */
const LONE_SURROGATE = /[\ud800-\udbff](?![\udc00-\udfff])|(?<![\ud800-\udbff])[\udc00-\udfff]/;

/**
 * Decodes a file name (or a `/`-separated path) from its bytes: UTF-8, each undecodable byte as U+DC00 + byte.
 * UTF-8 validity follows RFC 3629 (the Unicode Standard's table 3-7): no overlong forms, no encoded surrogates,
 * nothing above U+10FFFF.
 */
export function decodeFileName(bytes: Buffer): string {
  if (isUtf8(bytes)) return bytes.toString('utf8');
  let out = '';
  let i = 0;
  while (i < bytes.length) {
    const length = validSequenceLength(bytes, i);
    if (length === 0) {
      out += String.fromCharCode(0xdc00 + bytes[i]);
      i++;
    } else {
      out += bytes.toString('utf8', i, i + length);
      i += length;
    }
  }
  return out;
}

/** Length (1..4) of the valid UTF-8 sequence starting at `i`, or 0 when the byte there starts none. */
function validSequenceLength(b: Buffer, i: number): number {
  const c = b[i];
  if (c < 0x80) return 1;
  const cont = (k: number, lo = 0x80, hi = 0xbf) => i + k < b.length && b[i + k] >= lo && b[i + k] <= hi;
  if (c >= 0xc2 && c <= 0xdf) return cont(1) ? 2 : 0;
  if (c === 0xe0) return cont(1, 0xa0) && cont(2) ? 3 : 0;
  if ((c >= 0xe1 && c <= 0xec) || c === 0xee || c === 0xef) return cont(1) && cont(2) ? 3 : 0;
  if (c === 0xed) return cont(1, 0x80, 0x9f) && cont(2) ? 3 : 0; // not U+D800..U+DFFF
  if (c === 0xf0) return cont(1, 0x90) && cont(2) && cont(3) ? 4 : 0;
  if (c >= 0xf1 && c <= 0xf3) return cont(1) && cont(2) && cont(3) ? 4 : 0;
  if (c === 0xf4) return cont(1, 0x80, 0x8f) && cont(2) && cont(3) ? 4 : 0;
  return 0;
}

/**
 * The bytes of a name decoded by {@link decodeFileName}.
 * @throws Error when the string holds a lone surrogate that is not an escaped byte (it did not come from a name)
 */
export function encodeFileName(name: string): Buffer {
  if (!SURROGATE.test(name)) return Buffer.from(name, 'utf8');
  if (!hasEscapedBytes(name)) {
    if (LONE_SURROGATE.test(name)) throw new Error(`not a file name: ${JSON.stringify(name)} holds a lone surrogate`);
    return Buffer.from(name, 'utf8');
  }
  const parts: Buffer[] = [];
  let start = 0;
  for (const match of name.matchAll(ESCAPED_BYTES)) {
    const at = match.index;
    if (at > start) parts.push(encodeFileName(name.slice(start, at)));
    parts.push(Buffer.of(name.charCodeAt(at) - 0xdc00));
    start = at + 1;
  }
  if (start < name.length) parts.push(encodeFileName(name.slice(start)));
  return Buffer.concat(parts);
}

/** Whether a decoded name holds bytes that are not valid UTF-8 (escaped as lone surrogates). */
export function hasEscapedBytes(name: string): boolean {
  return SURROGATE.test(name) && ESCAPED_BYTE.test(name);
}

/**
 * A decoded name for people (messages, the index's `path` beside `pathB64`): each undecodable byte written `\xNN`
 * (lower-case hex), as Python's `backslashreplace` does. Not unique: a name may hold a real `\x` too.
 */
export function displayFileName(name: string): string {
  return name.replace(ESCAPED_BYTES, (c) => `\\x${(c.charCodeAt(0) - 0xdc00).toString(16).padStart(2, '0')}`);
}
