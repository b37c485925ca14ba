import { BadRequestException, ValidationError, ValidationPipe } from '@nestjs/common';
import { plainToInstance } from 'class-transformer';
import { validate } from 'class-validator';
import { DrError, FieldProblem } from './dr-error';

/** Flattens class-validator errors into dotted field paths (`source.path`, `include.0`). */
export function toFieldProblems(errors: ValidationError[], parent = ''): FieldProblem[] {
  return errors.flatMap((error) => {
    const field = parent ? `${parent}.${error.property}` : error.property;
    const own = Object.values(error.constraints ?? {}).map((message) => ({ field, message }));
    return [...own, ...toFieldProblems(error.children ?? [], field)];
  });
}

/** The global pipe: whitelists DTO fields, rejects unknown ones, and reports every bad field by name. */
export function createValidationPipe(): ValidationPipe {
  return new ValidationPipe({
    whitelist: true,
    forbidNonWhitelisted: true,
    transform: true,
    exceptionFactory: (errors) => DrError.validation(toFieldProblems(errors)) as unknown as BadRequestException,
  });
}

/**
 * Validates a nested, engine-specific object (e.g. a backup `source`) against a DTO class.
 * @returns the typed instance. @throws DrError VALIDATION_FAILED with fields prefixed by `fieldPrefix`.
 */
export async function validateNested<T extends object>(cls: new () => T, value: unknown, fieldPrefix: string): Promise<T> {
  if (value === null || typeof value !== 'object' || Array.isArray(value)) {
    throw DrError.validation([{ field: fieldPrefix, message: `${fieldPrefix} must be an object` }]);
  }
  const instance = plainToInstance(cls, value);
  const errors = await validate(instance, { whitelist: true, forbidNonWhitelisted: true });
  if (errors.length > 0) throw DrError.validation(toFieldProblems(errors, fieldPrefix));
  return instance;
}
