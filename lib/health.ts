export { LlmRateLimiterHealthIndicator } from './nest/llm-rate-limiter.health.js';
export type { LlmRateLimiterHealthOptions, LlmRateLimiterModelHealth } from './nest/llm-rate-limiter.health.js';
