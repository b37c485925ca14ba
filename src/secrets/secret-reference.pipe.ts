import { ArgumentMetadata, Injectable, PipeTransform } from '@nestjs/common';
import { SecretResolver } from './secret-resolver';

/**
 * Global pipe (an APP_PIPE, so it runs before the validation pipe that bootstrap adds, on the body as sent; the body
 * parser has already bounded its depth): every member named `…Secret` of a request body, at any depth, must be a
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
