import { hostname } from 'node:os';
import { isAbsolute, resolve } from 'node:path';
import { randomBytes } from 'node:crypto';
import { plainToInstance, Transform } from 'class-transformer';
import { IsBoolean, IsIn, IsInt, IsOptional, IsString, IsUrl, Matches, Max, Min, MinLength, validateSync } from 'class-validator';
import { SECRET_REF_PATTERN, SecretReferencePolicy, secretPolicyFromEnv } from '../secrets/secret-reference';

const toInt = ({ value }: { value: unknown }) => (value === undefined || value === '' ? undefined : Number(value));
const toBool = ({ value }: { value: unknown }) =>
  value === undefined || value === ''
    ? undefined
    : (typeof value === 'string' || typeof value === 'boolean') && ['1', 'true', 'yes', 'on'].includes(String(value).toLowerCase());

/** A reference to a secret (`env:NAME` or `file:/abs/path`), as {@link SecretResolver} reads them. */
const SECRET_REF = SECRET_REF_PATTERN;

/**
 * The environment variables the service reads, validated once at boot.
 * Every other part of the code receives an {@link AppConfig}; nothing else reads `process.env`.
 */
class EnvironmentVariables {
  @IsOptional()
  @Transform(toInt)
  @IsInt()
  @Min(0)
  @Max(65535)
  DISASTER_RECOVERY_PORT?: number;

  @IsOptional()
  @Transform(toInt)
  @IsInt()
  @Min(0)
  @Max(65535)
  PORT?: number;

  @IsOptional()
  @IsString()
  HOST?: string;

