import 'reflect-metadata';
import { Logger } from '@nestjs/common';
import { createApp } from './bootstrap';
import { AppConfig, ConfigurationError } from './config/app-config';

// A stray rejection must not take down a process that may be running other backups: log it, keep serving.
process.on('unhandledRejection', (reason) => {
  new Logger('Process').error(`unhandled rejection: ${reason instanceof Error ? (reason.stack ?? reason.message) : String(reason)}`);
});

async function main(): Promise<void> {
  let config: AppConfig;
  try {
    config = AppConfig.fromEnv();
  } catch (error) {
    if (error instanceof ConfigurationError) {
      process.stderr.write(`${error.message}\n`);
      process.exit(2);
    }
    throw error;
  }
  const app = await createApp(config);
  await app.listen(config.port, config.host);
  new Logger('Main').log(
    `disaster recovery service listening on http://${config.host}:${config.port} ` +
      `(metadata store: ${config.databaseUrl ? 'DATABASE_URL' : `embedded PGlite in ${config.dataDir}`})`,
  );
}

void main();
