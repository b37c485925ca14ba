import { readFileSync } from 'node:fs';
import { resolve } from 'node:path';
import Ajv, { ErrorObject, ValidateFunction } from 'ajv';
import addFormats from 'ajv-formats';
import { load } from 'js-yaml';
import request from 'supertest';

/** The committed OpenAPI 3.0 document every e2e response is checked against. */
export const OPENAPI_DOCUMENT = resolve(__dirname, '..', '..', 'api-docs', 'openapi.yaml');

/** What the checker needs of one HTTP response. */
export interface ObservedResponse {
  method: string;
  /** Request path; a query string is ignored. */
  path: string;
  status: number;
  /** The `Content-Type` header, if any. */
  contentType?: string;
  /** The parsed JSON body for JSON responses; `undefined` when the response has no body. */
  body: unknown;
  /** Whether the response carried any body bytes (JSON or not). */
  hasBody: boolean;
}

interface Operation {
  method: string;
  template: string;
  pointer: string;
  /** Matches the request paths of {@link template}. */
  pattern: RegExp;
  responses: Record<string, { content?: Record<string, { schema?: unknown }> }>;
}

/** JSON pointer escaping (RFC 6901). */
const escapePointer = (token: string) => token.replace(/~/g, '~0').replace(/\//g, '~1');

/**
 * Checks HTTP responses against an OpenAPI 3.0 document: the status must be declared for the operation
 * (exactly, as `4XX`-style range or `default`), the media type must be one the response declares, and a JSON body
 * must match the declared schema. Schemas are validated with Ajv (JSON Schema draft-07 plus OpenAPI 3.0's
 * `nullable`, formats from `ajv-formats`); `$ref`s resolve inside the document, so an error names the schema path
 * in it (e.g. `#/components/schemas/BackupResponse/properties/status/enum`).
 *
 * A request whose path and method match no operation is not checked (the framework's 404 for unknown routes, the
 * Swagger UI pages, which the document does not describe).
 */
export class OpenApiContract {
  private readonly ajv: Ajv;
  private readonly operations: Operation[];
  private readonly validators = new Map<string, ValidateFunction>();
  /** Every object of the document → its JSON pointer, to name the schema an error comes from. */
  private readonly pointers = new WeakMap<object, string>();

  /** @param file path of the YAML document; throws when it cannot be read or parsed */
  constructor(private readonly file = OPENAPI_DOCUMENT) {
    const document = load(readFileSync(file, 'utf8')) as { paths: Record<string, Record<string, { responses?: Operation['responses'] }>> };
    indexPointers(document, '#', this.pointers);
    nullableCompositions(document, this.pointers);
    this.ajv = new Ajv({ strict: false, allErrors: true, verbose: true });
    addFormats(this.ajv);
    this.ajv.addSchema(document, 'openapi');
    // Literal paths before templated ones, so `/recovery/external` is not taken for `/recovery/{id}`.
    this.operations = Object.entries(document.paths)
      .flatMap(([template, item]) =>
        Object.entries(item).map(([method, op]) => ({
          method: method.toUpperCase(),
          template,
          pointer: `#/paths/${escapePointer(template)}/${method}`,
          pattern: new RegExp(
            `^${template
              .split(/\{[^}]+\}/)
              .map((part) => part.replace(/[.*+?^$()|[\]\\]/g, '\\$&'))
              .join('[^/]+')}$`,
          ),
          responses: op.responses ?? {},
        })),
      )
      .sort((a, b) => (a.template.match(/\{/g)?.length ?? 0) - (b.template.match(/\{/g)?.length ?? 0));
  }

  /** The documented operation of `method` on `path`, if any. */
  private operationOf(method: string, path: string): Operation | undefined {
    const bare = path.split('?')[0];
    return this.operations.find((op) => op.method === method.toUpperCase() && op.pattern.test(bare));
  }

  /**
   * Checks one response. @returns a description of every way it breaks the document (naming the route, the status and
   * the schema path), or `undefined` when it conforms or the route is not documented
   */
  violationOf(response: ObservedResponse): string | undefined {
    const op = this.operationOf(response.method, response.path);
    if (!op) return undefined;
    const route = `${op.method} ${op.template}`;
    const status = String(response.status);
    const declared = [status, `${status[0]}XX`, 'default'].find((key) => op.responses[key] !== undefined);
    if (!declared) {
      return `OpenAPI contract: ${route} answered ${status}, which the document does not declare (declared: ${Object.keys(op.responses).join(', ')})`;
    }
    const content = op.responses[declared].content;
    const where = `${route} answered ${status}`;
    if (!content) {
      return response.hasBody
        ? `OpenAPI contract: ${where} with a body (${response.contentType ?? 'no Content-Type'}), but ${op.pointer}/responses/${declared} declares no content`
        : undefined;
    }
    const mediaType = (response.contentType ?? '').split(';')[0].trim().toLowerCase();
    const json = /[/+]json$/.test(mediaType);
    // An empty text stream (no audit entry to export) is still a body of its declared type; empty JSON is not.
    if (!response.hasBody && (json || !(mediaType in content))) {
      return `OpenAPI contract: ${where} without a body, but ${op.pointer}/responses/${declared} declares content`;
    }
    if (!(mediaType in content)) {
      return `OpenAPI contract: ${where} with Content-Type ${mediaType || '(none)'}, but ${op.pointer}/responses/${declared} declares ${Object.keys(content).join(', ')}`;
    }
    if (!json || content[mediaType].schema === undefined) return undefined;
    const schemaPointer = `${op.pointer}/responses/${declared}/content/${escapePointer(mediaType)}/schema`;
    const validate = this.validatorOf(schemaPointer);
    if (validate(response.body)) return undefined;
    return `OpenAPI contract: ${where}; the body does not match ${schemaPointer}:\n${this.describe(validate.errors ?? [])}`;
  }

  /** One line per Ajv error: where in the body, what is wrong, which schema keyword of the document says so. */
  private describe(errors: ErrorObject[]): string {
    const shown = errors.slice(0, 40).map((e) => {
      const schema = e.parentSchema && this.pointers.get(e.parentSchema);
      const keyword = schema ? `${schema}/${e.keyword}` : e.schemaPath;
      return `  body${e.instancePath || ''} ${e.message ?? 'is invalid'} ${JSON.stringify(e.params)} (schema ${keyword})`;
    });
    if (errors.length > shown.length) shown.push(`  … and ${errors.length - shown.length} more`);
    return shown.join('\n');
  }

  private validatorOf(pointer: string): ValidateFunction {
    let validate = this.validators.get(pointer);
    if (!validate) {
      validate = this.ajv.getSchema(`openapi${pointer}`);
      if (!validate) throw new Error(`OpenAPI contract: no schema at ${pointer}`);
      this.validators.set(pointer, validate);
    }
    return validate;
  }
}

/**
 * OpenAPI 3.0 leaves open whether `nullable: true` beside `allOf`/`anyOf`/`oneOf` admits null when the composed
 * schemas do not (the 3.0.3 clarification says no; `@nestjs/swagger` writes a nullable `$ref` property as
 * `{allOf: [{$ref}], nullable: true}` and means yes, as client generators read it). Read as meant: such a schema
 * becomes `{anyOf: [{type: 'null'}, <the schema without nullable>]}`, in place.
 */
function nullableCompositions(node: unknown, pointers: WeakMap<object, string>): void {
  if (node === null || typeof node !== 'object') return;
  for (const child of Object.values(node)) nullableCompositions(child, pointers);
  const schema = node as Record<string, unknown>;
  if (schema.nullable !== true || !('allOf' in schema || 'anyOf' in schema || 'oneOf' in schema)) return;
  const branch: Record<string, unknown> = { ...schema };
  delete branch.nullable;
  pointers.set(branch, pointers.get(schema) ?? '#');
  for (const key of Object.keys(schema)) delete schema[key];
  schema.anyOf = [{ type: 'null' }, branch];
}

/** Records the JSON pointer of every object under `node`. */
function indexPointers(node: unknown, pointer: string, into: WeakMap<object, string>): void {
  if (node === null || typeof node !== 'object' || into.has(node)) return;
  into.set(node, pointer);
  for (const [key, child] of Object.entries(node)) indexPointers(child, `${pointer}/${escapePointer(key)}`, into);
}

let shared: OpenApiContract | undefined;

/** The contract of the committed document, read once per test file. */
export function openApiContract(): OpenApiContract {
  shared ??= new OpenApiContract();
  return shared;
}

/**
 * `supertest`'s `request(app)`, with every response checked against the OpenAPI document: a response that breaks
 * it fails the awaiting test with {@link OpenApiContract.violationOf}'s message (through supertest's own
 * `.expect(fn)` assertion, which runs before the test's own `.expect`s).
 * @param app an HTTP server or a base URL, as `request` takes
 */
export function contractRequest(app: Parameters<typeof request>[0]): ReturnType<typeof request> {
  const plain = request(app);
  const contract = openApiContract();
  const checked = { ...plain } as Record<string, unknown>;
  for (const [name, make] of Object.entries(plain)) {
    if (typeof make !== 'function' || name === 'del') continue;
    checked[name] = (url: string) =>
      (make as (url: string) => request.Test)(url).expect((res) => {
        const violation = contract.violationOf({
          method: name,
          path: new URL(url, 'http://host').pathname,
          status: res.status,
          contentType: res.headers['content-type'],
          body: res.body,
          hasBody: Boolean(res.text) || (Buffer.isBuffer(res.body) && res.body.length > 0),
        });
        if (violation) throw new Error(violation);
      });
  }
  checked.del = checked.delete;
  return checked as unknown as ReturnType<typeof request>;
}
