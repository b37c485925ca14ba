import { INestApplication, LogLevel } from '@nestjs/common';
import { NestFactory } from '@nestjs/core';
import { NestExpressApplication } from '@nestjs/platform-express';
import { Logger as PinoLogger } from 'nestjs-pino';
import helmet from 'helmet';
import { AppModule } from './app.module';
import { AppConfig } from './config/app-config';
import { createValidationPipe } from './errors/validation';
import { rejectUnsafeJson, verifyJsonBody } from './hardening/json-body';
import { serveApiDocs } from './openapi/serve-docs';

const LEVELS: LogLevel[] = ['fatal', 'error', 'warn', 'log', 'debug', 'verbose'];

/** Log levels at and above `level`. */
export function logLevelsFrom(level: string): LogLevel[] {
  return LEVELS.slice(0, Math.max(LEVELS.indexOf(level as LogLevel), 0) + 1);
}

/**
 * Builds the HTTP application (not yet listening): validation pipe, shutdown hooks, 1 MiB body limit (larger: 413
 * PAYLOAD_TOO_LARGE), helmet's security headers, CORS only for `DR_CORS_ORIGINS`, Swagger UI at `/api-docs` unless
 * `DR_API_DOCS_ENABLED=false`, and the structured (pino) logger in place of Nest's once the application is built
 * (earlier lines are buffered, and printed by Nest's console logger if the boot fails). Rate limiting is a global
 * guard (RateLimitModule). Configuration is validated here, before any module starts.
 */
export async function createApp(config: AppConfig): Promise<INestApplication> {
  const app = await NestFactory.create<NestExpressApplication>(AppModule.forRoot(config), {
    logger: logLevelsFrom(config.logLevel),
    bufferLogs: true,
    bodyParser: false,
  });
  app.useLogger(app.get(PinoLogger));
  app.useBodyParser('json', { limit: '1mb', reviver: rejectUnsafeJson, verify: verifyJsonBody });
  app.useGlobalPipes(createValidationPipe());
  app.enableShutdownHooks();
  app.disable('x-powered-by');
  // helmet's defaults, less `upgrade-insecure-requests`: the service often serves plain HTTP inside a cluster, where
  // upgrading Swagger UI's script loads to https would break the page.
  app.use(helmet({ contentSecurityPolicy: { directives: { upgradeInsecureRequests: null } } }));
  if (config.corsOrigins.length > 0) app.enableCors({ origin: config.corsOrigins, allowedHeaders: ['Content-Type', 'X-API-Key', 'Authorization'] });
  if (config.apiDocsEnabled) serveApiDocs(app);
  return app;
}
