import { defineConfig } from 'vitest/config';

// Projects: `unit` holds the fast tiers (unit, volume, shell, image); `boot` boots a kernel in QEMU
// and runs on its own (`npm run test:boot`); `hw` runs only where a real Zymkey is present.
export default defineConfig({
  test: {
    globalSetup: ['test/helpers/global-setup.ts', 'test/fuzz/summary.ts', 'test/hints/summary.ts'],
    projects: [
      {
        extends: true,
        test: {
          name: 'unit',
          include: ['test/**/*.test.ts'],
          exclude: ['test/boot/**', 'test/hw/**'],
          testTimeout: 60_000,
          hookTimeout: 120_000,
        },
      },
      {
        extends: true,
        test: {
          name: 'boot',
          include: ['test/boot/**/*.test.ts'],
          testTimeout: 600_000,
          hookTimeout: 900_000,
          fileParallelism: false,
        },
      },
      {
        extends: true,
        test: { name: 'hw', include: ['test/hw/**/*.test.ts'], testTimeout: 120_000 },
      },
    ],
  },
});
