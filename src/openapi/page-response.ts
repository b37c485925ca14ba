import { ApiOkResponse } from '@nestjs/swagger';
import type { ReferenceObject, SchemaObject } from '@nestjs/swagger/dist/interfaces/open-api-spec.interface';

/**
 * Documents a `200` whose body is one page of a listing (`Page<T>` in src/backup/dto/backup.dto.ts):
 * `{items: T[], page, limit, total}`; `page` counts from 1, `total` is the number of matching items.
 * @param items the schema of one item (a `$ref` from `getSchemaPath`, or an inline schema)
 */
export function ApiPageResponse(items: SchemaObject | ReferenceObject, description = 'One page of the listing.'): MethodDecorator {
  return ApiOkResponse({
    description,
    schema: {
      type: 'object',
      required: ['items', 'page', 'limit', 'total'],
      properties: {
        items: { type: 'array', items },
        page: { type: 'integer', minimum: 1 },
        limit: { type: 'integer', minimum: 1 },
        total: { type: 'integer', minimum: 0 },
      },
    },
  });
}
