import { INestApplication, LogLevel } from '@nestjs/common';
import { NestFactory } from '@nestjs/core';
import { NestExpressApplication } from '@nestjs/platform-express';
import { Logger as PinoLogger } from 'nestjs-pino';
import { AppModule } from './app.module';
import { AppConfig } from './config/app-config';
import { createValidationPipe } from './errors/validation';

const LEVELS: LogLevel[] = ['fatal', 'error', 'warn', 'log', 'debug', 'verbose'];

/** Log levels at and above `level`. */
export function logLevelsFrom(level: string): LogLevel[] {
  return LEVELS.slice(0, Math.max(LEVELS.indexOf(level as LogLevel), 0) + 1);
}

/**
 * Builds the HTTP application (not yet listening): validation pipe, shutdown hooks, 1 MiB body limit, and the
 * structured (pino) logger in place of Nest's, once the application is built (earlier lines are buffered, and
 * printed by Nest's console logger if the boot fails). Configuration is validated here, before any module starts.
 */
export async function createApp(config = AppConfig.fromEnv()): Promise<INestApplication> {
  const app = await NestFactory.create<NestExpressApplication>(AppModule, {
    logger: logLevelsFrom(config.logLevel),
    bufferLogs: true,
    bodyParser: false,
  });
  app.useLogger(app.get(PinoLogger));
  app.useBodyParser('json', { limit: '1mb' });
  app.useGlobalPipes(createValidationPipe());
  app.enableShutdownHooks();
  app.disable('x-powered-by');
  return app;
}
