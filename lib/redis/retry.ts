// How the limiter retries a transient Redis error: settings of the Redis connection, checked once
// when a connection manager or module is built.
import { describe } from '../core/describe.js';
import { RateLimitConfigError } from '../core/errors.js';

/**
 * Backoff for retrying transient Redis errors: delay n (from 0) is
 * `min(maxDelayMs, baseDelayMs * exponentialBase ** n)`, varied by +/- `jitter` of itself.
 */
export interface RetryConfig {
  /** Retries after the first attempt (default 3). */
  maxRetries?: number;
  /** First delay, ms (default 100). */
  baseDelayMs?: number;
  /** Largest delay, ms (default 5000). */
  maxDelayMs?: number;
  /** Growth factor per retry (default 2). */
  exponentialBase?: number;
  /** Random variation, a fraction from 0 to 1 (default 0.1). */
  jitter?: number;
}

export type ResolvedRetryConfig = Required<RetryConfig>;

export const DEFAULT_RETRY_CONFIG: ResolvedRetryConfig = Object.freeze({
  maxRetries: 3,
  baseDelayMs: 100,
  maxDelayMs: 5000,
  exponentialBase: 2,
  jitter: 0.1,
});

/** Checks a retry config and fills in its defaults. */
export function resolveRetryConfig(config: RetryConfig = {}, where = 'retryConfig.'): ResolvedRetryConfig {
  if (config === null || typeof config !== 'object') {
    throw new RateLimitConfigError(`${where.slice(0, -1)} must be an object, got ${describe(config)}`);
  }
  const known = Object.keys(DEFAULT_RETRY_CONFIG);
  for (const key of Object.keys(config)) {
    if (!known.includes(key)) {
      throw new RateLimitConfigError(`${where}${key} is not a retry setting; known settings: ${known.join(', ')}`);
    }
  }
  const out = { ...DEFAULT_RETRY_CONFIG, ...config };
  const check = (field: keyof RetryConfig, ok: (v: number) => boolean, rule: string) => {
    const value = out[field];
    if (typeof value !== 'number' || !Number.isFinite(value) || !ok(value)) {
      throw new RateLimitConfigError(`${where}${field} must be ${rule}, got ${describe(value)}`);
    }
  };
  check('maxRetries', (v) => Number.isInteger(v) && v >= 0 && v <= 100, 'an integer from 0 to 100');
  check('baseDelayMs', (v) => v >= 0, 'a non-negative number of ms');
  check('maxDelayMs', (v) => v >= out.baseDelayMs, `a number of ms no smaller than baseDelayMs (${out.baseDelayMs})`);
  check('exponentialBase', (v) => v >= 1, 'a number no smaller than 1');
  check('jitter', (v) => v >= 0 && v <= 1, 'a fraction from 0 to 1');
  return out;
}

/** The delay before retry number `attempt` (0 = first retry). */
export function backoffDelayMs(config: ResolvedRetryConfig, attempt: number, random = Math.random): number {
  const plain = Math.min(config.maxDelayMs, config.baseDelayMs * config.exponentialBase ** attempt);
  return Math.max(0, plain * (1 + config.jitter * (2 * random() - 1)));
}
