#!/usr/bin/env node
/**
 * Generates `api-docs/openapi.yaml` from the code, without a database.
 *
 *   node scripts/generate-openapi.js            writes api-docs/openapi.yaml
 *   node scripts/generate-openapi.js --check    exits 1 with a diff when the committed file differs
 *   node scripts/generate-openapi.js --file F   writes (or with --check: compares with) F instead
 *
 * How: compiles `src/` with the TypeScript compiler API and `@nestjs/swagger`'s compiler plugin (the transformer
 * `nest build` runs; it adds the DTO property types, enums, optionality and doc comments as metadata) into
 * `dist-openapi/`, then builds the document from the AppModule created in Nest's preview mode (no provider is
 * instantiated: no database, storage or scheduler) — see src/openapi/openapi-document.ts.
 * The same compile is used whichever way this runs (npm script, CI, the jest drift test), so the output is the same.
 */
'use strict';
const { execFileSync } = require('node:child_process');
const { mkdtempSync, readFileSync, rmSync, writeFileSync } = require('node:fs');
const { tmpdir } = require('node:os');
const { join, resolve } = require('node:path');
const ts = require('typescript');
const { before: swaggerPlugin } = require('@nestjs/swagger/plugin');

const ROOT = resolve(__dirname, '..');
const OUT_DIR = join(ROOT, 'dist-openapi');
const COMMITTED = join(ROOT, 'api-docs', 'openapi.yaml');

/** Options of the swagger compiler plugin (https://docs.nestjs.com/openapi/cli-plugin). */
const PLUGIN_OPTIONS = {
  introspectComments: true,
  classValidatorShim: true,
  dtoFileNameSuffix: ['.dto.ts', '.entity.ts', 'backup-encryption.ts'],
  controllerFileNameSuffix: ['.controller.ts'],
};
/** Controller files that also declare their DTOs: their classes get the model visitor as well. */
const DTO_IN_CONTROLLER_OPTIONS = { ...PLUGIN_OPTIONS, dtoFileNameSuffix: ['.controller.ts'], controllerFileNameSuffix: [] };

/** The local name an `import * as x` / `import x = require()` / `const x = require()` statement binds. */
function openapiBindingOf(statement) {
  if (ts.isImportEqualsDeclaration(statement)) return statement.name.text;
  if (ts.isImportDeclaration(statement)) {
    const binding = statement.importClause?.namedBindings;
    return binding && ts.isNamespaceImport(binding) ? binding.name.text : undefined;
  }
  if (ts.isVariableStatement(statement) && statement.declarationList.declarations.length === 1) {
    const name = statement.declarationList.declarations[0].name;
    return ts.isIdentifier(name) ? name.text : undefined;
  }
  return undefined;
}

/** Both plugin passes add `import * as openapi from '@nestjs/swagger'`; keeps the first of such imports. */
function dedupeOpenapiImport(context) {
  return (sourceFile) => {
    let seen = false;
    const statements = sourceFile.statements.filter((statement) => {
      if (openapiBindingOf(statement) !== 'openapi') return true;
      if (seen) return false;
      seen = true;
      return true;
    });
    return statements.length === sourceFile.statements.length ? sourceFile : context.factory.updateSourceFile(sourceFile, statements);
  };
}

function compile() {
  const configPath = join(ROOT, 'tsconfig.build.json');
  const { config, error } = ts.readConfigFile(configPath, ts.sys.readFile);
  if (error) throw new Error(ts.flattenDiagnosticMessageText(error.messageText, '\n'));
  const parsed = ts.parseJsonConfigFileContent(config, ts.sys, ROOT, { outDir: OUT_DIR, sourceMap: false, noEmitOnError: true });
  const program = ts.createProgram(parsed.fileNames, parsed.options);
  rmSync(OUT_DIR, { recursive: true, force: true });
  const result = program.emit(undefined, undefined, undefined, false, {
    before: [swaggerPlugin(DTO_IN_CONTROLLER_OPTIONS, program), swaggerPlugin(PLUGIN_OPTIONS, program), dedupeOpenapiImport],
  });
  const diagnostics = ts.getPreEmitDiagnostics(program).concat(result.diagnostics);
  if (diagnostics.length > 0) {
    const host = { getCanonicalFileName: (f) => f, getCurrentDirectory: () => ROOT, getNewLine: () => '\n' };
    throw new Error(ts.formatDiagnostics(diagnostics, host));
  }
}

async function generate() {
  compile();
  const { buildOpenApiDocumentOffline, toYaml } = require(join(OUT_DIR, 'openapi', 'openapi-document.js'));
  return toYaml(await buildOpenApiDocumentOffline());
}

async function main(args) {
  const fileIndex = args.indexOf('--file');
  const target = fileIndex >= 0 ? resolve(args[fileIndex + 1]) : COMMITTED;
  const yaml = await generate();
  if (args.includes('--check')) {
    const fresh = join(mkdtempSync(join(tmpdir(), 'dr-openapi-')), 'openapi.yaml');
    writeFileSync(fresh, yaml);
    let committed = '';
    try {
      committed = readFileSync(target, 'utf8');
    } catch {
      /* missing: differs */
    }
    if (committed === yaml) {
      process.stdout.write(`openapi: ${target} is up to date\n`);
      return 0;
    }
    try {
      execFileSync('diff', ['-u', target, fresh], { stdio: 'inherit' });
    } catch {
      /* diff exits 1 on differences */
    }
    process.stderr.write(`openapi: ${target} differs from the code; run \`npm run openapi:generate\` and commit it\n`);
    return 1;
  }
  writeFileSync(target, yaml);
  process.stdout.write(`openapi: wrote ${target}\n`);
  return 0;
}

main(process.argv.slice(2)).then(
  (code) => process.exit(code),
  (error) => {
    process.stderr.write(`openapi: ${error instanceof Error ? error.stack ?? error.message : String(error)}\n`);
    process.exit(2);
  },
);
