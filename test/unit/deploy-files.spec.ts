import { spawnSync } from 'node:child_process';
import { mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ConfigMap, PersistentVolumeClaim, Secret, Service } from 'kubernetes-models/v1';
import { Deployment } from 'kubernetes-models/apps/v1';
import { CronJob } from 'kubernetes-models/batch/v1';
import { parseAllDocuments } from 'yaml';
import { AppConfig } from '../../src/config/app-config';

/**
 * The deployment files, checked with real validators that run without Docker or a cluster:
 * - k8s/*.yaml against the Kubernetes OpenAPI JSON schemas shipped by `kubernetes-models` (ajv; a model's
 *   `validate()` throws on a wrong type, an unknown enum value or a missing required field);
 * - docker-compose.yml with `dclint` (the compose-spec JSON schema plus its lint rules);
 * - Dockerfile with `dockerfile-utils lint` (the Dockerfile linter of the VS Code Docker extension);
 * - `kubectl kustomize k8s/` (offline: what `kubectl apply -k k8s/` would send), each rendered object validated too.
 * Building and running the image and the compose stack is test/container/ (npm run test:container, needs Docker).
 * What no test here can check: admission by a real API server (no cluster runs here): unknown field names (the
 * schemas allow extra properties), storage classes, image pulls, quotas, admission policies.
 */
const ROOT = join(__dirname, '..', '..');
const KUBECTL = spawnSync('kubectl', ['version', '--client'], { encoding: 'utf8' });
const K8S = join(ROOT, 'k8s');
const BIN = join(ROOT, 'node_modules', '.bin');

type Model = { validate(): void };
const MODELS: Record<string, new (data: any) => Model> = {
  'v1/ConfigMap': ConfigMap,
  'v1/Secret': Secret,
  'v1/Service': Service,
  'v1/PersistentVolumeClaim': PersistentVolumeClaim,
  'apps/v1/Deployment': Deployment,
  'batch/v1/CronJob': CronJob,
};

/** Every Kubernetes object of k8s/ (kustomization.yaml is kustomize's own file, not an API object). */
function manifests(): { file: string; object: any }[] {
  return readdirSync(K8S)
    .filter((f) => f.endsWith('.yaml') && f !== 'kustomization.yaml')
    .flatMap((file) =>
      parseAllDocuments(readFileSync(join(K8S, file), 'utf8')).map((doc) => {
        expect(doc.errors).toEqual([]);
        return { file, object: doc.toJS() };
      }),
    );
}

/** Validates one object against its schema. @throws the validator's error naming the bad path */
function validate(object: any): void {
  const Model = MODELS[`${object.apiVersion}/${object.kind}`];
  if (!Model) throw new Error(`no schema for ${object.apiVersion} ${object.kind}`);
  new Model(object).validate();
}

function podSpecs(): { name: string; spec: any }[] {
  return manifests().flatMap(({ object }) => {
    if (object.kind === 'Deployment') return [{ name: object.metadata.name, spec: object.spec.template.spec }];
    if (object.kind === 'CronJob') return [{ name: object.metadata.name, spec: object.spec.jobTemplate.spec.template.spec }];
    return [];
  });
}

