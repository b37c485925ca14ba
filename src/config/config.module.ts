import { Global, Module } from '@nestjs/common';
import { AppConfig } from './app-config';

/** Provides the one validated {@link AppConfig}, built from the environment at boot. */
@Global()
@Module({
  providers: [{ provide: AppConfig, useFactory: () => AppConfig.fromEnv() }],
  exports: [AppConfig],
})
export class ConfigModule {}
