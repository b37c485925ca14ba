import { Module } from '@nestjs/common';
import { BACKUP_ENGINES } from './backup-engine';
import { ConfigurationEngine } from './configuration.engine';
import { EngineRegistry } from './engine-registry';
import { FilesystemEngine } from './filesystem.engine';
import { MysqlClient } from './mysql-client';
import { MysqlEngine } from './mysql.engine';
import { PostgresEngine } from './postgres.engine';
import { PostgresBaseEngine } from './postgres-base.engine';
import { ProcessRunner } from './process-runner';
import { RestoreDirectoryPolicy } from './restore-directory';
import { TarArchiver } from './tar-archiver';

/** The backup engines, registered as one list under {@link BACKUP_ENGINES} and picked by name. */
@Module({
  providers: [
    ProcessRunner,
    TarArchiver,
    RestoreDirectoryPolicy,
    PostgresEngine,
    FilesystemEngine,
    ConfigurationEngine,
    MysqlClient,
    MysqlEngine,
    PostgresBaseEngine,
    {
      provide: BACKUP_ENGINES,
      inject: [PostgresEngine, FilesystemEngine, ConfigurationEngine, MysqlEngine, PostgresBaseEngine],
      useFactory: (...engines: unknown[]) => engines,
    },
    EngineRegistry,
  ],
  exports: [EngineRegistry, PostgresBaseEngine],
})
export class EnginesModule {}
