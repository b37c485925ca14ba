import { ParseUUIDPipe } from '@nestjs/common';
import { DrError } from '../errors/dr-error';

/** Validates a UUID path parameter; a malformed one is a 400 naming the parameter (unknown ids are 404s later). */
export function uuidPipe(name: string): ParseUUIDPipe {
  return new ParseUUIDPipe({
    exceptionFactory: () => DrError.validation([{ field: name, message: `${name} must be a UUID` }]),
  });
}