  @IsOptional()
  @Matches(/^postgres(ql)?:\/\//, { message: 'DATABASE_URL must be a postgresql:// URL' })
  DATABASE_URL?: string;

  @IsOptional()
  @IsString()
  DR_DATA_DIR?: string;

  @IsOptional()
  @IsString()
  @MinLength(24, { message: 'DR_ADMIN_API_KEY must be at least 24 characters' })
  DR_ADMIN_API_KEY?: string;

  @IsOptional()
  @IsString()
  DR_RESTORE_ROOTS?: string;

  @IsOptional()
  @IsString()
  DR_SCRATCH_DIR?: string;

  @IsOptional()
  @Transform(toInt)
  @IsInt()
  @Min(-7)
  @Max(19)
  DR_ZSTD_LEVEL?: number;

  @IsOptional()
  @Transform(toInt)
  @IsInt()
  @Min(0)
  @Max(64)
  DR_ZSTD_WORKERS?: number;

  @IsOptional()
  @Transform(toInt)
  @IsInt()
  @Min(1)
  @Max(64)
  DR_PG_RESTORE_JOBS?: number;

  @IsOptional()
  @IsString()
  DR_PG_BIN_DIR?: string;

  @IsOptional()
  @IsString()
  @Matches(/^[a-z_][a-z0-9_-]{0,31}$/, { message: 'DR_PG_OS_USER must be an OS user name' })
  DR_PG_OS_USER?: string;

  @IsOptional()
  @IsString()
  DR_CLI_PATH?: string;

  @IsOptional()
  @Transform(toInt)
  @IsInt()
  @Min(2)
  @Max(3600)
  DR_JOB_LEASE_SECONDS?: number;

  @IsOptional()
  @Transform(toBool)
  @IsBoolean()
  DR_SCHEDULER_ENABLED?: boolean;

  @IsOptional()
  @Transform(toInt)
  @IsInt()
  @Min(1)
  @Max(3600)
  DR_PLAN_SYNC_SECONDS?: number;

  @IsOptional()
  @IsString()
  DR_INSTANCE_ID?: string;

  @IsOptional()
  @Transform(toInt)
  @IsInt()
  @Min(0)
  @Max(100)
  DR_DB_CONNECT_RETRIES?: number;

  @IsOptional()
  @IsIn(['fatal', 'error', 'warn', 'log', 'debug', 'verbose'])
  DR_LOG_LEVEL?: string;

  @IsOptional()
  @IsIn(['json', 'pretty'], { message: 'DR_LOG_FORMAT must be json or pretty' })
  DR_LOG_FORMAT?: string;

  @IsOptional()
  @Matches(SECRET_REF, { message: 'DR_AGE_IDENTITY_SECRET must be env:NAME or file:/absolute/path' })
  DR_AGE_IDENTITY_SECRET?: string;

  @IsOptional()
  @Matches(SECRET_REF, { message: 'DR_MANIFEST_SIGNING_KEY_SECRET must be env:NAME or file:/absolute/path' })
  DR_MANIFEST_SIGNING_KEY_SECRET?: string;

  @IsOptional()
  @IsString()
  DR_MANIFEST_TRUSTED_KEYS?: string;

  @IsOptional()
  @Matches(/^postgres(ql)?:\/\/[^:@/]*@?[^:@/]+(:\d+)?\/?$/, {
    message: 'DR_VERIFY_PG_URL must be a postgresql://user@host:port URL without password or database',
  })
  DR_VERIFY_PG_URL?: string;

  @IsOptional()
  @Matches(SECRET_REF, { message: 'DR_VERIFY_PG_PASSWORD_SECRET must be env:NAME or file:/absolute/path' })
  DR_VERIFY_PG_PASSWORD_SECRET?: string;

  @IsOptional()
  @Matches(SECRET_REF, { message: 'DR_JWT_SECRET must be env:NAME or file:/absolute/path' })
  DR_JWT_SECRET?: string;

  @IsOptional()
  @IsUrl({ require_tld: false, protocols: ['http', 'https'], require_protocol: true }, { message: 'DR_JWT_JWKS_URL must be an http(s) URL' })
  DR_JWT_JWKS_URL?: string;

  @IsOptional()
  @IsString()
  @MinLength(1)
  DR_JWT_ISSUER?: string;

  @IsOptional()
  @IsString()
  @MinLength(1)
  DR_JWT_AUDIENCE?: string;

  @IsOptional()
  @Matches(/^[^\s.]+(\.[^\s.]+)*$/, {
    message: 'DR_JWT_ROLES_CLAIM must be a claim name or a dotted path such as realm_access.roles',
  })
  DR_JWT_ROLES_CLAIM?: string;

  @IsOptional()
  @Transform(toInt)
  @IsInt()
  @Min(1)
  @Max(30 * 24 * 3600)
  DR_APPROVAL_TTL_SECONDS?: number;

  @IsOptional()
  @Transform(toBool)
  @IsBoolean()
  DR_API_DOCS_ENABLED?: boolean;

  @IsOptional()
  @Transform(toInt)
  @IsInt()
  @Min(0)
  @Max(1_000_000)
  DR_RATE_LIMIT_PER_MINUTE?: number;

  @IsOptional()
  @IsString()
  DR_CORS_ORIGINS?: string;

  @IsOptional()
  @IsString()
  DR_SECRET_ENV_PREFIX?: string;

  @IsOptional()
  @IsString()
  DR_SECRET_DIRS?: string;
}

/**
 * How bearer JWTs are verified. Exactly one key source: `secretRef` (HS256, a shared secret given as a secret
 * reference) or `jwksUrl` (RS256/ES256 public keys fetched from a JSON Web Key Set, RFC 7517). The algorithms are
 * fixed by the key source, so `none` and HS-with-a-public-key (algorithm confusion) are never accepted.
 */
export interface JwtSettings {
  secretRef?: string;
  jwksUrl?: string;
  algorithms: ('HS256' | 'RS256' | 'ES256')[];
  issuer?: string;
  audience?: string;
  /** Claim holding the roles; a dotted path reads a nested claim (`realm_access.roles`). Default `roles`. */
  rolesClaim: string;
}

function jwtSettingsOf(parsed: EnvironmentVariables): JwtSettings | undefined {
  if (!parsed.DR_JWT_SECRET && !parsed.DR_JWT_JWKS_URL) return undefined;
  return {
    secretRef: parsed.DR_JWT_SECRET,
    jwksUrl: parsed.DR_JWT_JWKS_URL,
    algorithms: parsed.DR_JWT_SECRET ? ['HS256'] : ['RS256', 'ES256'],
    issuer: parsed.DR_JWT_ISSUER,
    audience: parsed.DR_JWT_AUDIENCE,
    rolesClaim: parsed.DR_JWT_ROLES_CLAIM ?? 'roles',
  };
}

/** Raised at boot when the environment is invalid; lists every bad variable. */
export class ConfigurationError extends Error {}

/**
 * The service's validated configuration. Units are in the field names (seconds, bytes).
 * Built once by {@link AppConfig.fromEnv}; injected everywhere else.
 */
export class AppConfig {
  /** HTTP port (default 8891). */
  readonly port: number;
  readonly host: string;
  /** Metadata store URL; undefined selects the embedded PostgreSQL (PGlite) under `dataDir`. */
  readonly databaseUrl?: string;
  /** Absolute directory for embedded database, default storage location, scratch files and the admin key file. */
  readonly dataDir: string;
  readonly adminApiKey?: string;
  /** Absolute directories a restore may write into (`DR_RESTORE_ROOTS`, `:` or `,` separated). */
  readonly restoreRoots: string[];
  /** Absolute directory for temporary files of restores (e.g. a decompressed pg_dump archive for pg_restore -j). */
  readonly scratchDir: string;
  readonly zstdLevel: number;
  /** zstd worker threads (default 1: libzstd compresses beside the event loop); 0 compresses on the event loop. */
  readonly zstdWorkers: number;
  readonly pgRestoreJobs: number;
  /** Directory holding pg_dump/pg_restore/psql of the wanted major version; undefined uses PATH. */
  readonly pgBinDir?: string;
  /** OS user that runs PostgreSQL servers of point-in-time recoveries when the service runs as root (PostgreSQL refuses root). */
  readonly pgOsUser: string;
  /** The `dr` executable that restore_command calls (`dr wal-fetch`); default: bin/dr of this installation. */
  readonly cliPath: string;
  /** A RUNNING job whose heartbeat is older than this is considered dead (its process crashed). */
  readonly jobLeaseSeconds: number;
  readonly schedulerEnabled: boolean;
  readonly planSyncSeconds: number;
  /** Identifies this process in schedule claims and job ownership. */
  readonly instanceId: string;
  readonly logLevel: string;
  /** `json` (default): one JSON object a line; `pretty`: human lines through pino-pretty, when it is installed. */
  readonly logFormat: 'json' | 'pretty';
  /** Attempts to reach the metadata store at boot before giving up (3 s apart). */
  readonly dbConnectRetries: number;
  /** Secret reference to the age identities (`AGE-SECRET-KEY-1...` lines) that decrypt backups for restore and verification. */
  readonly ageIdentitySecret?: string;
  /**
   * Secret reference to the Ed25519 private key (PKCS#8 PEM) that signs manifests; unset: a key generated at first
   * start in `DR_DATA_DIR/manifest-signing-key.pem` (replicas must then be given one shared key).
   */
  readonly manifestSigningKeySecret?: string;
  /** More public keys (PEM files, comma separated) whose manifest signatures verify: earlier keys, other sites. */
  readonly manifestTrustedKeyFiles: string[];
  /** Server on which deep verification creates its scratch databases; unset: the backup's source server. */
  readonly verifyPgUrl?: string;
  readonly verifyPgPasswordSecret?: string;
  /** Bearer JWTs: off when neither a secret nor a JWKS URL is set (API keys only). */
  readonly jwt?: JwtSettings;
  /** A production recovery not approved within this many seconds becomes EXPIRED (default 3600). */
  readonly approvalTtlSeconds: number;
  /** Serve Swagger UI at `/api-docs` and the document at `/api-docs/openapi.json` (default true). */
  readonly apiDocsEnabled: boolean;
  /** API requests allowed per client address per minute (default 600); 0 turns rate limiting off. */
  readonly rateLimitPerMinute: number;
  /** Origins allowed by CORS (`DR_CORS_ORIGINS`, comma separated, e.g. `https://ops.example.com`); empty: CORS off. */
  readonly corsOrigins: string[];
  /**
   * Which secret references requests may name (`DR_SECRET_ENV_PREFIX`, default `DRS_`; `DR_SECRET_DIRS`, default
   * `DR_DATA_DIR/secrets`); the service's own secrets never.
   */
  readonly secretPolicy: SecretReferencePolicy;

