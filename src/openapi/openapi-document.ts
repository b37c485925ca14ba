import { INestApplication, Type } from '@nestjs/common';
import { NestFactory } from '@nestjs/core';
import { DocumentBuilder, OpenAPIObject, SwaggerModule } from '@nestjs/swagger';
import { dump } from 'js-yaml';
import { AppModule } from '../app.module';
import { AppConfig } from '../config/app-config';
import { SERVICE_NAME } from '../service-info';
import { ErrorResponse, FieldProblemDoc } from './error-response';
import { annotateRoutes, API_KEY_SCHEME, BEARER_SCHEME } from './route-docs';

/** The document's `info.version`: the API's version (the path prefix is `/api/v1/...`), not the package's. */
const API_VERSION = '1';

/** Every controller class registered in the application's modules, sorted by name (deterministic output). */
function controllersOf(app: INestApplication): Type<unknown>[] {
  const container = (app as unknown as { container: { getModules(): Map<string, { controllers: Map<unknown, { metatype: Type<unknown> }> }> } }).container;
  const classes = new Set<Type<unknown>>();
  for (const module of container.getModules().values()) {
    for (const wrapper of module.controllers.values()) classes.add(wrapper.metatype);
  }
  return [...classes].sort((a, b) => a.name.localeCompare(b.name));
}

/**
 * Builds the OpenAPI 3 document of `app`'s routes: annotates every handler (roles, security, errors; see
 * {@link annotateRoutes}), declares the `X-API-Key` and bearer JWT schemes and the {@link ErrorResponse} schema.
 * DTO schemas come from `@nestjs/swagger`'s compiler plugin metadata when the code was compiled with it
 * (`scripts/generate-openapi.js`), else only from explicit `@ApiProperty` decorators.
 */
export function buildOpenApiDocument(app: INestApplication): OpenAPIObject {
  const publicOperations = annotateRoutes(controllersOf(app));
  const config = new DocumentBuilder()
    .setTitle(`${SERVICE_NAME} API`)
    .setDescription(
      'Disaster recovery service: verified backups, restores, failover and DR drills. ' +
        'Every API route needs an `X-API-Key` header (or a bearer JWT) carrying one of the roles listed on the route; ' +
        'ADMIN passes every role check. Every error has the `ErrorResponse` shape.',
    )
    .setVersion(API_VERSION)
    // Relative: the document is served by the service it describes (`/api-docs`); paths carry the full prefix.
    .addServer('/', 'This service')
    .addApiKey({ type: 'apiKey', in: 'header', name: 'X-API-Key', description: 'An API key (`dr_...`).' }, API_KEY_SCHEME)
    .addBearerAuth({ type: 'http', scheme: 'bearer', bearerFormat: 'JWT', description: 'A JWT carrying roles.' }, BEARER_SCHEME)
    .build();
  // package.json's "license": proprietary, no license text at a URL (DocumentBuilder.setLicense always writes one).
  config.info.license = { name: 'UNLICENSED (proprietary)' };
  const publicOperationIds = new Set<string>();
  const document = SwaggerModule.createDocument(app, config, {
    extraModels: [ErrorResponse, FieldProblemDoc],
    operationIdFactory: (controllerKey, methodKey) => {
      const id = `${controllerKey.replace(/Controller$/, '')}_${methodKey}`;
      if (publicOperations.has(`${controllerKey}.${methodKey}`)) publicOperationIds.add(id);
      return id;
    },
  });
  markDefaultedParametersOptional(document);
  markPublicOperations(document, publicOperationIds);
  return document;
}

/** A public route needs no credentials: an empty security requirement (OpenAPI 3.0, Operation Object `security`). */
function markPublicOperations(document: OpenAPIObject, operationIds: Set<string>): void {
  for (const item of Object.values(document.paths)) {
    for (const operation of Object.values(item) as { operationId?: string; security?: unknown[] }[]) {
      if (operation.operationId && operationIds.has(operation.operationId)) operation.security = [];
    }
  }
}

/**
 * A query DTO field with an initializer (`page: number = 1`) has no `?`, so the compiler plugin marks it required;
 * the validation pipe treats it as optional (`@IsOptional`) and the default applies: a parameter with a default is
 * documented as optional.
 */
function markDefaultedParametersOptional(document: OpenAPIObject): void {
  for (const item of Object.values(document.paths)) {
    for (const operation of Object.values(item)) {
      for (const parameter of (operation as { parameters?: { required?: boolean; schema?: { default?: unknown } }[] }).parameters ?? []) {
        if (parameter.schema?.default !== undefined) parameter.required = false;
      }
    }
  }
}

/**
 * Builds the document from the code alone: the application is created in preview mode, so no provider is
 * instantiated (no database, no storage, no scheduler).
 */
export async function buildOpenApiDocumentOffline(): Promise<OpenAPIObject> {
  // preview mode instantiates no provider: the defaults (an empty environment) only complete the module graph
  const app = await NestFactory.create(AppModule.forRoot(AppConfig.fromEnv({})), { preview: true, logger: false, abortOnError: false });
  try {
    return buildOpenApiDocument(app);
  } finally {
    await app.close();
  }
}

/** The document as YAML with sorted keys and no line folding, so the same code always gives the same bytes. */
export function toYaml(document: OpenAPIObject): string {
  return dump(JSON.parse(JSON.stringify(document)), { sortKeys: true, lineWidth: -1, noRefs: true });
}
