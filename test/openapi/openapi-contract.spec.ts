import { createServer, Server } from 'node:http';
import { AddressInfo } from 'node:net';
import SwaggerParser from '@apidevtools/swagger-parser';
import { ADMIN_KEY, startService, TestService } from '../support/app';
import { contractRequest, OPENAPI_DOCUMENT, openApiContract } from '../support/openapi-contract';

const API = '/api/v1/disaster-recovery';
const ID = '00000000-0000-4000-8000-000000000001';

/** The committed document is valid OpenAPI 3.0 (structure and references), checked by swagger-parser. */
describe('api-docs/openapi.yaml as a contract', () => {
  it('is a valid OpenAPI 3.0 document', async () => {
    const api = (await SwaggerParser.validate(OPENAPI_DOCUMENT)) as { openapi: string; paths: object };
    expect(api.openapi).toMatch(/^3\.0\./);
    expect(Object.keys(api.paths).length).toBeGreaterThanOrEqual(24);
  });

  /**
   * The checker every e2e response goes through (test/support/app.ts, server-process.ts), against a plain HTTP
   * server answering what each case needs: it has to fail a test on an undeclared status, a body off its schema
   * or an undeclared media type, naming the route, the status and the schema path.
   */
  describe('contractRequest (supertest, checked)', () => {
    let server: Server;
    let base: string;
    let answer: { status: number; type: string; body: string };

    beforeAll(async () => {
      server = createServer((_req, res) => res.writeHead(answer.status, { 'Content-Type': answer.type }).end(answer.body));
      await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
      base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
    });
    afterAll(() => new Promise<void>((r) => server.close(() => r())));

    const json = (status: number, body: unknown) => ({ status, type: 'application/json; charset=utf-8', body: JSON.stringify(body) });

    it('fails on a status the operation does not declare, naming route and status', async () => {
      answer = json(201, {});
      await expect(contractRequest(base).post(`${API}/backups/${ID}/verify`).send({})).rejects.toThrow(
        `POST ${API}/backups/{id}/verify answered 201, which the document does not declare`,
      );
    });

    it('fails on a body that breaks the schema, naming the field and the schema path', async () => {
      answer = json(200, { id: ID, status: 'SOMETHING' });
      const error: Error = await contractRequest(base)
        .get(`${API}/backups/${ID}`)
        .then(
          () => new Error('accepted'),
          (e: Error) => e,
        );
      expect(error.message).toContain(`GET ${API}/backups/{id} answered 200; the body does not match`);
      expect(error.message).toContain('body/status must be equal to one of the allowed values');
      expect(error.message).toContain('(schema #/components/schemas/BackupResponse/properties/status/enum)');
      expect(error.message).toContain("must have required property 'engine'");
    });

    it('fails on an error body that is not the ErrorResponse shape', async () => {
      answer = json(404, { error: 'not found' });
      await expect(contractRequest(base).get(`${API}/backups/${ID}`)).rejects.toThrow('#/components/schemas/ErrorResponse');
    });

    it('fails on a media type the response does not declare', async () => {
      answer = json(200, { metrics: 1 });
      await expect(contractRequest(base).get('/actuator/prometheus')).rejects.toThrow(
        'GET /actuator/prometheus answered 200 with Content-Type application/json, but',
      );
    });

    it('passes a conforming response, and leaves routes the document does not describe alone', async () => {
      answer = { status: 200, type: 'text/plain; version=0.0.4; charset=utf-8', body: 'dr_backups_total 0\n' };
      expect((await contractRequest(base).get('/actuator/prometheus')).status).toBe(200);
      answer = json(200, { status: 'ok', info: {}, error: {}, details: {} });
      expect((await contractRequest(base).get('/actuator/health/liveness')).status).toBe(200);
      answer = json(404, { anything: true });
      expect((await contractRequest(base).get(`${API}/no-such-route`)).status).toBe(404);
    });

    it('reads a nullable `$ref` property (allOf + nullable) as admitting null, and still checks a present value', () => {
      const location = { id: ID, name: 'l', kind: 'local', settings: {}, isDefault: true, createdAt: '2026-01-01T00:00:00.000Z' };
      const check = (encryption: unknown) =>
        openApiContract().violationOf({
          method: 'GET',
          path: `${API}/storage-locations/${ID}`,
          status: 200,
          contentType: 'application/json',
          body: { ...location, encryption },
          hasBody: true,
        });
      expect(check(null)).toBeUndefined();
      expect(check({ recipients: ['age1x'] })).toBeUndefined();
      expect(check('plain')).toContain('body/encryption must be object');
    });

    it('takes a literal path before a templated one (`/recovery/external` is not `/recovery/{id}`)', () => {
      const violation = openApiContract().violationOf({
        method: 'POST',
        path: `${API}/recovery/external?x=1`,
        status: 418,
        body: undefined,
        hasBody: false,
      });
      expect(violation).toContain(`POST ${API}/recovery/external answered 418`);
    });
  });

  /** What the document says of errors is what the service answers (every response checked by the contract too). */
  describe('errors on the real service', () => {
    let service: TestService;
    beforeAll(async () => {
      service = await startService();
    });
    afterAll(() => service?.close());

    it('answer a malformed JSON body with 400 and a body over 1 MiB with 413, in the ErrorResponse shape', async () => {
      const malformed = await service.http().get('/actuator/health/liveness').set('Content-Type', 'application/json').send('{"a":');
      expect(malformed.status).toBe(400);
      expect(malformed.body.code).toBe('VALIDATION_FAILED');
      const large = await service
        .http()
        .get('/actuator/prometheus')
        .set('Content-Type', 'application/json')
        .send(JSON.stringify({ a: 'x'.repeat(1_100_000) }));
      expect(large.status).toBe(413);
      expect(large.body.code).toBe('PAYLOAD_TOO_LARGE');
    });

    it('answer a body in another charset than UTF-8 with 415 in the ErrorResponse shape', async () => {
      const res = await service
        .http()
        .post(`${API}/api-keys`)
        .set('X-API-Key', ADMIN_KEY)
        .set('Content-Type', 'application/json; charset=latin1')
        .send('{"name":"x","roles":["VIEWER"]}');
      expect(res.status).toBe(415);
    });

    it('answer an impossible export date (2026-02-30) with 400 VALIDATION_FAILED, not a text error labelled JSON lines', async () => {
      const res = await service.http().get(`${API}/audit/export?from=2026-02-30`).set('X-API-Key', ADMIN_KEY);
      expect(res.status).toBe(400);
      expect(res.headers['content-type']).toMatch(/^application\/json/);
      expect(res.body.details).toEqual([expect.objectContaining({ field: 'from' })]);
    });
  });
});
