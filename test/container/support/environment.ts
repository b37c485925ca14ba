/**
 * Set before any container test loads testcontainers (jest `setupFiles` of test/container/jest.config.js):
 * - TESTCONTAINERS_RYUK_DISABLED: the Ryuk reaper is an image (testcontainers/ryuk) pulled from Docker Hub, which
 *   no registry-less machine can do; every test removes its own containers, networks and compose projects instead.
 * - TESTCONTAINERS_HOST_OVERRIDE: the engine is local, so mapped ports are reached on localhost (without it
 *   testcontainers may pick the bridge gateway address).
 * A value already set by the caller is kept.
 */
process.env.TESTCONTAINERS_RYUK_DISABLED ??= 'true';
process.env.TESTCONTAINERS_HOST_OVERRIDE ??= 'localhost';
