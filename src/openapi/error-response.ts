import { ApiProperty, ApiPropertyOptional } from '@nestjs/swagger';
import { ErrorCode } from '../errors/dr-error';

/** Every error code, for the schema's enum; a `Record` over the union fails to compile when a new code is missing. */
const ERROR_CODES: Record<ErrorCode, true> = {
  VALIDATION_FAILED: true,
  UNAUTHENTICATED: true,
  FORBIDDEN: true,
  NOT_FOUND: true,
  CONFLICT: true,
  TARGET_NOT_EMPTY: true,
  TARGET_EXISTS: true,
  TARGET_BUSY: true,
  TARGET_NOT_ALLOWED: true,
  BACKUP_NOT_RESTORABLE: true,
  SECRET_UNAVAILABLE: true,
  PLAN_BUSY: true,
  INCREMENTAL_NOT_POSSIBLE: true,
  DECRYPTION_KEY_UNAVAILABLE: true,
  MANIFEST_UNTRUSTED: true,
  SELF_APPROVAL: true,
  APPROVAL_EXPIRED: true,
  NOT_AWAITING_APPROVAL: true,
  PAYLOAD_TOO_LARGE: true,
  RATE_LIMITED: true,
  INTERNAL: true,
};

/** One problem with one input field, as in {@link ErrorResponse.details} (documentation of `FieldProblem`). */
export class FieldProblemDoc {
  @ApiProperty({ description: 'Dotted path of the field, e.g. `source.path` or `include.0`.', example: 'source.path' })
  field: string;

  @ApiProperty({ description: 'What is wrong with the field.', example: 'source.path must be an absolute path' })
  message: string;
}

/**
 * The one error shape of the API (documentation of `ErrorBody` in `src/errors/http-exception.filter.ts`):
 * every 4xx/5xx answer of an API route has this body.
 */
export class ErrorResponse {
  @ApiProperty({ description: 'The HTTP status, repeated.', example: 400 })
  statusCode: number;

  @ApiProperty({
    description: 'Stable error code; each maps to one HTTP status.',
    enum: Object.keys(ERROR_CODES),
    example: 'VALIDATION_FAILED',
  })
  code: string;

  @ApiProperty({ description: 'Human-readable message; never contains secrets.', example: 'invalid request: name' })
  message: string;

  @ApiPropertyOptional({ type: [FieldProblemDoc], description: 'Per-field problems of bad input.' })
  details?: FieldProblemDoc[];
}
