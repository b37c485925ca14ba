import { readdir, rm } from 'node:fs/promises';
import { join } from 'node:path';

/**
 * What jobs leave in the scratch directory, named after the job's id (a UUID): a backup's spooled file index
 * (`<id>.index.jsonl`) and tree-scan spools (`<id>.scan.*`), a restore's dump (`<id>.pgdump`) or proven copy of the
 * stored object (`<id>.stored`), a deep verification's scratch tree (`verify-<id>`).
 */
const SCRATCH_NAME = /^(?:verify-)?([0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12})(?:\..+)?$/;

/**
 * Removes the scratch files and folders of jobs that have ended: every entry of `scratchDir` named after a job id
 * (see {@link SCRATCH_NAME}) for which `ended(id)` says so. Entries of jobs `ended` does not know (another kind of
 * job's, or not a job's) stay.
 * @returns the names removed.
 */
export async function sweepScratch(scratchDir: string, ended: (id: string) => Promise<boolean>): Promise<string[]> {
  const names = await readdir(scratchDir).catch((error: NodeJS.ErrnoException) => {
    if (error.code === 'ENOENT') return [] as string[];
    throw error;
  });
  const removed: string[] = [];
  for (const name of names.sort()) {
    const id = SCRATCH_NAME.exec(name)?.[1];
    if (!id || !(await ended(id))) continue;
    await rm(join(scratchDir, name), { recursive: true, force: true });
    removed.push(name);
  }
  return removed;
}
