import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { dirname, join, relative, resolve } from 'node:path';

const ROOT = resolve(__dirname, '..', '..');

/** The docs a clone of the repository has: README, docs/, bench/README.md, k8s and the scripts' comments. */
function docs(): string[] {
  const files = ['README.md', 'bench/README.md', ...readdirSync(join(ROOT, 'docs')).map((f) => `docs/${f}`)];
  const scripts = (dir: string): string[] =>
    readdirSync(join(ROOT, dir), { withFileTypes: true }).flatMap((e) =>
      e.isDirectory() ? scripts(`${dir}/${e.name}`) : e.name.endsWith('.sh') ? [`${dir}/${e.name}`] : [],
    );
  return [...files, ...scripts('scripts')];
}

/** A user reads the docs in a fresh clone: nothing may point at files the clone does not have. */
describe('the docs stand on their own', () => {
  it.each(docs())('%s names no file outside the repository', (file) => {
    const text = readFileSync(join(ROOT, file), 'utf8');
    expect(text).not.toMatch(/\.\.\/shared|shared\/seeds|\/work\//);
    // every relative markdown link resolves to a file of the repository
    for (const [, target] of text.matchAll(/\]\(([^)#\s]+)(?:#[^)]*)?\)/g)) {
      if (/^[a-z]+:/i.test(target)) continue; // http(s), mailto
      const path = resolve(dirname(join(ROOT, file)), target);
      expect({ file, target, inside: !relative(ROOT, path).startsWith('..'), exists: existsSync(path) }).toEqual({ file, target, inside: true, exists: true });
    }
  });
});
