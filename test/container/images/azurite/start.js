'use strict';
/**
 * Azurite's blob service (`azurite-blob`, from the npm package of the same code as Microsoft's image) on
 * 0.0.0.0:10000 with its data in /data, and the blob containers named in AZURITE_CONTAINERS (comma-separated)
 * created once it answers, with Azurite's well-known development account (devstoreaccount1; its key is public).
 * Prints `ready` when the containers exist; exits with Azurite's status; SIGTERM/SIGINT are passed on to it.
 */
const { spawn } = require('node:child_process');
const { BlobServiceClient, StorageSharedKeyCredential } = require('@azure/storage-blob');

const ACCOUNT = 'devstoreaccount1';
const KEY = 'Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw==';
const containers = (process.env.AZURITE_CONTAINERS || '').split(',').map((s) => s.trim()).filter(Boolean);

const azurite = spawn(
  process.execPath,
  [require.resolve('azurite/dist/src/blob/main.js'), '--blobHost', '0.0.0.0', '--blobPort', '10000', '--location', '/data', '--loose', '--skipApiVersionCheck'],
  { stdio: 'inherit' },
);
for (const signal of ['SIGTERM', 'SIGINT']) process.on(signal, () => azurite.kill(signal));
azurite.on('exit', (code, signal) => process.exit(code ?? (signal ? 1 : 0)));

async function createContainers() {
  const service = new BlobServiceClient(`http://127.0.0.1:10000/${ACCOUNT}`, new StorageSharedKeyCredential(ACCOUNT, KEY));
  for (let attempt = 1; ; attempt++) {
    try {
      for (const name of containers) await service.getContainerClient(name).createIfNotExists();
      return;
    } catch (error) {
      if (attempt >= 60) throw error;
      await new Promise((resolve) => setTimeout(resolve, 500));
    }
  }
}

createContainers().then(
  () => console.log('ready'),
  (error) => {
    console.error(`azurite stand-in: could not create the containers: ${error.message}`);
    azurite.kill('SIGTERM');
    process.exitCode = 1;
  },
);
