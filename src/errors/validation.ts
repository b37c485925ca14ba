import { ArgumentMetadata, ValidationError, ValidationPipe } from '@nestjs/common';
import { plainToInstance } from 'class-transformer';
import { validate } from 'class-validator';
import { DrError, FieldProblem } from './dr-error';
import { requestShapeProblems } from '../hardening/request-shape';

/** Flattens class-validator errors into dotted field paths (`source.path`, `include.0`). */
export function toFieldProblems(errors: ValidationError[], parent = ''): FieldProblem[] {
  return errors.flatMap((error) => {
    const field = parent ? `${parent}.${error.property}` : error.property;
    const own = Object.values(error.constraints ?? {}).map((message) => ({ field, message }));
    return [...own, ...toFieldProblems(error.children ?? [], field)];
  });
}

/**
 * Names the query parameters holding a NUL character (U+0000), at any depth (`a`, `a.0`). PostgreSQL cannot take
 * one in a text parameter, so a filter such as `GET /audit?actor=a%00b` would fail in SQL as a 500; JSON bodies are
 * refused earlier by the body parser's reviver (src/hardening/json-body.ts).
 */
export function nulFields(value: unknown, field = ''): string[] {
  if (typeof value === 'string') return value.includes('\u0000') ? [field] : [];
  if (value === null || typeof value !== 'object') return [];
  return Object.entries(value).flatMap(([key, inner]) => nulFields(inner, field ? `${field}.${key}` : key));
}

/**
 * {@link ValidationPipe} that first checks the raw input's shape ({@link requestShapeProblems}: nesting depth and
 * well-formed Unicode, before class-transformer recurses into it) and refuses query strings holding a NUL character
 * (400 naming the parameter).
 */
class RequestValidationPipe extends ValidationPipe {
  override async transform(value: unknown, metadata: ArgumentMetadata): Promise<unknown> {
    if (metadata.type === 'body' || metadata.type === 'query' || metadata.type === 'param') {
      const shape = requestShapeProblems(value, metadata.type === 'param' && metadata.data ? metadata.data : '');
      if (shape.length > 0) throw DrError.validation(shape);
    }
    if (metadata.type === 'query' || metadata.type === 'param') {
      const fields = nulFields(value, metadata.type === 'param' && metadata.data ? metadata.data : '');
      if (fields.length > 0) {
        throw DrError.validation(fields.map((field) => ({ field, message: `${field} must not contain a NUL character` })));
      }
    }
    return super.transform(value, metadata);
  }
}

/**
 * The global pipe: refuses over-deep input and lone surrogates before any transformation, whitelists DTO fields,
 * rejects unknown ones, refuses NUL characters in query strings, and reports every bad field by name.
 */
export function createValidationPipe(): ValidationPipe {
  return new RequestValidationPipe({
    whitelist: true,
    forbidNonWhitelisted: true,
    transform: true,
    exceptionFactory: (errors) => DrError.validation(toFieldProblems(errors)),
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
