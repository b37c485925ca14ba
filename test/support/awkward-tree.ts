import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { decodeFileName } from '../../src/engines/file-name-bytes';
import { TreePaths } from '../../src/engines/tree-paths';

/**
 * Bytes of the names {@link makeAwkwardTree} writes that are not valid UTF-8 (Latin-1 `résumés`, a lone 0xff...),
 * as JavaScript strings of one character per byte (latin1), for comparisons with what `find` prints.
 */
export const LATIN1_DIR = 'r\xe9sum\xe9s';

/** A directory component of 254 bytes; 16 of them and `leaf.txt` make a relative path of 4,088 bytes. */
export const LONG_COMPONENT = 'd'.repeat(254);

/**
 * Writes what a careless archiver loses into `root` (which exists), with bash and the standard tools, since Node
 * cannot pass a name that is not valid UTF-8 to a child process: names that are not valid UTF-8 (a Latin-1
 * directory with a subtree, a file with a 0xff byte, a symlink whose name and target are Latin-1), names with a
 * newline, a backslash, a leading `-`, names that look like tar options, a path of 4,088 bytes (16 directories of
 * 254 bytes: more than PATH_MAX once joined with `root`), a sparse file, a hard link, user extended attributes
 * (one binary), a file capability (`security.capability`, only when run as root: setting it needs CAP_SETFCAP),
 * POSIX ACLs (access and default), and mtimes
 * with nanoseconds on every entry.
 */
export function makeAwkwardTree(root: string): void {
  execFileSync('bash', ['-c', AWKWARD_TREE_SCRIPT, '_', root]);
}

const AWKWARD_TREE_SCRIPT = String.raw`
set -euo pipefail
cd "$1"
mkdir -p $'r\xe9sum\xe9s/sub'
printf 'curriculum' > $'r\xe9sum\xe9s/cv-\xff.txt'
printf 'lettre' > $'r\xe9sum\xe9s/sub/lettre.txt'
ln -s $'cible-\xe9' $'r\xe9sum\xe9s/lien-\xe9'
printf 'newline' > $'new\nline'
printf 'backslash' > 'back\slash'
printf 'dash' > '-rf'
printf 'option' > '--checkpoint=1'
printf 'exec' > '--checkpoint-action=exec=touch pwned'
printf 'utf8' > 'über-ß-日本.txt'
mkdir empty-dir
printf 'shared' > hard-a && ln hard-a hard-b
truncate -s 5M sparse.img && printf 'x' | dd of=sparse.img bs=1 seek=3000000 conv=notrunc status=none
printf 'x' > xattrs.txt
setfattr -n user.color -v blue xattrs.txt
setfattr -n user.binary -v 0x00ff7f0a xattrs.txt
if [ "$(id -u)" = 0 ]; then cp /bin/true cap-true && setcap cap_net_raw+ep cap-true; fi
mkdir acl-dir
printf 'a' > acl-dir/f
setfacl -m u:nobody:r acl-dir/f
setfacl -m u:nobody:rwx acl-dir
setfacl -d -m g:nogroup:rx acl-dir
d=$(printf 'd%.0s' {1..254})
( for i in $(seq 1 16); do mkdir "$d"; cd "$d"; done; printf 'leaf' > leaf.txt )
# nanosecond mtimes, different per entry, children first so directories keep theirs
find . -mindepth 1 -depth -exec bash -c 'n=0; for path; do n=$((n + 1)); touch -h -d "@1600000000.$((123456789 + n * 7919))" -- "$path"; done' _ {} +
`;

/** One entry of {@link treeFacts}. */
export interface EntryFacts {
  /** Path bytes, latin1 (one character per byte). */
  path: string;
  /** find's %y: f, d, l, ... */
  type: string;
  mode: string;
  size: string;
  /** find's %T@ (seconds with the nanoseconds); `-` for symlinks, whose mtime tar does not promise. */
  mtime: string;
  /** Symlink target bytes, latin1. */
  link: string;
  /** SHA-256 of a regular file's content. */
  sha256?: string;
}

/**
 * Everything {@link makeAwkwardTree} cares about of a tree, byte-exact: every entry below `root` (path bytes, type,
 * mode, size, mtime in ns, link target, content hash), and the extended attributes and ACLs `getfattr`/`getfacl`
 * print for each entry they can reach (all but the 4 KB deep ones). Sorted, so two trees compare with toEqual.
 */
export function treeFacts(root: string): { entries: EntryFacts[]; xattrs: string; acls: string } {
  const out = execFileSync('find', ['.', '-mindepth', '1', '-printf', '%P\\0%y\\0%m\\0%s\\0%T@\\0%l\\0'], { cwd: root, maxBuffer: 64 << 20 });
  const fields = splitNul(out);
  const entries: EntryFacts[] = [];
  const paths = new TreePaths(root);
  try {
    for (let i = 0; i + 6 <= fields.length; i += 6) {
      const [path, type, mode, size, mtime, link] = fields.slice(i, i + 6).map((b) => b.toString('latin1'));
      const entry: EntryFacts = { path, type, mode, size: type === 'd' ? '-' : size, mtime: type === 'l' ? '-' : mtime, link };
      if (type === 'f') {
        // the exact bytes, decoded as the service decodes names, reached even beyond PATH_MAX
        const decoded = decodeFileName(fields[i]);
        entry.sha256 = createHash('sha256')
          .update(readFileSync(paths.of(decoded)))
          .digest('hex');
      }
      entries.push(entry);
    }
  } finally {
    paths.close();
  }
  entries.sort((a, b) => (a.path < b.path ? -1 : a.path > b.path ? 1 : 0));
  const shell = (script: string) => execFileSync('bash', ['-c', script], { cwd: root, maxBuffer: 64 << 20 }).toString('latin1');
  // getfattr/getfacl print names escaped (octal), the same way for both trees; deep paths fail quietly on both
  const xattrs = shell(`find . -mindepth 1 -print0 | xargs -0 getfattr -h --absolute-names -d -m - -e hex 2>/dev/null || true`);
  const acls = shell(`find . -mindepth 1 ! -type l -print0 | xargs -0 getfacl -p 2>/dev/null || true`);
  return { entries, xattrs: sortBlocks(xattrs), acls: sortBlocks(acls) };
}

/** getfattr's and getfacl's output: blank-line separated blocks, sorted (find's order differs between trees). */
function sortBlocks(text: string): string {
  return text
    .split('\n\n')
    .map((b) => b.trim())
    .filter(Boolean)
    .sort()
    .join('\n\n');
}

function splitNul(buffer: Buffer): Buffer[] {
  const parts: Buffer[] = [];
  let start = 0;
  for (let nul = buffer.indexOf(0); nul >= 0; nul = buffer.indexOf(0, start)) {
    parts.push(buffer.subarray(start, nul));
    start = nul + 1;
  }
  return parts;
}

/** The named lines of `getfattr` output for one entry, e.g. to check that a capability came back. */
export function xattrBlock(facts: { xattrs: string }, name: string): string | undefined {
  return facts.xattrs.split('\n\n').find((b) => b.startsWith(`# file: ${name}\n`));
}

/** The bytes of a file read through TreePaths (a path of any length below `root`). */
export function readDeep(root: string, decodedPath: string): Buffer {
  const paths = new TreePaths(root);
  try {
    return readFileSync(paths.of(decodedPath));
  } finally {
    paths.close();
  }
}
