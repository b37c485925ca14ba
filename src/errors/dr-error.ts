/** One problem with one input field: `field` is a dotted path such as `source.path` or `target.url`. */
export interface FieldProblem {
  field: string;
  message: string;
}

/**
 * Stable error codes of the API, in one list: the type {@link ErrorCode} is derived from it, and the i18n
 * completeness test walks it (every code needs a message in every catalogue of `i18n/<lang>/errors.json`).
 */
export const ERROR_CODES = [
  'VALIDATION_FAILED',
  'UNAUTHENTICATED',
  'FORBIDDEN',
  'NOT_FOUND',
  'CONFLICT',
  'TARGET_NOT_EMPTY',
  'TARGET_EXISTS',
  'TARGET_NOT_ALLOWED',
  'TARGET_BUSY',
  'BACKUP_NOT_RESTORABLE',
  'SECRET_UNAVAILABLE',
  'PLAN_BUSY',
  'INCREMENTAL_NOT_POSSIBLE',
  'DECRYPTION_KEY_UNAVAILABLE',
  'MANIFEST_UNTRUSTED',
  'SELF_APPROVAL',
  'APPROVAL_EXPIRED',
  'NOT_AWAITING_APPROVAL',
  'PAYLOAD_TOO_LARGE',
  'RATE_LIMITED',
  'INTERNAL',
] as const;

/** Stable error codes of the API. Each maps to one HTTP status in {@link httpStatusOf}. */
export type ErrorCode = (typeof ERROR_CODES)[number];

/** Values interpolated into a localized message (`{fields}`, `{id}`): ids and field names, never secrets. */
export type ErrorArgs = Record<string, string | number>;

/** Maps an error code to its HTTP status (exhaustive: a new code fails to compile until it is mapped). */
export function httpStatusOf(code: ErrorCode): number {
  switch (code) {
    case 'VALIDATION_FAILED':
    case 'SECRET_UNAVAILABLE':
      return 400;
    case 'UNAUTHENTICATED':
      return 401;
    case 'FORBIDDEN':
    case 'TARGET_NOT_ALLOWED':
    case 'SELF_APPROVAL':
      return 403;
    case 'NOT_FOUND':
      return 404;
    case 'CONFLICT':
    case 'TARGET_NOT_EMPTY':
    case 'TARGET_EXISTS':
    case 'TARGET_BUSY':
    case 'BACKUP_NOT_RESTORABLE':
    case 'PLAN_BUSY':
    case 'INCREMENTAL_NOT_POSSIBLE':
    case 'DECRYPTION_KEY_UNAVAILABLE':
    case 'MANIFEST_UNTRUSTED':
    case 'APPROVAL_EXPIRED':
    case 'NOT_AWAITING_APPROVAL':
      return 409;
    case 'PAYLOAD_TOO_LARGE':
      return 413;
    case 'RATE_LIMITED':
      return 429;
    case 'INTERNAL':
      return 500;
  }
}

/**
 * A failure the caller can act on: a stable code, a message free of secrets, and per-field problems for bad input.
 * Thrown by services; turned into the one error response shape by the HTTP exception filter, which localizes
 * the message from the code (catalogues in `i18n/`, interpolating {@link args}) and keeps this English `message`
 * as the response's `detail` (it names the specific location, database, variable, ...).
 */
export class DrError extends Error {
  constructor(
    readonly code: ErrorCode,
    message: string,
    readonly details: FieldProblem[] = [],
    readonly args: ErrorArgs = {},
  ) {
    super(message);
  }

  /** Bad input on named fields (HTTP 400). `args.fields`: the field names, comma-separated. */
  static validation(details: FieldProblem[]): DrError {
    const fields = [...new Set(details.map((d) => d.field))].join(', ');
    return new DrError('VALIDATION_FAILED', `invalid request: ${fields}`, details, { fields });
  }

  /** An unknown id (HTTP 404). `args.id`: the id. */
  static notFound(what: string, id: string): DrError {
    return new DrError('NOT_FOUND', `${what} ${id} not found`, [], { id });
  }
}
