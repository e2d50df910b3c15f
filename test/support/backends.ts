import { MemoryStore, RateLimiter, RedisConnectionManager, type RateLimitConfig, type RateLimiterOptions } from '../../lib/index.js';
import { redisUrl, uniquePrefix } from './redis.js';

/** A backend the conformance suite runs against, with what it takes to build limiters on it. */
export interface BackendUnderTest {
  readonly name: 'memory' | 'redis';
  limiter(model: string, config: RateLimitConfig, options?: RateLimiterOptions): RateLimiter;
  close(): Promise<void>;
}

export function memoryBackend(): BackendUnderTest {
  const store = new MemoryStore();
  return {
    name: 'memory',
    limiter: (model, config, options = {}) => new RateLimiter(store, model, config, { keyPrefix: uniquePrefix(), ...options }),
    close: async () => undefined,
  };
}

export function redisBackend(): BackendUnderTest {
  const manager = new RedisConnectionManager({ url: redisUrl() });
  return {
    name: 'redis',
    limiter: (model, config, options = {}) => new RateLimiter(manager, model, config, { keyPrefix: uniquePrefix(), ...options }),
    close: () => manager.close(),
  };
}

/** Two limiters of one model on one store and key prefix: two processes sharing a provider key. */
export function sharingPair(backend: BackendUnderTest, model: string, config: RateLimitConfig): [RateLimiter, RateLimiter] {
  const options = { keyPrefix: uniquePrefix(), logger: recordingLogger() };
  return [backend.limiter(model, config, options), backend.limiter(model, config, options)];
}

/** A logger that remembers what it was told. */
export function recordingLogger() {
  const lines: { level: string; message: string }[] = [];
  return {
    lines,
    log: (message: string) => lines.push({ level: 'log', message }),
    warn: (message: string) => lines.push({ level: 'warn', message }),
    error: (message: string) => lines.push({ level: 'error', message }),
  };
}

/** Both stores, for `describe.each(BACKENDS)`: every specification must hold on each. */
export const BACKENDS: [string, () => BackendUnderTest][] = [
  ['memory', memoryBackend],
  ['redis', redisBackend],
];

/** A limiter's used figures, short. */
export async function usedOf(limiter: RateLimiter) {
  const s = await limiter.getStatus();
  return { tokens: s.tokensUsed, input: s.inputTokensUsed, output: s.outputTokensUsed, requests: s.requestsUsed };
}
