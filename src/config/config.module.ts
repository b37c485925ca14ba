import { DynamicModule, Module } from '@nestjs/common';
import { AppConfig } from './app-config';

/**
 * Provides the one validated {@link AppConfig}: built once by the entry point (`main.ts`, `cli.ts`, a test's
 * `startService`) and handed in, never read from the environment again.
 */
@Module({})
export class ConfigModule {
  /** The module providing `config` to every module (global). */
  static forRoot(config: AppConfig): DynamicModule {
    return { module: ConfigModule, global: true, providers: [{ provide: AppConfig, useValue: config }], exports: [AppConfig] };
  }
}
