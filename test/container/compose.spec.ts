import { execFile, spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { BlobServiceClient, StorageSharedKeyCredential } from '@azure/storage-blob';
import { AZURITE_ACCOUNT, AZURITE_KEY } from '../support/azurite-server';
import { freePort } from '../support/server-process';
import { ServiceApi } from './support/api';
import { baseImages, describeWithDocker, inspectContainer, ROOT } from './support/docker';

/**
 * `docker compose up` of the repository's docker-compose.yml, as a developer runs it (every image built from the
 * repository: the service, PostgreSQL 15, and the S3, Azure Blob and GCS stand-ins), on free host ports under a
 * project name of its own. Then, through the service's API only, a smoke test of every store: a directory tree and
 * a PostgreSQL database backed up to each, restored, and compared with the source. Nothing is mocked; the stores
 * are emulators (s3rver, Azurite, the firebase-tools GCS emulator), since no cloud is reachable.
 */
const run = promisify(execFile);
const COMPOSE_FILE = join(ROOT, 'docker-compose.yml');
/** The development-only admin key and database password written in docker-compose.yml. */
const ADMIN_KEY = 'dev-only-admin-key-change-me-0123456789';

/** `docker compose` (the plugin) when it is installed, else Debian's `docker-compose`. */
function composeCommand(): string[] {
  return spawnSync('docker', ['compose', 'version'], { encoding: 'utf8' }).status === 0 ? ['docker', 'compose'] : ['docker-compose'];
}

describeWithDocker('docker compose up: the stack of docker-compose.yml, backed up to and restored from every store', () => {
  const project = `drsmoke${randomBytes(4).toString('hex')}`;
  const [command, ...commandArgs] = composeCommand();
  let env: NodeJS.ProcessEnv;
  let api: ServiceApi;
  const ids: Record<string, string> = {};
  const locations: Record<string, string> = {};
  const figures: Record<string, number> = {};

  const compose = (args: string[], timeoutMs = 1_200_000) =>
    run(command, [...commandArgs, '-p', project, '-f', COMPOSE_FILE, ...args], { env, cwd: ROOT, timeout: timeoutMs, maxBuffer: 256 * 1024 * 1024 });

  /** Runs a shell command in one service's container. @returns stdout; throws with the output on a non-zero exit */
  const sh = async (service: string, script: string) =>
    (await run('docker', ['exec', ids[service], 'sh', '-c', script], { maxBuffer: 64 * 1024 * 1024 })).stdout;
  const psql = (database: string, sql: string) => sh('metadata-db', `psql -X -qAt -v ON_ERROR_STOP=1 -d ${database} -c "${sql}"`);

  beforeAll(async () => {
    const ports = {
      DR_PORT: await freePort(),
      DR_S3_PORT: await freePort(),
      DR_AZURE_PORT: await freePort(),
      DR_GCS_PORT: await freePort(),
      DR_PG_PORT: await freePort(),
    };
    env = {
      ...process.env,
      ...(await baseImages()),
      ...Object.fromEntries(Object.entries(ports).map(([k, v]) => [k, String(v)])),
      // docker-compose 1.x: build through the docker CLI (the legacy builder), sharing its layer cache with
      // scripts/ci/build-image.sh instead of building the service image a second time through the API
      COMPOSE_DOCKER_CLI_BUILD: '1',
      DOCKER_BUILDKIT: '0',
    };

    const upStart = Date.now();
    await compose(['up', '-d', '--build']).catch(async (error) => {
      throw new Error(`compose up failed: ${error.message}\n${error.stdout ?? ''}\n${error.stderr ?? ''}`);
    });
    figures.upMs = Date.now() - upStart;
    for (const service of ['disaster-recovery', 'metadata-db', 's3', 'azurite', 'gcs']) {
      ids[service] = (await compose(['ps', '-q', service])).stdout.trim();
    }
    const deadline = Date.now() + 200_000; // the start period (120 s) and three failed probes, then some margin
    for (;;) {
      const health = (await inspectContainer(ids['disaster-recovery'])).State.Health?.Status;
      if (health === 'healthy') break;
      if (health === 'unhealthy' || Date.now() > deadline)
        throw new Error(`the service is ${health}: ${(await compose(['logs', '--no-color'])).stdout.slice(-8000)}`);
      await new Promise((resolve) => setTimeout(resolve, 1_000));
    }
    figures.upToHealthyMs = Date.now() - upStart;
    api = new ServiceApi(`http://127.0.0.1:${ports.DR_PORT}`, ADMIN_KEY);

    const settings: Record<string, { kind: string; settings: Record<string, unknown> }> = {
      s3: {
        kind: 's3',
        settings: {
          bucket: 'dr-backups',
          endpoint: 'http://s3:9000',
          region: 'us-east-1',
          forcePathStyle: true,
          accessKeyIdSecret: 'env:DRS_S3_ACCESS_KEY',
          secretAccessKeySecret: 'env:DRS_S3_SECRET_KEY',
        },
      },
      azure: { kind: 'azure-blob', settings: { container: 'dr-backups', connectionStringSecret: 'env:DRS_AZURE_CONNECTION_STRING' } },
      gcs: { kind: 'gcs', settings: { bucket: 'dr-backups', apiEndpoint: 'http://gcs:4443', anonymous: true, projectId: 'dr' } },
    };
    for (const [name, body] of Object.entries(settings)) {
      locations[name] = (await api.call<{ id: string }>('POST', '/storage-locations', { name, ...body })).id;
    }

    await psql('postgres', 'CREATE DATABASE sample');
    await psql(
      'sample',
      'CREATE TABLE items (id int PRIMARY KEY, label text NOT NULL, payload bytea); ' +
        "INSERT INTO items SELECT g, 'item ' || g, decode(md5(g::text), 'hex') FROM generate_series(1, 5000) g",
    );
  });

  afterAll(async () => {
    if (env) {
      if (Object.keys(locations).length < 3 || process.env.DR_COMPOSE_KEEP_LOGS) {
        const logs = await compose(['logs', '--no-color']).catch((e) => e);

        console.log(String(logs.stdout ?? '').slice(-20_000));
      }
      await compose(['down', '-v', '--remove-orphans'], 300_000);
      // The images built for this project (<project>_<service>, or <project>-<service> with compose v2): kept under
      // one stable tag per service, so that the next run's build finds their layers in the cache, and untagged.
      const { stdout } = await run('docker', ['images', '--filter', `reference=${project}*`, '--format', '{{.Repository}}:{{.Tag}}']);
      for (const image of stdout.split('\n').filter(Boolean)) {
        const service = image.slice(project.length + 1).replace(/:.*$/, '');
        await run('docker', ['tag', image, `dr-compose-cache/${service}:latest`]);
        await run('docker', ['rmi', image]);
      }
    }

    console.log(`compose figures: ${JSON.stringify(figures)}`);
  });

  const digest = (database: string) =>
    psql(database, "SELECT count(*) || ':' || md5(string_agg(id || label || encode(payload, 'hex'), ',' ORDER BY id)) FROM items");
  const treeListing = (dir: string) =>
    sh('disaster-recovery', `cd ${dir} && find . -printf '%y %m %p\\n' | sort && find . -type f -exec sha256sum {} + | sort -k2`);

  it.each(['s3', 'azure', 'gcs'])('%s: a directory tree backed up there is restored identical', async (store) => {
    const started = Date.now();
    const backup = await api.backup({ engine: 'filesystem', source: { path: '/app/i18n' }, storageLocationId: locations[store] });
    expect({ status: backup.status, error: backup.error ?? null }).toEqual({ status: 'COMPLETED', error: null });
    const target = `/var/lib/dr/restores/tree-${store}`;
    const recovery = await api.restore(backup.id, { path: target });
    expect({ status: recovery.status, error: recovery.error ?? null }).toEqual({ status: 'COMPLETED', error: null });
    expect(await treeListing(target)).toBe(await treeListing('/app/i18n'));
    expect(await treeListing(target)).toContain('./en/errors.json');
    figures[`${store}TreeRoundTripMs`] = Date.now() - started;
  });

  it.each(['s3', 'azure', 'gcs'])('%s: a PostgreSQL database backed up there is restored into a new database, equal', async (store) => {
    const started = Date.now();
    const source = { url: 'postgresql://postgres@metadata-db:5432/sample', passwordSecret: 'env:DRS_PG_PASSWORD' };
    const backup = await api.backup({ engine: 'postgres', source, storageLocationId: locations[store] });
    expect({ status: backup.status, error: backup.error ?? null }).toEqual({ status: 'COMPLETED', error: null });
    const recovery = await api.restore(backup.id, {
      url: `postgresql://postgres@metadata-db:5432/sample_${store}`,
      create: true,
      passwordSecret: source.passwordSecret,
    });
    expect({ status: recovery.status, error: recovery.error ?? null }).toEqual({ status: 'COMPLETED', error: null });
    expect(await digest(`sample_${store}`)).toBe(await digest('sample'));
    expect((await digest('sample')).startsWith('5000:')).toBe(true);
    const verification = await api.call('POST', `/backups/${backup.id}/verify`, { mode: 'checksum', waitSeconds: 60 });
    expect({ ok: verification.ok, problems: verification.problems }).toEqual({ ok: true, problems: [] });
    figures[`${store}PostgresRoundTripMs`] = Date.now() - started;
  });

  it('the objects are really in each store (listed through the stand-ins, not the service)', async () => {
    // s3rver keeps an object `key` as the file `key._S3rver_object`
    const s3 = await sh('s3', "find /data/dr-backups -name 'manifest.json._S3rver_object' | wc -l");
    expect(Number(s3.trim())).toBeGreaterThanOrEqual(2);
    const gcs = (await fetch(`http://127.0.0.1:${env.DR_GCS_PORT}/storage/v1/b/dr-backups/o`).then((r) => r.json())) as { items: { name: string }[] };
    expect(gcs.items.filter((o: { name: string }) => o.name.endsWith('manifest.json')).length).toBeGreaterThanOrEqual(2);
    const azure = new BlobServiceClient(
      `http://127.0.0.1:${env.DR_AZURE_PORT}/${AZURITE_ACCOUNT}`,
      new StorageSharedKeyCredential(AZURITE_ACCOUNT, AZURITE_KEY),
    );
    const blobs: string[] = [];
    for await (const blob of azure.getContainerClient('dr-backups').listBlobsFlat()) blobs.push(blob.name);
    expect(blobs.filter((name) => name.endsWith('manifest.json')).length).toBeGreaterThanOrEqual(2);
  });
});
