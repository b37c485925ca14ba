import micromatch from 'micromatch';

/**
 * Decides whether an entry of a walked tree is selected by a filesystem source's `include`/`exclude` globs, the way
 * fast-glob selects them (`fg(include, { ignore: exclude, dot: true, onlyFiles: false })`, micromatch syntax): the
 * path matches an include pattern (all entries without any), matches no exclude pattern (a directory also as
 * `path/`), and lies below no directory that an exclude pattern matches (fast-glob does not descend into those); the
 * static base of an include pattern (`d1` of `d1/**`) is not selected by it, as fast-glob lists only what is below.
 * fast-glob reads directories as UTF-8 strings, so it cannot see a name that is not valid UTF-8; the filesystem
 * engine asks this function about those (decoded as in file-name-bytes.ts, each undecodable byte one character that
 * `?` and `*` match).
 * @returns `(path, isDirectory) => selected`, for relative `/`-separated paths.
 */
export function globSelector(include: string[] | undefined, exclude: string[] | undefined): (path: string, isDirectory: boolean) => boolean {
  const options = { dot: true };
  // fast-glob reads from a pattern's static base (`d1` of `d1/**`) and lists what is below it, not the base itself
  const includes = (include ?? []).map((pattern) => {
    const { base, isGlob } = micromatch.scan(pattern);
    const matches = micromatch.matcher(pattern, options);
    return (path: string) => !(isGlob && path.replace(/\/$/, '') === base) && matches(path);
  });
  const excludes = (exclude ?? []).map((pattern) => micromatch.matcher(pattern, options));
  const included = (path: string) => includes.length === 0 || includes.some((m) => m(path));
  const excluded = (path: string) => excludes.some((m) => m(path));
  return (path, isDirectory) => {
    if (!included(path) && !(isDirectory && included(`${path}/`))) return false;
    if (excluded(path) || (isDirectory && excluded(`${path}/`))) return false;
    for (let i = path.indexOf('/'); i > 0; i = path.indexOf('/', i + 1)) if (excluded(path.slice(0, i))) return false;
    return true;
  };
}