describe('k8s manifests', () => {
  it('every object validates against the Kubernetes schema', () => {
    const all = manifests();
    expect(all.map((m) => m.object.kind).sort()).toEqual(['ConfigMap', 'CronJob', 'Deployment', 'PersistentVolumeClaim', 'Secret', 'Secret', 'Service']);
    for (const { file, object } of all) {
      expect(() => validate(object)).not.toThrow();
      expect({ file, name: object.metadata?.name }).toEqual({ file, name: expect.stringMatching(/^disaster-recovery/) });
    }
  });

  it('the validator rejects what a cluster would reject', () => {
    const deployment = manifests().find((m) => m.object.kind === 'Deployment')!.object;
    expect(() => validate({ ...deployment, spec: { ...deployment.spec, replicas: 'one' } })).toThrow(/replicas/);
    const container = deployment.spec.template.spec.containers[0];
    const broken = structuredClone(deployment);
    broken.spec.template.spec.containers[0] = { ...container, livenessProbe: { httpGet: { path: '/actuator/health/liveness' } } };
    expect(() => validate(broken)).toThrow(/port/);
    const cronJob = manifests().find((m) => m.object.kind === 'CronJob')!.object;
    const noSchedule = structuredClone(cronJob);
    delete noSchedule.spec.schedule;
    expect(() => validate(noSchedule)).toThrow(/schedule/);
  });

  it('pods run as non-root on a read-only root filesystem, with resources; the service has probes on the actuator', () => {
    const pods = podSpecs();
    expect(pods.map((p) => p.name).sort()).toEqual(['disaster-recovery', 'disaster-recovery-integrity-check']);
    for (const { spec } of pods) {
      expect(spec.securityContext.runAsNonRoot).toBe(true);
      expect(spec.securityContext.runAsUser).toBeGreaterThan(0);
      expect(spec.automountServiceAccountToken).toBe(false);
      for (const c of spec.containers) {
        expect(c.securityContext).toMatchObject({ readOnlyRootFilesystem: true, allowPrivilegeEscalation: false, capabilities: { drop: ['ALL'] } });
        expect(c.resources.requests).toEqual({ cpu: expect.any(String), memory: expect.any(String) });
        expect(c.resources.limits.memory).toEqual(expect.any(String));
        expect(c.volumeMounts.map((m: { mountPath: string }) => m.mountPath)).toContain('/tmp');
      }
    }
    const service = pods.find((p) => p.name === 'disaster-recovery')!.spec.containers[0];
    expect(service.livenessProbe.httpGet.path).toBe('/actuator/health/liveness');
    expect(service.readinessProbe.httpGet.path).toBe('/actuator/health/readiness');
    expect(service.volumeMounts).toContainEqual({ name: 'data', mountPath: '/var/lib/dr' });
    const config = manifests().find((m) => m.object.kind === 'ConfigMap')!.object;
    expect(config.data.DR_DATA_DIR).toBe('/var/lib/dr');
    // the files requests may name are a mount of their own, never the one holding the service's signing key
    const mounts = Object.fromEntries(service.volumeMounts.map((m: { name: string; mountPath: string }) => [m.mountPath, m.name]));
    expect(mounts[config.data.DR_SECRET_DIRS]).toBe('source-secrets');
    expect(mounts['/run/secrets/dr']).toBe('secrets');
    // and the ConfigMap is a configuration the service accepts (AppConfig refuses, e.g., DR_SECRET_DIRS=/var/lib/dr)
    expect(AppConfig.fromEnv(config.data, '/').secretPolicy.dirs).toEqual(['/run/secrets/dr-sources']);
  });

  it('the secret template holds placeholders only and is not applied by the kustomization', () => {
    for (const secret of manifests()
      .filter((m) => m.object.kind === 'Secret')
      .map((m) => m.object)) {
      for (const [key, value] of Object.entries<string>(secret.stringData)) {
        expect({ key, placeholder: value.includes('REPLACE_ME') }).toEqual({ key, placeholder: true });
      }
    }
    const kustomization = parseAllDocuments(readFileSync(join(K8S, 'kustomization.yaml'), 'utf8'))[0].toJS();
    expect(kustomization.resources).not.toContain('secret.template.yaml');
    const listed = readdirSync(K8S).filter((f) => f.endsWith('.yaml') && f !== 'kustomization.yaml' && f !== 'secret.template.yaml');
    expect([...kustomization.resources].sort()).toEqual(listed.sort());
  });

  // `kubectl apply --dry-run=client` still asks an API server (discovery, OpenAPI): with none here, the offline part
  // of what it does is rendering the kustomization, which `kubectl kustomize` does without a cluster.
  const withKubectl = KUBECTL.status === 0 || process.env.CI === 'true' ? it : it.skip;
  withKubectl('kubectl kustomize k8s/ renders every resource (what apply -k sends), and each rendered object validates', () => {
    const rendered = spawnSync('kubectl', ['kustomize', K8S], { encoding: 'utf8' });
    expect(rendered.stderr).toBe('');
    expect(rendered.status).toBe(0);
    const objects = parseAllDocuments(rendered.stdout).map((doc) => doc.toJS());
    expect(objects.map((o) => o.kind).sort()).toEqual(['ConfigMap', 'CronJob', 'Deployment', 'PersistentVolumeClaim', 'Service']);
    for (const object of objects) expect(() => validate(object)).not.toThrow();
  });

  withKubectl('kubectl kustomize fails on a kustomization naming a missing resource (the check is not a no-op)', () => {
    const dir = mkdtempSync(join(tmpdir(), 'kustomize-'));
    writeFileSync(join(dir, 'kustomization.yaml'), 'resources:\n  - missing.yaml\n');
    const rendered = spawnSync('kubectl', ['kustomize', dir], { encoding: 'utf8' });
    rmSync(dir, { recursive: true });
    expect(rendered.status).not.toBe(0);
    expect(rendered.stderr).toContain('missing.yaml');
  });

  it('the cron job runs a script that exists in scripts/ and is copied into the image', () => {
    const cronJob = manifests().find((m) => m.object.kind === 'CronJob')!.object;
    const [command] = cronJob.spec.jobTemplate.spec.template.spec.containers[0].command;
    expect(command).toMatch(/^\/app\/scripts\//);
    expect(() => readFileSync(join(ROOT, command.replace('/app/', '')))).not.toThrow();
    expect(readFileSync(join(ROOT, 'Dockerfile'), 'utf8')).toMatch(/^COPY scripts \.\/scripts$/m);
  });
});

describe('Dockerfile', () => {
  const dockerfile = readFileSync(join(ROOT, 'Dockerfile'), 'utf8');

  it('passes dockerfile-utils lint', () => {
    const result = spawnSync(join(BIN, 'dockerfile-utils'), ['lint', join(ROOT, 'Dockerfile')], { encoding: 'utf8' });
    expect(result.stdout + result.stderr).toBe('');
    expect(result.status).toBe(0);
  });

  it('is multi-stage, non-root, with the client tools, tini, a liveness HEALTHCHECK and the launch flag', () => {
    expect(dockerfile.match(/^FROM /gm)).toHaveLength(2);
    expect(dockerfile).toMatch(/^USER node$/m);
    for (const tool of ['postgresql-client-', 'mariadb-client', 'tar', 'zstd', 'tini', 'jq', 'curl']) expect(dockerfile).toContain(tool);
    expect(dockerfile).toMatch(/^HEALTHCHECK [^\n]*\\\n[^\n]*\/actuator\/health\/liveness/m);
    expect(dockerfile).toMatch(/^ENTRYPOINT \["\/usr\/bin\/tini", "--"\]$/m);
    expect(dockerfile).toMatch(/^CMD \["node", "--no-incremental-marking", "dist\/main.js"\]$/m);
  });
});

describe('docker-compose.yml', () => {
  it('passes dclint (compose-spec schema and lint rules) with no error or warning', () => {
    const result = spawnSync(join(BIN, 'dclint'), ['--color', 'false', '--max-warnings', '0', join(ROOT, 'docker-compose.yml')], { encoding: 'utf8' });
    expect((result.stdout + result.stderr).trim()).toBe(''); // dclint prints one empty line when clean
    expect(result.status).toBe(0);
  });

  it('dclint rejects a file that breaks the compose schema (the check is not a no-op)', () => {
    const dir = mkdtempSync(join(tmpdir(), 'dclint-'));
    const bad = join(dir, 'docker-compose.yml');
    writeFileSync(bad, 'services:\n  a:\n    image: x\n    bogus_key: 1\n');
    const result = spawnSync(join(BIN, 'dclint'), ['--color', 'false', bad], { encoding: 'utf8' });
    rmSync(dir, { recursive: true });
    expect(result.status).not.toBe(0);
    expect(result.stdout).toContain('invalid-schema');
  });

  it('has the service, PostgreSQL and the storage stand-ins, every one built from this repository', () => {
    const compose = parseAllDocuments(readFileSync(join(ROOT, 'docker-compose.yml'), 'utf8'))[0].toJS();
    expect(Object.keys(compose.services).sort()).toEqual(['azurite', 'disaster-recovery', 'gcs', 'metadata-db', 's3']);
    for (const [name, service] of Object.entries<any>(compose.services)) {
      expect({ name, image: service.image, build: typeof service.build }).toEqual({ name, image: undefined, build: 'object' });
      for (const port of service.ports ?? []) expect({ name, port }).toEqual({ name, port: expect.stringMatching(/^127\.0\.0\.1:/) });
    }
    expect(compose.services['disaster-recovery'].read_only).toBe(true);
  });
});
