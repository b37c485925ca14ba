import { existsSync, readFileSync } from 'node:fs';
import { resolve } from 'node:path';
import { INestApplication, Logger } from '@nestjs/common';
import { OpenAPIObject, SwaggerModule } from '@nestjs/swagger';
import { load } from 'js-yaml';

/** The committed document, generated from the code by `npm run openapi:generate` (CI fails when it drifts). */
export const OPENAPI_FILE = resolve(__dirname, '..', '..', 'api-docs', 'openapi.yaml');

/**
 * Serves Swagger UI at `/api-docs`, the document at `/api-docs/openapi.json` and `/api-docs/openapi.yaml`
 * (public: plain express routes, outside the role guard). The document served is the committed
 * `api-docs/openapi.yaml`, the same bytes CI checks against the code. Logs a warning and serves nothing when the
 * file is missing.
 */
export function serveApiDocs(app: INestApplication, file = OPENAPI_FILE): void {
  if (!existsSync(file)) {
    new Logger('ApiDocs').warn(`${file} not found; API docs not served`);
    return;
  }
  const document = load(readFileSync(file, 'utf8')) as OpenAPIObject;
  SwaggerModule.setup('api-docs', app, document, {
    jsonDocumentUrl: 'api-docs/openapi.json',
    yamlDocumentUrl: 'api-docs/openapi.yaml',
    customSiteTitle: 'Disaster recovery service API',
  });
}
