import { constants, existsSync, realpathSync } from 'node:fs';
import { open, readFile, readlink, realpath } from 'node:fs/promises';
import { isAbsolute, posix, resolve } from 'node:path';
import { DrError } from '../errors/dr-error';

// No Nest here: `dr wal-push` / `dr wal-fetch` (src/wal/wal-cli.ts) load this module once per WAL file.

/** A reference to a secret: `env:NAME` (an environment variable) or `file:/abs/path` (a file's content, trimmed). */
export type SecretRef = string;

/** The one syntax of secret references, for requests, stored records, WAL client configs and configuration. */
export const SECRET_REF_PATTERN = /^(env:[A-Za-z_][A-Za-z0-9_]*|file:\/.+)$/;

/** The message of a reference that does not have the syntax of {@link SECRET_REF_PATTERN}. */
export const SECRET_REF_SYNTAX = 'must be env:NAME or file:/absolute/path';

/** Environment variable prefix of the secrets requests may name, when `DR_SECRET_ENV_PREFIX` is not set. */
export const DEFAULT_SECRET_ENV_PREFIX = 'DRS_';

/** Largest secret file read (an age identity, a PEM key, a GCS key file are a few KB). */
export const MAX_SECRET_FILE_BYTES = 1 << 20;

/**
 * The configuration variables that are themselves secret references, resolved for the service (never for a
 * request): whatever they point at is denied to requests.
 */
export const OPERATOR_SECRET_VARIABLES = ['DR_JWT_SECRET', 'DR_AGE_IDENTITY_SECRET', 'DR_MANIFEST_SIGNING_KEY_SECRET', 'DR_VERIFY_PG_PASSWORD_SECRET'] as const;

/** Files of `DR_DATA_DIR` that hold the service's own secrets (the generated admin key, the generated signing key). */
export const DATA_DIR_SECRET_FILES = ['admin-api-key', 'manifest-signing-key.pem'];

/** Where secret files are never looked for: the kernel's pseudo file systems (`/proc/self/environ`...). */
const PSEUDO_FILE_SYSTEMS = /^\/(proc|sys|dev)(\/|$)/;

/** What a policy allows. */
export interface SecretPolicySettings {
  /** Environment variables a request may name start with this (`DRS_`). */
  envPrefix: string;
  /** Absolute, normalized directories whose files (after symlinks are resolved) a request may name. */
  dirs: string[];
  /** Environment variables never resolvable by a request (besides every `DR_*` variable and DATABASE_URL). */
  deniedEnv: string[];
  /** Absolute files never resolvable by a request, compared after symlinks are resolved. */
  deniedFiles: string[];
}

/**
 * Which secret references a request (or a record a request made, or a WAL client config) may name, and their
 * resolution. A request may name only:
 * - `env:NAME` where NAME starts with {@link SecretPolicySettings.envPrefix} (`DR_SECRET_ENV_PREFIX`, default
 *   `DRS_`), and is neither a `DR_*` variable, nor `DATABASE_URL`, nor a variable a configuration reference names;
 * - `file:/path` where the path is absolute and normalized (no `.`, `..`, `//`) and the file, with every symlink
 *   resolved, is inside one of {@link SecretPolicySettings.dirs} (`DR_SECRET_DIRS`, default `DR_DATA_DIR/secrets`)
 *   and is not one of the service's own secret files (the generated admin key and signing key, the files the
 *   configuration references name).
 * Everything else is refused with one message that does not depend on whether the variable or file exists (no
 * oracle). Configuration references (`DR_JWT_SECRET`...) are the operator's and are resolved by
 * {@link readSecretReference} without this policy.
 */
export class SecretReferencePolicy {
  private readonly settings: SecretPolicySettings;

  constructor(settings: SecretPolicySettings) {
    this.settings = {
      envPrefix: settings.envPrefix,
      dirs: settings.dirs.map((d) => posix.normalize(d).replace(/(.)\/$/, '$1')),
      deniedEnv: [...settings.deniedEnv],
      deniedFiles: settings.deniedFiles.map((f) => posix.normalize(f)),
    };
  }

