import { ArgumentMetadata, Injectable, PipeTransform } from '@nestjs/common';
import { SecretResolver } from './secret-resolver';

/**
 * Global pipe (after the validation pipe): every member named `…Secret` of a request body, at any depth, must be a
 * reference the allow-list permits ({@link SecretResolver.checkReferencesIn}); a refused one is a 400 naming the
 * field, before anything is stored or run.
 */
@Injectable()
export class SecretReferencePipe implements PipeTransform {
  constructor(private readonly secrets: SecretResolver) {}

  async transform(value: unknown, metadata: ArgumentMetadata): Promise<unknown> {
    if (metadata.type === 'body') await this.secrets.checkReferencesIn(value);
    return value;
  }
}
