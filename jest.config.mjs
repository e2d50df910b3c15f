/** Jest runs in native ESM mode (see package.json "test"), with ts-jest compiling TypeScript. */
export default {
  testEnvironment: 'node',
  roots: ['<rootDir>/test'],
  testMatch: ['**/*.spec.ts'],
  // Topology and fault tests start clusters and sentinels: `npm run test:faults` runs them.
  testPathIgnorePatterns: ['/node_modules/', '<rootDir>/test/faults/'],
  extensionsToTreatAsEsm: ['.ts'],
  // The sample imports the package by name; its test runs it against the sources.
  moduleNameMapper: {
    '^(\\.{1,2}/.*)\\.js$': '$1',
    '^nestjs-llm-rate-limiter$': '<rootDir>/lib/index.ts',
    '^nestjs-llm-rate-limiter/health$': '<rootDir>/lib/health.ts',
  },
  transform: {
    '^.+\\.ts$': ['ts-jest', { useESM: true, isolatedModules: true, diagnostics: false }],
  },
  globalSetup: '<rootDir>/test/support/global-setup.mjs',
  globalTeardown: '<rootDir>/test/support/global-teardown.mjs',
  testTimeout: 30000,
};
