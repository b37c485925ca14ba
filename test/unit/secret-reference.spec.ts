import { mkdirSync, mkdtempSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { AppConfig, ConfigurationError } from '../../src/config/app-config';
import { DrError } from '../../src/errors/dr-error';
import { SecretReferencePolicy, secretPolicyFromEnv } from '../../src/secrets/secret-reference';

/** The outcome of resolving `ref` under `policy`: the value, or the error's code and field message. */
async function outcome(policy: SecretReferencePolicy, ref: string): Promise<string> {
  try {
    return `value:${await policy.resolve(ref, 'f')}`;
  } catch (error) {
    expect(error).toBeInstanceOf(DrError);
    return `${(error as DrError).code}:${(error as DrError).details[0]?.message}`;
  }
}

describe('secret reference allow-list (issue 10, item 1)', () => {
  const root = mkdtempSync(join(tmpdir(), 'dr-secret-policy-'));
  const dataDir = join(root, 'data');
  const secrets = join(root, 'run-secrets');
  const saved = { ...process.env };
  mkdirSync(dataDir);
  mkdirSync(secrets);
  mkdirSync(`${secrets}-evil`);
  writeFileSync(join(secrets, 'db'), ' db-password \n');
  writeFileSync(`${secrets}-evil/db`, 'evil');
  writeFileSync(join(dataDir, 'manifest-signing-key.pem'), 'SIGNING KEY');
  writeFileSync(join(root, 'jwt-secret'), 'JWT SECRET');
  symlinkSync(join(dataDir, 'manifest-signing-key.pem'), join(secrets, 'key-link'));
  symlinkSync(join(root, 'jwt-secret'), join(secrets, 'jwt-link'));
  mkdirSync(join(secrets, 'nested'));
  writeFileSync(join(secrets, 'nested', 'ok'), 'nested value');

  afterAll(() => {
    rmSync(root, { recursive: true, force: true });
    process.env = saved;
  });

  const policyOf = (env: NodeJS.ProcessEnv) => {
    const { policy, problems } = secretPolicyFromEnv({ DR_DATA_DIR: dataDir, ...env }, '/');
    expect(problems).toEqual([]);
    return policy;
  };

  it('by default: DRS_ variables and files under DR_DATA_DIR/secrets, nothing of the service', async () => {
    const policy = policyOf({});
    expect(policy.envPrefix).toBe('DRS_');
    expect(policy.dirs).toEqual([join(dataDir, 'secrets')]);
    process.env.DRS_UNIT_VALUE = 'allowed value';
    process.env.DR_ADMIN_API_KEY = 'admin-key-value';
    expect(await outcome(policy, 'env:DRS_UNIT_VALUE')).toBe('value:allowed value');
    expect(await outcome(policy, 'env:DRS_UNIT_UNSET')).toBe('SECRET_UNAVAILABLE:environment variable DRS_UNIT_UNSET is not set');
    const refused = `VALIDATION_FAILED:not an allowed secret reference: use env:DRS_NAME or file:/path under ${dataDir}/secrets (DR_SECRET_ENV_PREFIX, DR_SECRET_DIRS); the service's own secrets are never allowed`;
    for (const ref of [
      'env:DR_ADMIN_API_KEY',
      'env:HOME',
      'env:NOT_SET_ANYWHERE',
      'env:DATABASE_URL',
      `file:${dataDir}/manifest-signing-key.pem`,
      `file:${secrets}/db`,
    ]) {
      expect([ref, await outcome(policy, ref)]).toEqual([ref, refused]);
    }
  });

  it('with DR_SECRET_DIRS: files inside after symlinks are resolved; never a sibling prefix, "..", a link out, or the service\'s keys', async () => {
    const policy = policyOf({ DR_SECRET_DIRS: secrets, DR_JWT_SECRET: `file:${root}/jwt-secret`, DR_SECRET_ENV_PREFIX: 'APP_SECRET_' });
    expect(await outcome(policy, `file:${secrets}/db`)).toBe('value:db-password');
    expect(await outcome(policy, `file:${secrets}/nested/ok`)).toBe('value:nested value');
    expect(await outcome(policy, `file:${secrets}/missing`)).toBe(`SECRET_UNAVAILABLE:secret file ${secrets}/missing cannot be read`);
    expect(await outcome(policy, `file:${secrets}/nested`)).toBe(`SECRET_UNAVAILABLE:secret file ${secrets}/nested cannot be read`);
    for (const ref of [
      `file:${secrets}-evil/db`,
      `file:${secrets}/../run-secrets-evil/db`,
      `file:${secrets}/./db`,
      `file:${secrets}/key-link`,
      `file:${secrets}/jwt-link`,
      'env:DRS_UNIT_VALUE',
      'env:APP_SECRET_',
    ]) {
      expect([ref, (await outcome(policy, ref)).split(':')[0]]).toEqual([ref, 'VALIDATION_FAILED']);
    }
    process.env.APP_SECRET_X = 'x';
    expect(await outcome(policy, 'env:APP_SECRET_X')).toBe('value:x');
  });

  it('denies the variable a configuration reference names even when it carries the prefix', async () => {
    process.env.DRS_JWT = 'jwt-in-env';
    const policy = policyOf({ DR_JWT_SECRET: 'env:DRS_JWT' });
    expect((await outcome(policy, 'env:DRS_JWT')).split(':')[0]).toBe('VALIDATION_FAILED');
  });

  it("refuses at boot a prefix covering the service's variables and directories that hold its data or lie in /proc", () => {
    const problems = (env: NodeJS.ProcessEnv) =>
      secretPolicyFromEnv({ DR_DATA_DIR: dataDir, ...env }, '/', { dataDir, scratchDir: join(root, 'scratch'), restoreRoots: [join(root, 'restores')] })
        .problems;
    expect(problems({ DR_SECRET_ENV_PREFIX: 'DR_' })).toHaveLength(1);
    expect(problems({ DR_SECRET_ENV_PREFIX: 'DR_SECRETS_' })).toHaveLength(1);
    expect(problems({ DR_SECRET_ENV_PREFIX: 'NOUNDERSCORE' })).toHaveLength(1);
    for (const dirs of ['/', dataDir, root, '/proc/self', 'relative/dir', `${secrets}/../data`, join(root, 'restores', 'x'), join(root, 'scratch')]) {
      expect([dirs, problems({ DR_SECRET_DIRS: dirs }).length]).toEqual([dirs, 1]);
    }
    expect(problems({ DR_SECRET_DIRS: `${dataDir}/secrets:${secrets}` })).toEqual([]);
    expect(() => AppConfig.fromEnv({ DR_DATA_DIR: dataDir, DR_SECRET_DIRS: dataDir }, '/')).toThrow(ConfigurationError);
    // a restore root holding DR_DATA_DIR: the default directory is dropped (no file allowed) rather than refusing to start
    expect(AppConfig.fromEnv({ DR_DATA_DIR: dataDir, DR_RESTORE_ROOTS: root }, '/').secretPolicy.dirs).toEqual([]);
  });
});
