import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { ROOT } from './docker';

/** One tool the README says is in the image, at a version (`15` matches 15.x, `1.34` matches 1.34 or 1.34.x). */
export interface NamedVersion {
  tool: string;
  version: string;
}

/**
 * The README's table of what the image holds: the rows between the line `<!-- image-versions -->` and the end of
 * that table, `| \`tool\`, \`tool\` | version | source |`. Every backquoted name in the first cell is one tool.
 * @throws when the marker or the rows are missing (the README and this test must not drift apart silently)
 */
export function readmeImageVersions(): NamedVersion[] {
  const readme = readFileSync(join(ROOT, 'README.md'), 'utf8');
  const start = readme.indexOf('<!-- image-versions -->');
  if (start < 0) throw new Error('README.md has no <!-- image-versions --> table');
  const rows = readme
    .slice(start)
    .split('\n')
    .slice(1)
    .filter((line, i, all) => all.slice(0, i + 1).every((l) => l.startsWith('|')))
    .slice(2); // header and separator
  const named = rows.flatMap((row) => {
    const [tools, version] = row
      .split('|')
      .slice(1, 3)
      .map((cell) => cell.trim());
    return [...tools.matchAll(/`([^`]+)`/g)].map((m) => ({ tool: m[1], version }));
  });
  if (named.length === 0) throw new Error('README.md image-versions table has no rows');
  return named;
}

/**
 * The version a tool prints for `--version`: after "Distrib " (the MariaDB clients print their own client version
 * first), else the first dotted number (`pg_dump (PostgreSQL) 15.14 (Debian ...)`, `tar (GNU tar) 1.34`,
 * `*** Zstandard CLI (64-bit) v1.5.4 ...`, `v22.23.5`).
 */
export function reportedVersion(output: string): string | undefined {
  return /Distrib (\d+(?:\.\d+)+)/.exec(output)?.[1] ?? /(\d+(?:\.\d+)+)/.exec(output)?.[1];
}

/** Whether `reported` is `named` or a later release of it (`15` ⊇ `15.14`, `1.34` ⊇ `1.34`). */
export function versionMatches(reported: string, named: string): boolean {
  return reported === named || reported.startsWith(`${named}.`);
}
