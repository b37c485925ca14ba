import { ADMIN_KEY, API, startService, TestService } from '../support/app';

const UNKNOWN = '00000000-0000-4000-8000-000000000000';

describe('localized error messages (Accept-Language)', () => {
  let service: TestService;

  beforeAll(async () => {
    service = await startService();
  });

  afterAll(() => service?.close());

  it('answers in French for Accept-Language: fr, keeping code, fields and the English detail', async () => {
    const res = await service
      .http()
      .post(`${API}/backups`)
      .set('X-API-Key', ADMIN_KEY)
      .set('Accept-Language', 'fr')
      .send({ engine: 'filesystem', source: { path: 'relative/dir' } });
    expect(res.status).toBe(400);
    expect(res.body).toMatchObject({ statusCode: 400, code: 'VALIDATION_FAILED', message: 'Requête invalide : source.path' });
    expect(res.body.details.map((d: { field: string }) => d.field)).toEqual(['source.path']);

    const missing = await service.http().get(`${API}/backups/${UNKNOWN}`).set('X-API-Key', ADMIN_KEY).set('Accept-Language', 'fr-CA,fr;q=0.9,en;q=0.5');
    expect(missing.status).toBe(404);
    expect(missing.body).toEqual({ statusCode: 404, code: 'NOT_FOUND', message: `Introuvable : ${UNKNOWN}`, detail: `backup ${UNKNOWN} not found` });

    const anonymous = await service.http().get(`${API}/backups`).set('Accept-Language', 'fr');
    expect(anonymous.status).toBe(401);
    expect(anonymous.body.message).toBe(
      "Authentification requise : fournissez une clé d'API valide et non révoquée (en-tête X-API-Key) ou un jeton bearer valide (en-tête Authorization)",
    );
    expect(anonymous.body.detail).toBe('missing X-API-Key header');
  });

  it('picks German, Spanish and Arabic by quality, and English by default or for unknown languages', async () => {
    const ask = async (language?: string) => {
      const req = service.http().get(`${API}/backups`).set('X-API-Key', 'dr_unknown_key_that_is_long_enough');
      return (await (language ? req.set('Accept-Language', language) : req)).body.message as string;
    };
    expect(await ask('ja, de;q=0.8, en;q=0.1')).toMatch(/^Authentifizierung erforderlich/);
    expect(await ask('es-MX')).toMatch(/^Se requiere autenticación/);
    expect(await ask('ar')).toMatch(/^المصادقة مطلوبة/);
    expect(await ask()).toMatch(/^Authentication required/);
    expect(await ask('xx-YY')).toMatch(/^Authentication required/);
  });

  it('keeps the specific English cause in detail when the message is generic', async () => {
    const res = await service
      .http()
      .post(`${API}/recovery`)
      .set('X-API-Key', ADMIN_KEY)
      .set('Accept-Language', 'de')
      .send({ backupId: UNKNOWN, type: 'FULL', target: { path: '/etc/not-allowed' } });
    expect(res.status).toBe(404);
    expect(res.body.message).toBe(`Nicht gefunden: ${UNKNOWN}`);
    expect(res.body.detail).toContain(UNKNOWN);
  });
});
