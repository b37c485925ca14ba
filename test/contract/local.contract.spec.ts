import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { LocalStorageDriver } from '../../src/storage/drivers/local.driver';
import { describeStorageDriverContract } from './storage-driver-contract';

/** The local/NFS driver on a real directory (no server, so no outage tests). */
describeStorageDriverContract('local (real directory)', {
  create: async () => new LocalStorageDriver(mkdtempSync(join(tmpdir(), 'dr-contract-local-'))),
});
