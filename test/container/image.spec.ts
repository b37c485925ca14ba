import { execFile } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { promisify } from 'node:util';
import { GenericContainer, Network, StartedNetwork, StartedTestContainer, Wait } from 'testcontainers';
import { ServiceApi } from './support/api';
import { buildPostgresImage, buildServiceImage, describeWithDocker, inspectContainer, inspectImage } from './support/docker';
import { readmeImageVersions, reportedVersion, versionMatches } from './support/readme-versions';

/**
 * The service's image, built from this tree and run the way the README and k8s/ run it: as the image's own user
 * (no --user override), read-only root filesystem, a tmpfs on /tmp, the data directory on the image's volume,
 * reached only through its published port. Through it, from the outside: a filesystem backup and a PostgreSQL
 * backup, each restored and compared with its source. The database is a PostgreSQL 15 container (the stand-in
 * image of test/container/images/postgres) on a network of its own, with password authentication.
 * Nothing is mocked.
 */
class ServiceContainer extends GenericContainer {
  /** `docker run --read-only` (testcontainers has no builder method for it; HostConfig.ReadonlyRootfs is the API's). */
  withReadOnlyRootFilesystem(): this {
    this.hostConfig.ReadonlyRootfs = true;
    return this;
  }
}

const run = promisify(execFile);
const API_KEY = `dr-container-test-${randomBytes(12).toString('hex')}`;
const PG_PASSWORD = randomBytes(16).toString('hex');
/** The service's own uid in the image (user `node` of the Node base images). */
const SERVICE_UID = '1000';

