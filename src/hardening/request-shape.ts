import { FieldProblem } from '../errors/dr-error';

/**
 * Deepest nesting of objects and arrays a request may have. The deepest documented shape (a storage location's
 * `settings.objectLock.mode`, a recovery's `target.recoveryTarget.time`) is 3 levels; class-transformer and
 * class-validator recurse once per level, and a 4 KB body of 2,000 nested arrays overflowed their stack (a 500).
 */
export const MAX_REQUEST_DEPTH = 32;

/** At most this many problems are reported for one request (a body full of bad strings says enough with 20). */
const MAX_PROBLEMS = 20;

/** A lone UTF-16 surrogate: a high one not followed by a low one, or a low one not preceded by a high one. */
const LONE_SURROGATE = /[\ud800-\udbff](?![\udc00-\udfff])|(?<![\ud800-\udbff])[\udc00-\udfff]/;
const LONE_SURROGATES = new RegExp(LONE_SURROGATE.source, 'g');

/**
 * Whether `text` is well-formed Unicode (no lone UTF-16 surrogate), as ES2024's String.prototype.isWellFormed,
 * which the ES2022 library this project compiles against does not declare.
 */
export function isWellFormedUnicode(text: string): boolean {
  return !LONE_SURROGATE.test(text);
}

/** `text` with every lone surrogate replaced by U+FFFD, as ES2024's String.prototype.toWellFormed. */
export function toWellFormedUnicode(text: string): string {
  return text.replace(LONE_SURROGATES, '\ufffd');
}

/** The message of a value nested deeper than {@link MAX_REQUEST_DEPTH}. */
export const TOO_DEEP_MESSAGE = `nested deeper than ${MAX_REQUEST_DEPTH} levels`;

/** The message of a string or key that is not well-formed Unicode. */
export const ILL_FORMED_MESSAGE = 'must be well-formed Unicode (it holds a lone UTF-16 surrogate)';

/**
 * Checks the shape of a parsed request (a JSON body, a query string, route parameters) before anything transforms
 * it:
 * - no object or array nested deeper than {@link MAX_REQUEST_DEPTH} levels below the top level (which is level 0);
 *   the walk itself recurses at most that deep, so a hostile depth cannot overflow the stack here either;
 * - every string and key is well-formed Unicode: a lone UTF-16 surrogate (`"\ud800"` in JSON) cannot be stored in a
 *   PostgreSQL `text` or `jsonb` column, nor written as UTF-8 into a path or a log, so it is refused here instead of
 *   failing later as a 500 (see ECMAScript's String.prototype.isWellFormed).
 * Cost: 2-3 ms for a 1.2 MB body of 40,000 values once warm, where JSON.parse of it takes 6-16 ms (measured here).
 * @param value the parsed input.
 * @param root the field name of `value` itself ('' for a whole body or query).
 * @returns the problems (at most 20), each naming the dotted field path (`source.include.0`), in document order;
 *   ill-formed keys are shown with U+FFFD in place of the lone surrogate. Empty when the input is fine.
 */
export function requestShapeProblems(value: unknown, root = ''): FieldProblem[] {
  const problems: FieldProblem[] = [];
  const path: string[] = root ? [root] : [];
  const field = () => path.join('.') || 'body';
  const visit = (current: unknown, depth: number): void => {
    if (problems.length >= MAX_PROBLEMS) return;
    if (typeof current === 'string') {
      if (!isWellFormedUnicode(current)) problems.push({ field: field(), message: ILL_FORMED_MESSAGE });
      return;
    }
    if (current === null || typeof current !== 'object') return;
    if (depth > MAX_REQUEST_DEPTH) {
      problems.push({ field: field(), message: TOO_DEEP_MESSAGE });
      return;
    }
    if (Array.isArray(current)) {
      for (let i = 0; i < current.length; i++) {
        path.push(String(i));
        visit(current[i], depth + 1);
        path.pop();
      }
      return;
    }
    for (const key of Object.keys(current)) {
      const wellFormed = isWellFormedUnicode(key);
      path.push(wellFormed ? key : toWellFormedUnicode(key));
      if (wellFormed) visit((current as Record<string, unknown>)[key], depth + 1);
      else if (problems.length < MAX_PROBLEMS) problems.push({ field: field(), message: ILL_FORMED_MESSAGE });
      path.pop();
    }
  };
  visit(value, 0);
  return problems;
}

/**
 * Finds where a raw JSON text nests deeper than {@link MAX_REQUEST_DEPTH} (the same levels as
 * {@link requestShapeProblems}), in one pass over the bytes and before anything parses it: V8's JSON.parse with a
 * reviver (as the body parser runs it) took 6.3 s for a 1 MB body of nested arrays, an event-loop stall any caller
 * could cause before authentication. Only the ASCII structural bytes (`{ [ ] } , : "` and `\\` in strings) are
 * looked at, so UTF-8 text needs no decoding; object keys on the path are decoded for the message.
 * @param json the body's bytes, UTF-8 (RFC 8259 section 8.1).
 * @returns the problem naming the dotted path of the first container too deep (`roles.0.0…`), or null.
 */
export function jsonDepthProblem(json: Buffer): FieldProblem | null {
  // one frame per open container: its kind, the key or index of the member being read, and for objects whether
  // the next string is a key
  const frames: { object: boolean; at: string | number; expectKey: boolean }[] = [];
  let stringStart = -1;
  for (let i = 0; i < json.length; i++) {
    const byte = json[i];
    if (stringStart >= 0) {
      if (byte === 0x5c)
        i++; // backslash: skip the escaped byte
      else if (byte === 0x22) {
        const top = frames[frames.length - 1];
        if (top?.object && top.expectKey) {
          top.at = decodeKey(json.subarray(stringStart, i + 1));
          top.expectKey = false;
        }
        stringStart = -1;
      }
      continue;
    }
    switch (byte) {
      case 0x22: // "
        stringStart = i;
        break;
      case 0x7b: // {
      case 0x5b: // [
        if (frames.length > MAX_REQUEST_DEPTH) {
          const field = frames.map((f) => String(f.at)).join('.') || 'body';
          return { field, message: TOO_DEEP_MESSAGE };
        }
        frames.push(byte === 0x7b ? { object: true, at: '', expectKey: true } : { object: false, at: 0, expectKey: false });
        break;
      case 0x7d: // }
      case 0x5d: // ]
        frames.pop();
        break;
      case 0x2c: {
        // ,
        const top = frames[frames.length - 1];
        if (top?.object) top.expectKey = true;
        else if (top) top.at = (top.at as number) + 1;
        break;
      }
    }
  }
  return null;
}

function decodeKey(quoted: Buffer): string {
  try {
    return toWellFormedUnicode(JSON.parse(quoted.toString('utf8')) as string);
  } catch {
    return '?';
  }
}
