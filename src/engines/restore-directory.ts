import { readdir, realpath } from 'node:fs/promises';
import { dirname, isAbsolute, resolve, sep } from 'node:path';
import { Injectable } from '@nestjs/common';
import { AppConfig } from '../config/app-config';
import { DrError } from '../errors/dr-error';

/**
 * Where restores may write: only below the configured `DR_RESTORE_ROOTS`. Symlinks are resolved first, so a
 * link inside a root that points outside it is refused too.
 */
@Injectable()
export class RestoreDirectoryPolicy {
  constructor(private readonly config: AppConfig) {}

  /**
   * @returns the real, absolute target path.
   * @throws DrError VALIDATION_FAILED (not absolute, a file or below one, a symlink loop), TARGET_NOT_ALLOWED (outside the roots),
   *   TARGET_NOT_EMPTY (holds entries and `overwrite` is false).
   */
  async check(path: string, overwrite: boolean, field = 'target.path'): Promise<string> {
    if (!isAbsolute(path)) throw DrError.validation([{ field, message: `${field} must be an absolute path` }]);
    const real = await this.resolve(path, field);
    const roots = await Promise.all(this.config.restoreRoots.map((r) => realpathOfNearestAncestor(r)));
    if (!roots.some((root) => real === root || real.startsWith(root.endsWith(sep) ? root : root + sep))) {
      throw new DrError('TARGET_NOT_ALLOWED', `${field} is outside the allowed restore roots (DR_RESTORE_ROOTS)`, [
        { field, message: 'outside the allowed restore roots' },
      ]);
    }
    const entries = await readdir(real).catch((error: NodeJS.ErrnoException) => {
      if (error.code === 'ENOENT') return [];
      if (error.code === 'ENOTDIR') throw DrError.validation([{ field, message: `${field} is not a directory` }]);
      throw error;
    });
    if (entries.length > 0 && !overwrite) {
      throw new DrError('TARGET_NOT_EMPTY', `${field} is not empty; set "overwrite": true to restore over it`, [{ field, message: 'directory is not empty' }]);
    }
    return real;
  }

  /**
   * The real path `path` names (symlinks of its existing part resolved), as {@link check} compares it.
   * @throws DrError VALIDATION_FAILED naming `field` when the path passes through a symlink loop.
   */
  async resolve(path: string, field = 'target.path'): Promise<string> {
    return realpathOfNearestAncestor(resolve(path)).catch((error: NodeJS.ErrnoException) => {
      if (error.code === 'ELOOP') throw DrError.validation([{ field, message: `${field} passes through a symlink loop` }]);
      throw error;
    });
  }

  /** Whether `realPath` (as {@link check} returns it) is one of the restore roots itself. */
  async isRoot(realPath: string): Promise<boolean> {
    const roots = await Promise.all(this.config.restoreRoots.map((r) => realpathOfNearestAncestor(r)));
    return roots.includes(realPath);
  }
}

/**
 * realpath() of `path`, or of its nearest existing ancestor joined with the missing rest. A path below a file
 * (ENOTDIR) resolves through the file, so the caller's directory check names it.
 * @throws the ErrnoException of realpath other than ENOENT/ENOTDIR (ELOOP for a symlink loop, EACCES).
 */
async function realpathOfNearestAncestor(path: string): Promise<string> {
  let current = path;
  const missing: string[] = [];
  for (;;) {
    try {
      const real = await realpath(current);
      return missing.length ? resolve(real, ...missing.reverse()) : real;
    } catch (error) {
      const code = (error as NodeJS.ErrnoException).code;
      if (code !== 'ENOENT' && code !== 'ENOTDIR') throw error;
      const parent = dirname(current);
      if (parent === current) return path;
      missing.push(current.slice(parent.length).replace(/^\//, ''));
      current = parent;
    }
  }
}
