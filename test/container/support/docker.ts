import { execFile, spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { promisify } from 'node:util';

/** The repository's root (the Dockerfile's build context). */
export const ROOT = join(__dirname, '..', '..', '..');
/** Build contexts of the storage and database stand-ins (see docker-compose.yml). */
export const STAND_INS = join(ROOT, 'test', 'container', 'images');

const run = promisify(execFile);

/** Whether a Docker engine answers, and if not why (the CLI's own message): checked once, synchronously. */
function probeEngine(): { ok: true } | { ok: false; reason: string } {
  const result = spawnSync('docker', ['info', '--format', '{{.ServerVersion}}'], { encoding: 'utf8', timeout: 20_000 });
  if (result.error) return { ok: false, reason: `docker CLI not runnable: ${result.error.message}` };
  if (result.status !== 0) return { ok: false, reason: (result.stderr || result.stdout).trim().split('\n')[0] };
  return { ok: true };
}

/**
 * `describe` for tests that need a Docker engine. Without one they are skipped with the reason printed, except in
 * CI (CI=true, as .ci/run exports), where a missing engine is a failure: .ci/run starts dockerd, so an engine that
 * does not answer there is a broken setup, not a reason to pass.
 */
export function describeWithDocker(name: string, body: () => void): void {
  const engine = probeEngine();
  if (engine.ok) return describe(name, body);
  if (process.env.CI === 'true') {
    return describe(name, () => {
      it('needs a Docker engine (CI=true: not skipped)', () => {
        throw new Error(`no Docker engine: ${engine.reason}`);
      });
    });
  }

  console.warn(`skipped "${name}": no Docker engine (${engine.reason}); start dockerd or run .ci/run`);
  return describe.skip(name, body);
}

/** KEY=VALUE lines of scripts/ci/local-base-images.env (the names of the locally made base images). */
function localBaseImages(): Record<string, string> {
  const text = readFileSync(join(ROOT, 'scripts', 'ci', 'local-base-images.env'), 'utf8');
  return Object.fromEntries(
    text
      .split('\n')
      .filter((line) => /^[A-Z_]+=/.test(line))
      .map((line) => [line.slice(0, line.indexOf('=')), line.slice(line.indexOf('=') + 1).trim()]),
  );
}

async function imageExists(name: string): Promise<boolean> {
  return run('docker', ['image', 'inspect', name]).then(
    () => true,
    () => false,
  );
}

/**
 * The base images to build from: BASE_IMAGE / DEBIAN_IMAGE when set, else the locally made ones
 * (scripts/ci/build-local-base-images.sh) when they exist, else the official node:22-bookworm-slim and
 * debian:bookworm-slim. The same choice as scripts/ci/build-image.sh.
 */
export async function baseImages(): Promise<{ BASE_IMAGE: string; DEBIAN_IMAGE: string }> {
  const local = localBaseImages();
  const pick = async (env: string | undefined, localName: string, official: string) => env || ((await imageExists(localName)) ? localName : official);
  return {
    BASE_IMAGE: await pick(process.env.BASE_IMAGE, local.DR_LOCAL_NODE_IMAGE, 'node:22-bookworm-slim'),
    DEBIAN_IMAGE: await pick(process.env.DEBIAN_IMAGE, local.DR_LOCAL_DEBIAN_IMAGE, 'debian:bookworm-slim'),
  };
}

/** The tag the service's image is built under by these tests and scripts/ci/build-image.sh. */
export const SERVICE_IMAGE = process.env.DR_IMAGE || 'disaster-recovery-service:local';

/**
 * Builds the service's image from the working tree with scripts/ci/build-image.sh (the same command and base
 * image choice as .ci/run, so both share the engine's layer cache: a few seconds when nothing changed) and returns
 * its tag. Building here anyway means a test never runs a stale image.
 * @throws with the build's output when it fails
 */
export async function buildServiceImage(): Promise<string> {
  await run('bash', [join(ROOT, 'scripts', 'ci', 'build-image.sh'), SERVICE_IMAGE], {
    env: { ...process.env, ...(await baseImages()) },
    maxBuffer: 256 * 1024 * 1024,
  }).catch((error) => {
    throw new Error(`image build failed: ${error.message}\n${String(error.stdout).slice(-8000)}\n${String(error.stderr).slice(-8000)}`);
  });
  return SERVICE_IMAGE;
}

/** Builds the PostgreSQL 15 stand-in (test/container/images/postgres, as docker-compose.yml does) and returns its tag. */
export async function buildPostgresImage(): Promise<string> {
  const { DEBIAN_IMAGE } = await baseImages();
  const tag = 'dr-stand-in/postgres:15';
  await run('docker', ['build', '-q', '--build-arg', `DEBIAN_IMAGE=${DEBIAN_IMAGE}`, '-t', tag, join(STAND_INS, 'postgres')], { maxBuffer: 64 * 1024 * 1024 });
  return tag;
}

/** `docker image inspect` of one image: size in bytes, configured user, healthcheck. */
export async function inspectImage(name: string): Promise<{ Size: number; Config: { User: string; Healthcheck?: { Test: string[] } } }> {
  const { stdout } = await run('docker', ['image', 'inspect', name]);
  return JSON.parse(stdout)[0];
}

/** `docker inspect` of one container (State.Health, HostConfig, Config). */
export async function inspectContainer(id: string): Promise<any> {
  const { stdout } = await run('docker', ['inspect', id]);
  return JSON.parse(stdout)[0];
}
