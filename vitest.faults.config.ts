import { defineConfig } from 'vitest/config';

/**
 * `npm run test:faults`: the fault suite (test/faults), real processes against the real
 * PostgreSQL and RabbitMQ. One file at a time: scenarios restart the servers and measure recovery,
 * so they must not share the machine with each other.
 */
export default defineConfig({
  test: {
    include: ['test/faults/**/*.faults.ts'],
    globalSetup: ['test/faults/globalSetup.ts'],
    fileParallelism: false,
    testTimeout: 300_000,
    hookTimeout: 120_000,
  },
});
