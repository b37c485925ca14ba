import { ArgumentsHost, Catch, ExceptionFilter, HttpException, HttpStatus, Logger, Optional } from '@nestjs/common';
import type { Request, Response } from 'express';
import { I18nContext, I18nService } from 'nestjs-i18n';
import { DrError, ErrorArgs, ErrorCode, FieldProblem, httpStatusOf } from './dr-error';
import { scrubSecrets } from '../logging/secret-scrubber';
import { DEFAULT_LANGUAGE } from './i18n-options';

/**
 * The one error shape of the API. `message` is localized (from `Accept-Language`); `detail`, when present, is the
 * specific English description (which location, database or variable); `details` lists bad fields by name.
 */
export interface ErrorBody {
  statusCode: number;
  code: ErrorCode;
  message: string;
  detail?: string;
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

/** What the filter learned from the exception, before localization. */
interface ErrorFacts {
  statusCode: number;
  code: ErrorCode;
  detail: string;
  args: ErrorArgs;
  details?: FieldProblem[];
}

/**
 * Turns every thrown error into {@link ErrorBody}. The message is the catalogue entry `errors.<code>` of the
 * request's language (nestjs-i18n, `i18n/<lang>/errors.json`) with the error's args interpolated; unknown errors
 * become a 500 whose message and detail say nothing of the cause (the cause is logged, and messages are built
 * without secrets). Notes the code on the request for the audit trail (`auditErrorCode`).
 */
@Catch()
export class HttpExceptionFilter implements ExceptionFilter {
  private readonly logger = new Logger('HttpError');

  constructor(@Optional() private readonly i18n?: I18nService) {}

  catch(exception: unknown, host: ArgumentsHost): void {
    const response = host.switchToHttp().getResponse<Response>();
    const request = host.switchToHttp().getRequest<Request & { auditErrorCode?: string }>();
    if (exception instanceof HttpException && isHealthReport(exception.getResponse())) {
      // terminus reports (503 from /actuator/health) keep their own shape, which probes and operators expect.
      response.status(exception.getStatus()).json(exception.getResponse());
      return;
    }
    const facts = this.toFacts(exception, request);
    if (facts.statusCode >= 500) {
      this.logger.error(exception instanceof Error ? (exception.stack ?? exception.message) : String(exception));
    }
    if (request) request.auditErrorCode = facts.code;
    response.status(facts.statusCode).json(this.toBody(facts, I18nContext.current(host)?.lang ?? DEFAULT_LANGUAGE));
  }

  /** The localized body; `detail` only when it says more than the message. */
  private toBody(facts: ErrorFacts, lang: string): ErrorBody {
    const message = this.translate(facts.code, lang, facts.args) ?? facts.detail;
    return {
      statusCode: facts.statusCode,
      code: facts.code,
      message,
      ...(facts.detail && facts.detail !== message ? { detail: facts.detail } : {}),
      ...(facts.details?.length ? { details: facts.details } : {}),
    };
  }

  private translate(code: ErrorCode, lang: string, args: ErrorArgs): string | undefined {
    if (!this.i18n) return undefined;
    const text = this.i18n.translate<string, unknown>(`errors.${code}`, { lang, args, defaultValue: '' });
    return typeof text === 'string' && text.length > 0 ? text : undefined;
  }

  private toFacts(exception: unknown, request: Request | undefined): ErrorFacts {
    if (exception instanceof DrError) {
      return {
        statusCode: httpStatusOf(exception.code),
        code: exception.code,
        detail: exception.message,
        args: exception.args,
        details: exception.details,
      };
    }
    const path = request?.path ?? '';
    if (exception instanceof HttpException) {
      const status = exception.getStatus();
      const code = CODE_BY_STATUS[status] ?? (status >= 500 ? 'INTERNAL' : 'VALIDATION_FAILED');
      const raw = exception.getResponse();
      // Body-parser errors (malformed JSON, payload too large) arrive here as HttpExceptions.
      const detail =
        typeof raw === 'string' ? raw : typeof (raw as { message?: unknown }).message === 'string' ? (raw as { message: string }).message : exception.message;
      // Nest's "Cannot GET /path?query" for an unknown route would echo the query string, which may hold a
      // secret a client put there by mistake: say the path only, and mask anything secret-looking left.
      const safe = scrubSecrets(status === Number(HttpStatus.NOT_FOUND) ? detail.replace(/\?\S*/, '') : detail);
      return { statusCode: status, code, detail: status >= 500 ? 'internal error' : safe, args: { fields: 'body', id: path } };
    }
    const status = (exception as { status?: number; statusCode?: number })?.status;
    if (typeof status === 'number' && status >= 400 && status < 500) {
      // express/body-parser errors (e.g. entity.parse.failed, entity.too.large) carry a 4xx status.
      return {
        statusCode: status,
        code: CODE_BY_STATUS[status] ?? 'VALIDATION_FAILED',
        detail: status === Number(HttpStatus.PAYLOAD_TOO_LARGE) ? 'request body too large' : 'malformed request body',
        args: { fields: 'body', id: path },
      };
    }
    return { statusCode: 500, code: 'INTERNAL', detail: 'internal error', args: {} };
  }
}

function isHealthReport(body: unknown): boolean {
  return typeof body === 'object' && body !== null && 'status' in body && 'details' in body;
}
