/**
 * Three projects, chosen with --selectProjects (npm run test:unit, test:real, test:fleet):
 * - unit: no program but node runs;
 * - real: the real programs (ZooKeeper, HAProxy, cloud-init, terraform, ...) on this machine;
 * - fleet: real Debian hosts booted on a bridge of the run's own, reached by terraform (root).
 */
const shared = {
  testEnvironment: 'node',
  roots: ['<rootDir>/test'],
  transform: { '^.+\\.ts$': ['ts-jest', { tsconfig: 'tsconfig.dev.json' }] },
  moduleFileExtensions: ['ts', 'js', 'json'],
  setupFilesAfterEnv: ['<rootDir>/test/support/setup.ts'],
};
const FLEET = ['<rootDir>/test/fleet-*.real.test.ts', '<rootDir>/test/rehearse.real.test.ts'];

module.exports = {
  testTimeout: 120000,
  reporters: ['default', '<rootDir>/scripts/jest-summary-reporter.js'],
  projects: [
    { ...shared, displayName: 'unit', testMatch: ['<rootDir>/test/*.test.ts'], testPathIgnorePatterns: ['\\.real\\.test\\.ts$'] },
    { ...shared, displayName: 'real', testMatch: ['<rootDir>/test/*.real.test.ts'], testPathIgnorePatterns: ['/test/fleet-[^/]*$', '/test/rehearse\\.real\\.test\\.ts$'] },
    { ...shared, displayName: 'fleet', testMatch: FLEET },
  ],
};