  /** The policy of an environment (see {@link secretPolicyFromEnv}); throws on a bad `DR_SECRET_*` value. */
  static fromEnv(env: NodeJS.ProcessEnv = process.env, cwd = process.cwd()): SecretReferencePolicy {
    const { policy, problems } = secretPolicyFromEnv(env, cwd);
    if (problems.length) throw new Error(`invalid secret reference settings: ${problems.join('; ')}`);
    return policy;
  }

  get envPrefix(): string {
    return this.settings.envPrefix;
  }

  get dirs(): string[] {
    return [...this.settings.dirs];
  }

  /** One line for error messages: what a request may name. */
  describe(): string {
    const files = this.settings.dirs.length ? `file:/path under ${this.settings.dirs.join(', ')}` : 'no file (DR_SECRET_DIRS is empty)';
    return `env:${this.settings.envPrefix}NAME or ${files}`;
  }

  /** Whether a request may name environment variable `name`. */
  allowsEnv(name: string): boolean {
    return (
      name.length > this.settings.envPrefix.length &&
      name.startsWith(this.settings.envPrefix) &&
      !name.startsWith('DR_') &&
      name !== 'DATABASE_URL' &&
      !this.settings.deniedEnv.includes(name)
    );
  }

  /**
   * Request-time check of a reference: its syntax and this policy, with symlinks resolved when the file exists (a
   * file that does not exist yet fails at resolution, as an unset variable does).
   * @throws DrError VALIDATION_FAILED naming `field`, with the same message whether or not the target exists.
   */
  async check(ref: string, field: string): Promise<void> {
    if (typeof ref !== 'string' || !SECRET_REF_PATTERN.test(ref)) throw DrError.validation([{ field, message: `${field} ${SECRET_REF_SYNTAX}` }]);
    if (ref.startsWith('env:')) {
      if (!this.allowsEnv(ref.slice(4))) throw this.refusal(field);
      return;
    }
    const path = ref.slice(5);
    if (!this.allowsPathLexically(path)) throw this.refusal(field);
    const real = await realpath(path).catch(() => null);
    if (real !== null && !(await this.allowsRealPath(real))) throw this.refusal(field);
  }

  /**
   * Resolves a reference a request (or a record, or a WAL client config) names, after {@link check}. A file is
   * opened without following a final symlink, must be a regular file of at most {@link MAX_SECRET_FILE_BYTES}, and
   * the file actually opened is checked again (`/proc/self/fd`), so a symlink swapped in after the check is caught.
   * @returns the variable's value, or the file's content trimmed.
   * @throws DrError VALIDATION_FAILED (refused, see {@link check}) or SECRET_UNAVAILABLE (an allowed variable that
   *   is not set, an allowed file that cannot be read), naming the field and the reference, never a value.
   */
  async resolve(ref: string, field: string): Promise<string> {
    await this.check(ref, field);
    if (ref.startsWith('env:')) return envValue(ref.slice(4), field);
    const path = ref.slice(5);
    const unavailable = () => fileUnavailable(path, field);
    const real = await realpath(path).catch(() => null);
    if (real === null) throw unavailable();
    const handle = await open(real, constants.O_RDONLY | constants.O_NOFOLLOW | constants.O_NONBLOCK).catch(() => null);
    if (!handle) throw unavailable();
    try {
      const opened = await readlink(`/proc/self/fd/${handle.fd}`).catch(() => real);
      if (!(await this.allowsRealPath(opened))) throw this.refusal(field);
      const info = await handle.stat();
      if (!info.isFile() || info.size > MAX_SECRET_FILE_BYTES) throw unavailable();
      return (await handle.readFile('utf8')).trim();
    } catch (error) {
      if (error instanceof DrError) throw error;
      throw unavailable();
    } finally {
      await handle.close().catch(() => undefined);
    }
  }

  /** The environment a child `dr` process needs to apply this same policy (restore_command's `dr wal-fetch`). */
  toEnvironment(): Record<string, string> {
    return { DR_SECRET_ENV_PREFIX: this.settings.envPrefix, DR_SECRET_DIRS: this.settings.dirs.join(':') };
  }

  /** VALIDATION_FAILED naming `field`; the message (also the error's, which a failed job records) says what is allowed. */
  private refusal(field: string): DrError {
    const message = `not an allowed secret reference: use ${this.describe()} (DR_SECRET_ENV_PREFIX, DR_SECRET_DIRS); the service's own secrets are never allowed`;
    return new DrError('VALIDATION_FAILED', `${field}: ${message}`, [{ field, message }], { fields: field });
  }

