import { AppConfig, ConfigurationError } from '../../src/config/app-config';

describe('AppConfig.fromEnv', () => {
  it('defaults to port 8891, the embedded database and ./data', () => {
    const config = AppConfig.fromEnv({}, '/srv/dr');
    expect(config).toMatchObject({ port: 8891, databaseUrl: undefined, dataDir: '/srv/dr/data', restoreRoots: ['/srv/dr/data/restores'], zstdLevel: 3 });
  });

  it('prefers DISASTER_RECOVERY_PORT over PORT and splits restore roots', () => {
    const config = AppConfig.fromEnv({ DISASTER_RECOVERY_PORT: '9000', PORT: '7000', DR_RESTORE_ROOTS: '/a:/b,/c' }, '/');
    expect(config.port).toBe(9000);
    expect(config.restoreRoots).toEqual(['/a', '/b', '/c']);
  });

  it('names every invalid variable at once', () => {
    const env = { PORT: 'eighty', DATABASE_URL: 'mysql://x', DR_ADMIN_API_KEY: 'short', DR_RESTORE_ROOTS: 'relative', DR_ZSTD_LEVEL: '99' };
    let error: unknown;
    try {
      AppConfig.fromEnv(env, '/');
    } catch (e) {
      error = e;
    }
    expect(error).toBeInstanceOf(ConfigurationError);
    const message = (error as Error).message;
    for (const name of ['PORT', 'DATABASE_URL', 'DR_ADMIN_API_KEY', 'DR_RESTORE_ROOTS', 'DR_ZSTD_LEVEL']) expect(message).toContain(name);
    expect(message).not.toContain('short'); // the value of a secret is never echoed
  });

  it('reads the hardening settings: docs on, 600 requests a minute and CORS off by default', () => {
    expect(AppConfig.fromEnv({}, '/')).toMatchObject({ apiDocsEnabled: true, rateLimitPerMinute: 600, corsOrigins: [] });
    const config = AppConfig.fromEnv(
      { DR_API_DOCS_ENABLED: 'false', DR_RATE_LIMIT_PER_MINUTE: '0', DR_CORS_ORIGINS: 'https://ops.example.com, http://localhost:3000' },
      '/',
    );
    expect(config).toMatchObject({ apiDocsEnabled: false, rateLimitPerMinute: 0, corsOrigins: ['https://ops.example.com', 'http://localhost:3000'] });
    expect(() => AppConfig.fromEnv({ DR_CORS_ORIGINS: '*' }, '/')).toThrow(/DR_CORS_ORIGINS: "\*" is not an origin/);
    expect(() => AppConfig.fromEnv({ DR_RATE_LIMIT_PER_MINUTE: '-1' }, '/')).toThrow(/DR_RATE_LIMIT_PER_MINUTE/);
  });
});
