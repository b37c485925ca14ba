import { Module } from '@nestjs/common';
import { LoggerModule, Params } from 'nestjs-pino';
import { stdSerializers } from 'pino';
import type { Options } from 'pino-http';
import { AppConfig } from '../config/app-config';
import { requestIdOf } from './request-id';
import { scrubDeep, scrubSecrets } from './secret-scrubber';

/** Nest log levels (`DR_LOG_LEVEL`) → pino levels. */
const PINO_LEVELS: Record<string, string> = {
  fatal: 'fatal',
  error: 'error',
  warn: 'warn',
  log: 'info',
  debug: 'debug',
  verbose: 'trace',
};

/** Headers never logged (their values become `[Redacted]`). */
export const REDACTED_PATHS = [
  'req.headers.authorization',
  'req.headers["proxy-authorization"]',
  'req.headers["x-api-key"]',
  'req.headers.cookie',
  'res.headers["set-cookie"]',
];

/** Whether `pino-pretty` (an optional, not installed by default, dev tool) can be loaded. */
function prettyAvailable(): boolean {
  try {
    require.resolve('pino-pretty');
    return true;
  } catch {
    return false;
  }
}

/**
 * The pino-http options of the service: JSON lines on stdout at `DR_LOG_LEVEL`, one request id per request
 * ({@link requestIdOf}), secret headers redacted ({@link REDACTED_PATHS}) and secrets scrubbed from messages,
 * URLs, query values and errors ({@link scrubSecrets}). Actuator probes and scrapes are not logged.
 */
export function pinoHttpOptions(config: AppConfig): Options {
  const pretty = config.logFormat === 'pretty' && prettyAvailable();
  return {
    level: PINO_LEVELS[config.logLevel] ?? 'info',
    ...(pretty ? { transport: { target: 'pino-pretty', options: { singleLine: true } } } : {}),
    genReqId: requestIdOf,
    quietReqLogger: true,
    customAttributeKeys: { reqId: 'reqId' },
    redact: { paths: REDACTED_PATHS, censor: '[Redacted]' },
    autoLogging: { ignore: (req) => (req.url ?? '').startsWith('/actuator/') },
    customLogLevel: (_req, res, error) => (error || res.statusCode >= 500 ? 'error' : res.statusCode >= 400 ? 'warn' : 'info'),
    serializers: {
      // with wrapSerializers (the default) these receive pino's standard serializations, objects whose
      // prototype holds the non-enumerable raw request or error: their own (logged) members are copied and scrubbed
      req: (req: object) => scrubDeep({ ...req }),
      err: (err: object) => scrubDeep({ ...(err instanceof Error ? stdSerializers.err(err) : err) }),
    },
    formatters: {
      // top-level strings of a log call's object (context and the like); nested request data went through the serializers
      log: (object) => Object.fromEntries(Object.entries(object).map(([k, v]) => [k, typeof v === 'string' ? scrubSecrets(v) : v])),
    },
    hooks: {
      // the message and its interpolation arguments
      logMethod(args, method) {
        method.apply(this, args.map((a) => (typeof a === 'string' ? scrubSecrets(a) : a)) as Parameters<typeof method>);
      },
    },
  };
}

/**
 * Structured logging: nestjs-pino replaces Nest's logger (see bootstrap), and its pino-http middleware logs each
 * request with its id and binds that id (`reqId`) to every log line written while serving it.
 * The CLI does not import this module: its output stays human.
 */
@Module({
  imports: [
    LoggerModule.forRootAsync({
      inject: [AppConfig],
      useFactory: (config: AppConfig): Params => ({ pinoHttp: pinoHttpOptions(config) }),
    }),
  ],
})
export class LoggingModule {}