  private allowsPathLexically(path: string): boolean {
    if (!isAbsolute(path) || posix.normalize(path) !== path || path.endsWith('/') || path.includes('\u0000')) return false;
    if (this.settings.deniedFiles.includes(path)) return false;
    return this.settings.dirs.some((dir) => isInside(path, dir));
  }

  private async allowsRealPath(real: string): Promise<boolean> {
    if (PSEUDO_FILE_SYSTEMS.test(real)) return false;
    const denied = await Promise.all(this.settings.deniedFiles.map((f) => realpath(f).catch(() => f)));
    if (denied.includes(real)) return false;
    const dirs = await Promise.all(this.settings.dirs.map((d) => realpath(d).catch(() => null)));
    return dirs.some((dir) => dir !== null && isInside(real, dir));
  }
}

/** Whether `path` is strictly inside directory `dir` (both absolute and normalized): `/srv/a-evil` is not in `/srv/a`. */
function isInside(path: string, dir: string): boolean {
  return dir === '/' ? path !== '/' : path.startsWith(`${dir}/`);
}

function envValue(name: string, field: string): string {
  const value = process.env[name];
  if (value === undefined || value === '') {
    throw new DrError('SECRET_UNAVAILABLE', `${field}: environment variable ${name} is not set`, [
      { field, message: `environment variable ${name} is not set` },
    ]);
  }
  return value;
}

function fileUnavailable(path: string, field: string): DrError {
  return new DrError('SECRET_UNAVAILABLE', `${field}: secret file ${path} cannot be read`, [{ field, message: `secret file ${path} cannot be read` }]);
}

/**
 * Reads a reference the operator configured (`DR_JWT_SECRET`, `DR_AGE_IDENTITY_SECRET`,
 * `DR_MANIFEST_SIGNING_KEY_SECRET`, `DR_VERIFY_PG_PASSWORD_SECRET`), without the request policy: any variable, any
 * absolute file (content trimmed).
 * @param variable the configuration variable that holds the reference, for messages.
 * @throws DrError SECRET_UNAVAILABLE naming the variable and the reference (never the value), VALIDATION_FAILED on
 *   a reference that is not `env:NAME` / `file:/absolute/path`.
 */
export async function readSecretReference(ref: string, variable: string): Promise<string> {
  if (ref.startsWith('env:') && SECRET_REF_PATTERN.test(ref)) return envValue(ref.slice(4), variable);
  if (ref.startsWith('file:') && isAbsolute(ref.slice(5))) {
    try {
      return (await readFile(ref.slice(5), 'utf8')).trim();
    } catch {
      throw fileUnavailable(ref.slice(5), variable);
    }
  }
  throw DrError.validation([{ field: variable, message: SECRET_REF_SYNTAX }]);
}

/** Directories the secret directories must stay out of, with what they are (for messages). */
export interface ProtectedDirectories {
  dataDir: string;
  scratchDir?: string;
  restoreRoots?: string[];
}

/**
 * Builds the request policy from `DR_SECRET_ENV_PREFIX` and `DR_SECRET_DIRS`, for the service (AppConfig) and the
 * CLI alike, and checks them:
 * - the prefix: letters, digits and `_`, ending in `_`, at least 2 characters, not starting with `DR_` (the
 *   service's own variables); default {@link DEFAULT_SECRET_ENV_PREFIX};
 * - the directories (`:` or `,` separated; empty: no file at all): absolute and normalized (no `.`, `..`), not `/`,
 *   not under /proc, /sys or /dev, neither holding nor inside `DR_DATA_DIR` (except below `DR_DATA_DIR/secrets`),
 *   the scratch directory or a restore root (restored or scratch files must not become secrets); checked as written
 *   and, when they exist, with symlinks resolved. Unset: `DR_DATA_DIR/secrets`, or no directory when that one
 *   overlaps a restore root or the scratch directory.
 * The service's own secrets are denied whatever these say: `DR_*` variables, `DATABASE_URL`, what the
 * configuration references (`DR_JWT_SECRET`...) name, and `DR_DATA_DIR`'s admin key and signing key.
 * @param protectedDirs defaults to `DR_DATA_DIR` (resolved against `cwd`, default `./data`) alone.
 * @returns the policy and the problems (each naming its variable); the policy is usable only without problems.
 */
