/**
 * The layer rules of src/ (docs/architecture.md), checked by `npm run lint:deps` in CI (.ci/run):
 * - no cycles between files;
 * - the lower layers (engines, pipeline, storage drivers, jobs) import no feature module;
 * - Backup never imports Recovery (Recovery builds on Backup);
 * - a feature's entities (`*.entity.ts`) are touched by another feature only as types: their repositories (the
 *   TypeORM `Repository<Entity>` a module injects) and queries stay in the owning feature, which others call.
 * Draw the graph: npx depcruise --output-type dot src | dot -T svg > deps.svg
 * @type {import('dependency-cruiser').IConfiguration}
 */
const FEATURES = '^src/(audit|auth|backup|cli|health|metrics|recovery|validation|wal|storage/[^/]+$|storage/dto/)';

module.exports = {
  forbidden: [
    {
      name: 'no-circular',
      severity: 'error',
      comment: 'A cycle ties its files into one unit: split out what both sides need (a type, a constant) instead.',
      from: { path: '^src/' },
      to: { circular: true },
    },
    {
      name: 'lower-layers-import-no-feature',
      severity: 'error',
      comment:
        'Engines, the artifact pipeline, the storage drivers and the job lifecycle serve every feature: they must not ' +
        'import one (pass what they need as arguments, or emit an event).',
      from: { path: '^src/(engines|pipeline|storage/drivers|jobs)/' },
      to: { path: FEATURES },
    },
    {
      name: 'backup-never-imports-recovery',
      severity: 'error',
      comment: 'Recovery builds on Backup; the reverse would tie a backup to restore code.',
      from: { path: '^src/backup/' },
      to: { path: '^src/recovery/' },
    },
    {
      name: 'entities-only-through-their-feature',
      severity: 'error',
      comment:
        "A feature's entities are its table: another feature calls its repository or service and may use the entity " +
        'only as a type (import type), never to inject a Repository<Entity> or query it.',
      from: { path: '^src/([^/]+)/', pathNot: '^src/database/' },
      to: { path: '^src/([^/]+)/.*\\.entity\\.ts$', pathNot: '^src/$1/', dependencyTypesNot: ['type-only'] },
    },
  ],
  options: {
    doNotFollow: { path: 'node_modules' },
    includeOnly: '^src/',
    tsPreCompilationDeps: true,
    tsConfig: { fileName: 'tsconfig.json' },
    exclude: { path: '^src/database/migrations/' },
  },
};
