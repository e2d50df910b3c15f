/**
 * The slow topology and fault suite (`npm run test:faults`): real Cluster, Sentinel and TLS
 * servers and a fault-injecting proxy, one file at a time so timings are not skewed by a
 * neighbour's topology.
 */
import base from './jest.config.mjs';

export default {
  ...base,
  roots: ['<rootDir>/test/faults'],
  testPathIgnorePatterns: ['/node_modules/'],
  maxWorkers: 1,
  testTimeout: 120_000,
};