export function secretPolicyFromEnv(
  env: NodeJS.ProcessEnv,
  cwd: string,
  protectedDirs?: ProtectedDirectories,
): { policy: SecretReferencePolicy; problems: string[] } {
  const problems: string[] = [];
  const dataDir = protectedDirs?.dataDir ?? resolve(cwd, env.DR_DATA_DIR || './data');
  const envPrefix = env.DR_SECRET_ENV_PREFIX || DEFAULT_SECRET_ENV_PREFIX;
  if (!/^[A-Za-z][A-Za-z0-9_]*_$/.test(envPrefix) || envPrefix.toUpperCase().startsWith('DR_')) {
    problems.push("DR_SECRET_ENV_PREFIX: letters, digits and _, ending in _ (e.g. DRS_), not starting with DR_ (the service's own variables)");
  }
  const ownSecrets = resolve(dataDir, 'secrets');
  const others: [string, string][] = [
    ...(protectedDirs?.scratchDir ? [[protectedDirs.scratchDir, 'DR_SCRATCH_DIR'] as [string, string]] : []),
    ...(protectedDirs?.restoreRoots ?? []).map((r) => [r, 'a restore root (DR_RESTORE_ROOTS)'] as [string, string]),
  ];
  let dirs: string[];
  if (env.DR_SECRET_DIRS === undefined) {
    // The default: DR_DATA_DIR/secrets, unless restores or scratch files could land in it (then no file at all).
    dirs = formsOf(ownSecrets).some((form) => dirProblem(form, dataDir, ownSecrets, others)) ? [] : [ownSecrets];
  } else {
    dirs = env.DR_SECRET_DIRS.split(/[,:]/)
      .map((d) => d.trim())
      .filter(Boolean);
    for (const dir of dirs) {
      if (!isAbsolute(dir) || posix.normalize(dir).replace(/(.)\/$/, '$1') !== dir) {
        problems.push(`DR_SECRET_DIRS: "${dir}" must be an absolute path without ".", ".." or a trailing "/"`);
        continue;
      }
      for (const form of formsOf(dir)) {
        const why = dirProblem(form, dataDir, ownSecrets, others);
        if (why) {
          problems.push(`DR_SECRET_DIRS: "${dir}"${form !== dir ? ` (resolved to ${form})` : ''} ${why}`);
          break;
        }
      }
    }
  }
  const deniedEnv: string[] = [];
  const deniedFiles = DATA_DIR_SECRET_FILES.map((f) => resolve(dataDir, f));
  for (const variable of OPERATOR_SECRET_VARIABLES) {
    const ref = env[variable];
    if (ref?.startsWith('env:')) deniedEnv.push(ref.slice(4));
    if (ref?.startsWith('file:') && isAbsolute(ref.slice(5))) deniedFiles.push(posix.normalize(ref.slice(5)));
  }
  return { policy: new SecretReferencePolicy({ envPrefix, dirs, deniedEnv, deniedFiles }), problems };
}

/** `dir` as written and, when it exists, with its symlinks resolved. */
function formsOf(dir: string): string[] {
  try {
    return existsSync(dir) ? [dir, realpathSync(dir)] : [dir];
  } catch {
    return [dir];
  }
}

function dirProblem(dir: string, dataDir: string, ownSecrets: string, others: [string, string][]): string | null {
  if (dir === '/') return 'must not be /';
  if (PSEUDO_FILE_SYSTEMS.test(dir)) return 'must not be under /proc, /sys or /dev';
  const overlaps = (a: string, b: string) => a === b || isInside(a, b) || isInside(b, a);
  if (overlaps(dir, dataDir) && !(dir === ownSecrets || isInside(dir, ownSecrets))) {
    return `must not hold or be inside DR_DATA_DIR (${dataDir}), except below ${ownSecrets}: it holds the service's own keys and database`;
  }
  for (const [other, what] of others) if (overlaps(dir, other)) return `must not hold or be inside ${what} (${other})`;
  return null;
}
