import 'reflect-metadata';
import { INestApplicationContext } from '@nestjs/common';
import { CommandFactory, CommandRunnerService } from 'nest-commander';
import { CliModule } from './cli/cli.module';
import { EXIT, reportError, setExitCode } from './cli/cli-errors';
import { CliLogger, cliLogLevels } from './cli/cli-logger';
import { installSignalHandlers } from './cli/interrupt';
import { AppConfig, ConfigurationError } from './config/app-config';
import { SERVICE_VERSION } from './service-info';

/** Upper bound for the event loop to drain after the app has closed; a leaked handle must not hang the shell. */
const EXIT_DRAIN_MS = 2000;

/**
 * `dr`: the disaster-recovery CLI. Boots the service's modules in-process (no HTTP, no cron scheduler; the
 * embedded PGlite when `DATABASE_URL` is unset, or the server's one if it runs), runs one command, closes the app
 * (stopping the embedded database cleanly) and returns the exit code.
 */
async function main(argv: string[]): Promise<number> {
  let config: AppConfig;
  try {
    // overrides of the environment: no cron schedules in a CLI, and it fails fast when the metadata store is unreachable
    config = AppConfig.fromEnv({ ...process.env, DR_SCHEDULER_ENABLED: 'false', DR_DB_CONNECT_RETRIES: process.env.DR_DB_CONNECT_RETRIES ?? '1' });
  } catch (error) {
    if (!(error instanceof ConfigurationError)) throw error;
    process.stderr.write(`${error.message}\n`);
    return EXIT.REJECTED;
  }
  const verbose = ['debug', 'verbose'].includes(config.logLevel);
  installSignalHandlers();
  let app: INestApplicationContext;
  try {
    app = await CommandFactory.createWithoutRunning(CliModule.forRoot(config), {
      logger: new CliLogger(cliLogLevels(config.logLevel), verbose),
      abortOnError: false,
      version: SERVICE_VERSION,
      errorHandler: (error) => {
        throw error;
      },
      serviceErrorHandler: (error) => setExitCode(reportError(error, verbose)),
    });
  } catch (error) {
    return reportError(error, verbose); // boot failed, e.g. the database is unreachable
  }
  try {
    // argv[1] names the program in usage and help ("dr", not "cli").
    await app.get(CommandRunnerService).run([argv[0], 'dr', ...argv.slice(2)]);
  } finally {
    await app.close();
  }
  return Number(process.exitCode ?? 0);
}

main(process.argv).then(
  (code) => {
    process.exitCode = code;
    setTimeout(() => process.exit(code), EXIT_DRAIN_MS).unref();
  },
  (error: unknown) => {
    process.exitCode = reportError(error);
    setTimeout(() => process.exit(), EXIT_DRAIN_MS).unref();
  },
);
