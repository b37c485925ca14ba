import { Global, Module } from '@nestjs/common';
import { APP_PIPE } from '@nestjs/core';
import { AppConfig } from '../config/app-config';
import { SecretReferencePipe } from './secret-reference.pipe';
import { SecretResolver } from './secret-resolver';

/**
 * Resolution of secret references (`env:NAME`, `file:/path`) for every module that needs a secret, under the
 * request allow-list of the configuration ({@link AppConfig.secretPolicy}), and the global pipe that holds every
 * request body's `…Secret` members to it.
 */
@Global()
@Module({
  providers: [
    { provide: SecretResolver, inject: [AppConfig], useFactory: (config: AppConfig) => new SecretResolver(config.secretPolicy) },
    { provide: APP_PIPE, useClass: SecretReferencePipe },
  ],
  exports: [SecretResolver],
})
export class SecretsModule {}
