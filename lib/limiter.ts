// The limiter without Nest: everything here loads with ioredis alone.
// Import it as 'nestjs-llm-rate-limiter/core' where Nest is not installed.
// Only what a user calls, passes or receives is exported; parts of an options or result type are
// reached through it (`RedisConnectionOptions['cluster']`), and the store port stays internal.
export { RateLimiter } from './core/rate-limiter.js';
export type {
  AcquireOptions,
  ActualUsage,
  RateLimiterBackend,
  RateLimiterOptions,
  ReleaseOptions,
  TokenRequest,
} from './core/rate-limiter.js';
export type { Algorithm, FailureMode, RateLimitConfig } from './core/config.js';
export type { RetryConfig } from './redis/retry.js';
export type { AcquireResult, AdjustResult, ObserveResult, RateLimitStatus, ReleaseResult } from './core/results.js';
export { readProviderHeaders, parseDurationMs } from './providers/headers.js';
export type { ProviderLimitReport } from './providers/headers.js';
export type { Provider } from './providers/profiles.js';
export type { LimiterLogger, RateLimiterEvent } from './core/events.js';
export {
  AcquireAbortedError,
  AcquireTimeoutError,
  InvalidRecordIdError,
  InvalidTokenCountError,
  LlmRateLimiterError,
  RateLimitConfigError,
  RedisConfigurationError,
  RedisUnavailableError,
  RequestTooLargeError,
} from './core/errors.js';
export { RedisConnectionManager } from './redis/connection-manager.js';
export type { RedisConnectionOptions } from './redis/connection-manager.js';
export type { RedisSelfCheckOptions, RedisSelfCheckReport } from './redis/self-check.js';
export { MemoryStore } from './memory/memory-store.js';
import './redis/client-adapter.js';
