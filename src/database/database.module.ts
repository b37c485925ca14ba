import { Global, Module, OnApplicationShutdown } from '@nestjs/common';
import { TypeOrmModule, TypeOrmModuleOptions } from '@nestjs/typeorm';
import { AppConfig } from '../config/app-config';
import { EmbeddedPostgres } from './embedded-postgres';
import { ENTITIES, MIGRATIONS } from './entities';

const POOL_SIZE = 8;

/** Holds the embedded server (if any) so it is stopped after TypeORM has closed its pool. */
@Global()
@Module({
  providers: [{ provide: EmbeddedPostgres, inject: [AppConfig], useFactory: (c: AppConfig) => new EmbeddedPostgres(c.dataDir) }],
  exports: [EmbeddedPostgres],
})
class EmbeddedPostgresModule implements OnApplicationShutdown {
  constructor(private readonly embedded: EmbeddedPostgres) {}
  async onApplicationShutdown(): Promise<void> {
    await this.embedded.stop();
  }
}

/**
 * Builds TypeORM options: `DATABASE_URL` when set, otherwise the embedded PGlite server (started here).
 * Migrations run at start; `synchronize` is never used.
 */
export async function typeOrmOptions(config: AppConfig, embedded: EmbeddedPostgres): Promise<TypeOrmModuleOptions> {
  const common = {
    type: 'postgres' as const,
    entities: ENTITIES,
    migrations: MIGRATIONS,
    migrationsRun: true,
    migrationsTransactionMode: 'each' as const,
    synchronize: false,
    uuidExtension: 'pgcrypto' as const,
    installExtensions: false,
    logging: ['error' as const],
    retryAttempts: config.dbConnectRetries,
    retryDelay: 3000,
  };
  if (config.databaseUrl) {
    return { ...common, url: config.databaseUrl, extra: { max: POOL_SIZE, application_name: 'disaster-recovery' } };
  }
  const endpoint = await embedded.start(POOL_SIZE * 4);
  return {
    ...common,
    host: endpoint.socketDir,
    port: endpoint.port,
    username: 'postgres',
    database: 'postgres',
    // One connection: pglite-socket (0.2.17) queues protocol messages one by one and keeps a connection's messages
    // together only inside a transaction, so two connections' Parse/Bind/Execute outside one can interleave (seen
    // as `portal "" does not exist` or parameters bound to another statement). PGlite runs one session anyway.
    extra: { max: 1 },
  };
}

/** The metadata store: TypeORM repositories on PostgreSQL (external or embedded). */
@Module({
  imports: [
    EmbeddedPostgresModule,
    TypeOrmModule.forRootAsync({
      imports: [EmbeddedPostgresModule],
      inject: [AppConfig, EmbeddedPostgres],
      useFactory: typeOrmOptions,
    }),
  ],
})
export class DatabaseModule {}
