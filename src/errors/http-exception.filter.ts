import { ArgumentsHost, Catch, ExceptionFilter, HttpException, HttpStatus, Logger } from '@nestjs/common';
import type { Response } from 'express';
import { DrError, ErrorCode, FieldProblem, httpStatusOf } from './dr-error';

/** The one error shape of the API. */
export interface ErrorBody {
  statusCode: number;
  code: ErrorCode;
  message: string;
  details?: FieldProblem[];
}

const CODE_BY_STATUS: Record<number, ErrorCode> = {
  400: 'VALIDATION_FAILED',
  401: 'UNAUTHENTICATED',
  403: 'FORBIDDEN',
  404: 'NOT_FOUND',
  409: 'CONFLICT',
  413: 'PAYLOAD_TOO_LARGE',
  429: 'RATE_LIMITED',
};

/**
 * Turns every thrown error into {@link ErrorBody}. Unknown errors become a 500 whose message says nothing of the
 * cause (the cause is logged, and messages are built without secrets).
 */
@Catch()
export class HttpExceptionFilter implements ExceptionFilter {
  private readonly logger = new Logger('HttpError');

  catch(exception: unknown, host: ArgumentsHost): void {
    const response = host.switchToHttp().getResponse<Response>();
    if (exception instanceof HttpException && isHealthReport(exception.getResponse())) {
      // terminus reports (503 from /actuator/health) keep their own shape, which probes and operators expect.
      response.status(exception.getStatus()).json(exception.getResponse());
      return;
    }
    const body = this.toBody(exception);
    if (body.statusCode >= 500) {
      this.logger.error(exception instanceof Error ? exception.stack ?? exception.message : String(exception));
    }
    response.status(body.statusCode).json(body);
  }

  private toBody(exception: unknown): ErrorBody {
    if (exception instanceof DrError) {
      return {
        statusCode: httpStatusOf(exception.code),
        code: exception.code,
        message: exception.message,
        ...(exception.details.length ? { details: exception.details } : {}),
      };
    }
    if (exception instanceof HttpException) {
      const status = exception.getStatus();
      const code = CODE_BY_STATUS[status] ?? (status >= 500 ? 'INTERNAL' : 'VALIDATION_FAILED');
      const raw = exception.getResponse();
      // Body-parser errors (malformed JSON, payload too large) arrive here as HttpExceptions.
      const message =
        typeof raw === 'string' ? raw : typeof (raw as { message?: unknown }).message === 'string'
          ? (raw as { message: string }).message
          : exception.message;
      return { statusCode: status, code, message };
    }
    const status = (exception as { status?: number; statusCode?: number })?.status;
    if (typeof status === 'number' && status >= 400 && status < 500) {
      // express/body-parser errors (e.g. entity.parse.failed, entity.too.large) carry a 4xx status.
      return {
        statusCode: status,
        code: CODE_BY_STATUS[status] ?? 'VALIDATION_FAILED',
        message: status === HttpStatus.PAYLOAD_TOO_LARGE ? 'request body too large' : 'malformed request body',
      };
    }
    return { statusCode: 500, code: 'INTERNAL', message: 'internal error' };
  }
}

function isHealthReport(body: unknown): boolean {
  return typeof body === 'object' && body !== null && 'status' in body && 'details' in body;
}
