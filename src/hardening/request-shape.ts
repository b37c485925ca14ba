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
 * it, without recursion (so a hostile depth cannot overflow the stack here either):
 * - no object or array nested deeper than {@link MAX_REQUEST_DEPTH} levels below the top level (which is level 0);
 * - every string and key is well-formed Unicode: a lone UTF-16 surrogate (`"\ud800"` in JSON) cannot be stored in a
 *   PostgreSQL `text` or `jsonb` column, nor written as UTF-8 into a path or a log, so it is refused here instead of
 *   failing later as a 500 (see ECMAScript's String.prototype.isWellFormed).
 * @param value the parsed input.
 * @param root the field name of `value` itself ('' for a whole body or query).
 * @returns the problems, each naming the dotted field path (`source.include.0`); ill-formed keys are shown with
 *   U+FFFD in place of the lone surrogate. Empty when the input is fine.
 */
export function requestShapeProblems(value: unknown, root = ''): FieldProblem[] {
  const problems: FieldProblem[] = [];
  const stack: { value: unknown; field: string; depth: number }[] = [{ value, field: root, depth: 0 }];
  while (stack.length > 0 && problems.length < MAX_PROBLEMS) {
    const { value: current, field, depth } = stack.pop()!;
    if (typeof current === 'string') {
      if (!isWellFormedUnicode(current)) problems.push({ field: field || 'body', message: ILL_FORMED_MESSAGE });
      continue;
    }
    if (current === null || typeof current !== 'object') continue;
    if (depth > MAX_REQUEST_DEPTH) {
      problems.push({ field: field || 'body', message: TOO_DEEP_MESSAGE });
      continue;
    }
    const entries = Array.isArray(current) ? current.map((v, i) => [String(i), v] as const) : Object.entries(current);
    for (let i = entries.length - 1; i >= 0; i--) {
      const [key, inner] = entries[i];
      const shownKey = toWellFormedUnicode(key);
      const path = field ? `${field}.${shownKey}` : shownKey;
      if (shownKey !== key) problems.push({ field: path, message: ILL_FORMED_MESSAGE });
      else stack.push({ value: inner, field: path, depth: depth + 1 });
    }
  }
  return problems;
}
