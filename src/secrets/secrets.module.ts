import { Global, Module } from '@nestjs/common';
import { SecretResolver } from './secret-resolver';

/** Resolution of secret references (`env:NAME`, `file:/path`), for every module that needs a secret. */
@Global()
@Module({ providers: [SecretResolver], exports: [SecretResolver] })
export class SecretsModule {}
