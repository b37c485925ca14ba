// The container tests (npm run test:container): the project's jest settings, these files only, one at a time.
// They need a Docker engine; see test/container/support/docker.ts for how they skip (or fail in CI) without one.
const base = require('../../package.json').jest;

module.exports = {
  ...base,
  rootDir: '../..',
  roots: ['<rootDir>/test/container'],
  testPathIgnorePatterns: ['/node_modules/'],
  setupFiles: ['<rootDir>/test/container/support/environment.ts'],
  // An image build from a cold cache (npm ci and a native addon inside Docker) takes minutes on 2 cores.
  testTimeout: 900_000,
};
