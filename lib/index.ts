// The whole public API: the limiter (also at 'nestjs-llm-rate-limiter/core', without Nest) and
// its Nest integration.
export * from './limiter.js';
export { LlmRateLimiterModule } from './nest/llm-rate-limiter.module.js';
export type { LlmRateLimiterModuleAsyncOptions, LlmRateLimiterModuleRootOptions } from './nest/llm-rate-limiter.module.js';
export type { LlmRateLimiterModuleOptions } from './nest/llm-rate-limiter.options.js';
export { RateLimiterRegistry } from './nest/rate-limiter.registry.js';
export { getRateLimiterToken, InjectRateLimiter } from './nest/inject-rate-limiter.decorator.js';
export { RateLimitLlm } from './nest/rate-limit-llm.decorator.js';
export type { RateLimitLlmOptions } from './nest/rate-limit-llm.options.js';
export type { LlmUsage } from './providers/llm-usage.js';
export { UnknownModelError } from './nest/errors/unknown-model.error.js';
export { RateLimitLlmNotBoundError } from './nest/errors/rate-limit-llm-not-bound.error.js';
export { LlmRateLimitExceptionFilter, llmRateLimitErrorResponse } from './nest/http/llm-rate-limit-exception.filter.js';
export type { LlmRateLimitErrorBody, LlmRateLimitErrorResponse } from './nest/http/llm-rate-limit-exception.filter.js';
export { LimiterMetrics } from './metrics/limiter-metrics.js';
export type { LimiterMeter } from './metrics/limiter-meter.js';
export { createLimitedFetch } from './providers/limited-fetch.js';
export type { LimitedFetchOptions } from './providers/limited-fetch.js';