  private constructor(values: Omit<AppConfig, never>) {
    Object.assign(this, values);
  }

  /**
   * Validates `env` and builds the configuration.
   * @throws ConfigurationError naming every invalid variable.
   */
  static fromEnv(env: NodeJS.ProcessEnv = process.env, cwd = process.cwd()): AppConfig {
    const parsed = plainToInstance(EnvironmentVariables, { ...env }, { excludeExtraneousValues: false });
    const errors = validateSync(parsed, { whitelist: false, forbidUnknownValues: false });
    const problems = errors.flatMap((e) => Object.values(e.constraints ?? {}).map((m) => `${e.property}: ${m}`));
    const dataDir = resolve(cwd, parsed.DR_DATA_DIR ?? './data');
    const restoreRoots = (parsed.DR_RESTORE_ROOTS ?? resolve(dataDir, 'restores'))
      .split(/[,:]/)
      .map((p) => p.trim())
      .filter(Boolean);
    for (const root of restoreRoots) {
      if (!isAbsolute(root)) problems.push(`DR_RESTORE_ROOTS: "${root}" is not an absolute path`);
    }
    const trustedKeyFiles = (parsed.DR_MANIFEST_TRUSTED_KEYS ?? '')
      .split(',')
      .map((f) => f.trim())
      .filter(Boolean);
    for (const file of trustedKeyFiles) {
      if (!isAbsolute(file)) problems.push(`DR_MANIFEST_TRUSTED_KEYS: "${file}" is not an absolute path`);
    }
    const corsOrigins = (parsed.DR_CORS_ORIGINS ?? '')
      .split(',')
      .map((o) => o.trim())
      .filter(Boolean);
    for (const origin of corsOrigins) {
      if (!/^https?:\/\/[^/\s]+$/.test(origin)) problems.push(`DR_CORS_ORIGINS: "${origin}" is not an origin (scheme://host[:port])`);
    }
    if (parsed.DR_CLI_PATH !== undefined && !isAbsolute(parsed.DR_CLI_PATH)) problems.push('DR_CLI_PATH: must be an absolute path');
    if (parsed.DR_PG_BIN_DIR !== undefined && !isAbsolute(parsed.DR_PG_BIN_DIR)) {
      problems.push('DR_PG_BIN_DIR: must be an absolute path');
    }
    if (parsed.DR_JWT_SECRET && parsed.DR_JWT_JWKS_URL) {
      problems.push('DR_JWT_SECRET, DR_JWT_JWKS_URL: set one, not both (HS256 with a shared secret, or RS256/ES256 keys from a JWKS)');
    }
    if (!parsed.DR_JWT_SECRET && !parsed.DR_JWT_JWKS_URL) {
      for (const name of ['DR_JWT_ISSUER', 'DR_JWT_AUDIENCE', 'DR_JWT_ROLES_CLAIM'] as const) {
        if (parsed[name]) problems.push(`${name}: has no effect without DR_JWT_SECRET or DR_JWT_JWKS_URL`);
      }
    }
    const scratchDir = resolve(cwd, parsed.DR_SCRATCH_DIR ?? resolve(dataDir, 'scratch'));
    const secrets = secretPolicyFromEnv(env, cwd, { dataDir, scratchDir, restoreRoots: restoreRoots.map((r) => resolve(r)) });
    problems.push(...secrets.problems);
    if (problems.length > 0) {
      throw new ConfigurationError(`Invalid configuration:\n  ${problems.join('\n  ')}`);
    }
    return new AppConfig({
      port: parsed.DISASTER_RECOVERY_PORT ?? parsed.PORT ?? 8891,
      host: parsed.HOST ?? '0.0.0.0',
      databaseUrl: parsed.DATABASE_URL || undefined,
      dataDir,
      adminApiKey: parsed.DR_ADMIN_API_KEY,
      restoreRoots: restoreRoots.map((r) => resolve(r)),
      scratchDir,
      zstdLevel: parsed.DR_ZSTD_LEVEL ?? 3,
      zstdWorkers: parsed.DR_ZSTD_WORKERS ?? 1,
      pgRestoreJobs: parsed.DR_PG_RESTORE_JOBS ?? 2,
      pgBinDir: parsed.DR_PG_BIN_DIR,
      pgOsUser: parsed.DR_PG_OS_USER ?? 'postgres',
      cliPath: parsed.DR_CLI_PATH ?? resolve(__dirname, '..', '..', 'bin', 'dr'),
      jobLeaseSeconds: parsed.DR_JOB_LEASE_SECONDS ?? 30,
      schedulerEnabled: parsed.DR_SCHEDULER_ENABLED ?? true,
      planSyncSeconds: parsed.DR_PLAN_SYNC_SECONDS ?? 30,
      instanceId: parsed.DR_INSTANCE_ID ?? `${hostname()}-${process.pid}-${randomBytes(3).toString('hex')}`,
      logLevel: parsed.DR_LOG_LEVEL ?? 'log',
      logFormat: (parsed.DR_LOG_FORMAT ?? 'json') as 'json' | 'pretty',
      dbConnectRetries: parsed.DR_DB_CONNECT_RETRIES ?? 9,
      ageIdentitySecret: parsed.DR_AGE_IDENTITY_SECRET,
      manifestSigningKeySecret: parsed.DR_MANIFEST_SIGNING_KEY_SECRET,
      manifestTrustedKeyFiles: trustedKeyFiles,
      verifyPgUrl: parsed.DR_VERIFY_PG_URL,
      verifyPgPasswordSecret: parsed.DR_VERIFY_PG_PASSWORD_SECRET,
      jwt: jwtSettingsOf(parsed),
      approvalTtlSeconds: parsed.DR_APPROVAL_TTL_SECONDS ?? 3600,
      apiDocsEnabled: parsed.DR_API_DOCS_ENABLED ?? true,
      rateLimitPerMinute: parsed.DR_RATE_LIMIT_PER_MINUTE ?? 600,
      corsOrigins,
      secretPolicy: secrets.policy,
    });
  }
}
