/** Name and version of this service, as written into manifests. */
export const SERVICE_NAME = 'disaster-recovery-service';
// eslint-disable-next-line @typescript-eslint/no-require-imports
export const SERVICE_VERSION: string = (require('../package.json') as { version: string }).version;
