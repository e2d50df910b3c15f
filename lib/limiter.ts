// The limiter without Nest: everything here loads with ioredis alone.
// Import it as 'nestjs-llm-rate-limiter/core' where Nest is not installed.
export { RateLimiter } from './core/rate-limiter.js';
export type {
  AcquireOptions,
  ActualUsage,
  RateLimiterBackend,
  RateLimiterOptions,
  ReleaseOptions,
  TokenRequest,
} from './core/rate-limiter.js';
export { DEFAULT_RETRY_CONFIG } from './redis/retry.js';
export type { FailureMode, LearnLimitsConfig, RateLimitConfig } from './core/config.js';
export type { RetryConfig } from './redis/retry.js';
export type { AcquireResult, AdjustResult, ObserveResult, RateLimitStatus, ReleaseResult } from './core/results.js';
export { readProviderHeaders, parseDurationMs } from './providers/headers.js';
export type { HeaderSource, ProviderLimitReport } from './providers/headers.js';
export type { Algorithm } from './core/config.js';
export type { Provider } from './providers/profiles.js';
export type { LimiterLogger, RateLimiterEvent } from './core/events.js';
export type { LimiterStore } from './core/store.js';
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
export type { RedisConnectionOptions, RedisTopology } from './redis/connection-manager.js';
export type { RedisClusterConnection, RedisNodeAddress, RedisSentinelConnection } from './redis/client-options.js';
export type { RedisEvictionSetting, RedisSelfCheckOptions, RedisSelfCheckReport } from './redis/self-check.js';
export { MemoryStore } from './memory/memory-store.js';
import './redis/client-adapter.js';