describeWithDocker('the service image (testcontainers)', () => {
  let network: StartedNetwork;
  let db: StartedTestContainer;
  let service: StartedTestContainer;
  let api: ServiceApi;
  let image: string;
  const figures: Record<string, number> = {};

  /** Runs a shell command in a container as its configured user. @returns stdout; throws with the output on a non-zero exit */
  async function sh(container: StartedTestContainer, script: string): Promise<string> {
    const result = await container.exec(['sh', '-c', script]);
    if (result.exitCode !== 0) throw new Error(`exit ${result.exitCode}: ${script}\n${result.output}`);
    return result.stdout;
  }

  /** psql in the database container (as postgres over the local socket). */
  const psql = (database: string, sql: string) => sh(db, `psql -X -qAt -v ON_ERROR_STOP=1 -d ${database} -c "${sql}"`);

  beforeAll(async () => {
    const buildStart = Date.now();
    image = await buildServiceImage();
    figures.buildOrCacheHitMs = Date.now() - buildStart;
    figures.imageBytes = (await inspectImage(image)).Size;
    const postgresImage = await buildPostgresImage();

    network = await new Network().start();
    db = await new GenericContainer(postgresImage)
      .withNetwork(network)
      .withNetworkAliases('db')
      .withEnvironment({ POSTGRES_PASSWORD: PG_PASSWORD })
      .withWaitStrategy(Wait.forHealthCheck())
      .withStartupTimeout(120_000)
      .start();

    const runStart = Date.now();
    service = await new ServiceContainer(image)
      .withReadOnlyRootFilesystem()
      .withTmpFs({ '/tmp': 'rw,noexec,nosuid,size=256m' })
      .withNetwork(network)
      .withExposedPorts(8891)
      .withEnvironment({
        DR_ADMIN_API_KEY: API_KEY,
        DR_LOG_LEVEL: 'log',
        // DRS_: the prefix the secret-reference allow-list accepts by default
        DRS_PG_PASSWORD: PG_PASSWORD,
      })
      // Docker's own HEALTHCHECK of the image, nothing of ours: start() resolves when Docker reports it healthy
      // and throws when Docker reports it unhealthy or the start-up timeout passes.
      .withWaitStrategy(Wait.forHealthCheck())
      // the HEALTHCHECK's start period (120 s) and three failed probes 10 s apart, then some margin
      .withStartupTimeout(200_000)
      .start();
    figures.runToHealthyMs = Date.now() - runStart;
    api = new ServiceApi(`http://${service.getHost()}:${service.getMappedPort(8891)}`, API_KEY);

    const details = await inspectContainer(service.getId());
    const { stdout: logs } = await run('docker', ['logs', '--timestamps', service.getId()], { maxBuffer: 16 * 1024 * 1024 });
    const listening = logs.split('\n').find((line) => line.includes('disaster recovery service listening on'));
    if (listening) figures.startToListeningMs = Date.parse(listening.split(' ')[0]) - Date.parse(details.State.StartedAt);
  });

  afterAll(async () => {
    await service?.stop();
    await db?.stop();
    await network?.stop();

    console.log(`container figures: ${JSON.stringify(figures)}`);
  });

  it('Docker reports it healthy through the image HEALTHCHECK on the liveness probe', async () => {
    const details = await inspectContainer(service.getId());
    expect(details.Config.Healthcheck.Test).toEqual(['CMD', 'curl', '-fsS', '-o', '/dev/null', 'http://127.0.0.1:8891/actuator/health/liveness']);
    expect(details.State.Health.Status).toBe('healthy');
    const res = await fetch(`http://${service.getHost()}:${service.getMappedPort(8891)}/actuator/health/readiness`);
    expect(res.status).toBe(200);
  });

  it('runs as the non-root user the image declares, not root', async () => {
    expect((await inspectImage(image)).Config.User).toBe('node');
    expect((await sh(service, 'id -u')).trim()).toBe(SERVICE_UID);
    // PID 1 (tini) and the node process under it: the real and effective uids of every process in the container
    const uids = await sh(service, 'for s in /proc/[0-9]*/status; do awk \'/^Uid:/ {print $2, $3}\' "$s"; done');
    const all = new Set(uids.split(/\s+/).filter(Boolean));
    expect([...all]).toEqual([SERVICE_UID]);
  });

  it('has a read-only root filesystem; only /tmp and the data volume are writable; its code is owned by root', async () => {
    expect((await inspectContainer(service.getId())).HostConfig.ReadonlyRootfs).toBe(true);
    // /home/node belongs to the service's user: only the read-only mount refuses the write there
    for (const path of ['/probe', '/app/probe', '/etc/probe', '/home/node/probe']) {
      const result = await service.exec(['sh', '-c', `echo x >> ${path}`]);
      expect({ path, failed: result.exitCode !== 0, readOnly: /Read-only file system/.test(result.output) }).toEqual({ path, failed: true, readOnly: true });
    }
    await sh(service, 'echo x > /tmp/probe && rm /tmp/probe && echo x > /var/lib/dr/probe && rm /var/lib/dr/probe');
    // Defence in depth for a run without --read-only: nothing of the application belongs to the service's user.
    expect(await sh(service, 'find /app /usr/local -xdev -user node -print')).toBe('');
  });

  it('holds pg_dump, pg_restore, mariadb-dump, tar and zstd at the versions the README names', async () => {
    const named = readmeImageVersions();
    expect(named.map((n) => n.tool)).toEqual(expect.arrayContaining(['node', 'pg_dump', 'pg_restore', 'mariadb-dump', 'tar', 'zstd']));
    for (const { tool, version } of named) {
      const result = await service.exec([tool, '--version']);
      const reported = reportedVersion(result.output);
      expect({ tool, exitCode: result.exitCode, reported, matches: versionMatches(reported ?? '', version) }).toEqual({
        tool,
        exitCode: 0,
        reported,
        matches: true,
      });
    }
    // the engines use the client tools of DR_PG_BIN_DIR: the directory the README's version is in
    const env = await sh(service, 'echo "$DR_PG_BIN_DIR"; "$DR_PG_BIN_DIR/pg_dump" --version');
    expect(env).toMatch(/^\/usr\/lib\/postgresql\/\d+\/bin\npg_dump \(PostgreSQL\) /);
  });

  it('backs up a directory tree through the API and restores it identical (contents, modes, symlink)', async () => {
    const source = '/var/lib/dr/source-tree';
    await sh(
      service,
      `mkdir -p ${source}/nested/deeper && head -c 3000000 /dev/urandom > ${source}/nested/random.bin && ` +
        `printf 'hello\\n' > ${source}/hello.txt && chmod 0640 ${source}/hello.txt && printf '#!/bin/sh\\n' > ${source}/nested/run.sh && ` +
        `chmod 0750 ${source}/nested/run.sh && ln -s ../hello.txt ${source}/nested/link && cp -r /app/i18n ${source}/nested/deeper/`,
    );
    const backup = await api.backup({ engine: 'filesystem', source: { path: source } });
    expect({ status: backup.status, error: backup.error ?? null }).toEqual({ status: 'COMPLETED', error: null });

    const target = `/var/lib/dr/restores/tree-${randomBytes(4).toString('hex')}`;
    const recovery = await api.restore(backup.id, { path: target });
    expect({ status: recovery.status, error: recovery.error ?? null }).toEqual({ status: 'COMPLETED', error: null });

    const listing = (dir: string) => sh(service, `cd ${dir} && find . -printf '%y %m %p %l\\n' | sort && find . -type f -exec sha256sum {} + | sort -k2`);
    const [before, after] = [await listing(source), await listing(target)];
    expect(after).toBe(before);
    expect(before).toMatch(/l 777 \.\/nested\/link \.\.\/hello\.txt/);
    expect(before).toMatch(/f 640 \.\/hello\.txt/);
  });

  it('backs up a PostgreSQL database over the network with a secret reference and restores it into a new one', async () => {
    await psql('postgres', 'CREATE DATABASE orders');
    await psql(
      'orders',
      'CREATE TABLE orders (id int PRIMARY KEY, customer text NOT NULL, total numeric(12,2), placed timestamptz DEFAULT now()); ' +
        "INSERT INTO orders (id, customer, total) SELECT g, 'customer ' || g, g * 1.25 FROM generate_series(1, 20000) g; " +
        'CREATE INDEX orders_customer ON orders (customer)',
    );
    const digest = (database: string) =>
      psql(database, "SELECT count(*) || ':' || md5(string_agg(id || customer || total || placed, ',' ORDER BY id)) FROM orders");

    const backup = await api.backup({ engine: 'postgres', source: { url: 'postgresql://postgres@db:5432/orders', passwordSecret: 'env:DRS_PG_PASSWORD' } });
    expect({ status: backup.status, error: backup.error ?? null }).toEqual({ status: 'COMPLETED', error: null });

    const recovery = await api.restore(backup.id, {
      url: 'postgresql://postgres@db:5432/orders_restored',
      create: true,
      passwordSecret: 'env:DRS_PG_PASSWORD',
    });
    expect({ status: recovery.status, error: recovery.error ?? null }).toEqual({ status: 'COMPLETED', error: null });
    expect(await digest('orders_restored')).toBe(await digest('orders'));
    expect((await digest('orders')).startsWith('20000:')).toBe(true);
    expect(await psql('orders_restored', "SELECT indexname FROM pg_indexes WHERE tablename = 'orders' ORDER BY 1")).toBe('orders_customer\norders_pkey\n');

    const verification = await api.call('POST', `/backups/${backup.id}/verify`, { mode: 'checksum', waitSeconds: 60 });
    expect({ ok: verification.ok, problems: verification.problems }).toEqual({ ok: true, problems: [] });
  });

  it('never shows the database password or the API key in its logs', async () => {
    const { stdout, stderr } = await run('docker', ['logs', service.getId()], { maxBuffer: 64 * 1024 * 1024 });
    expect(stdout + stderr).not.toContain(PG_PASSWORD);
    expect(stdout + stderr).not.toContain(API_KEY);
  });
});
