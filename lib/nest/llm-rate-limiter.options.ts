import type { Cluster, Redis } from 'ioredis';
import { type FailureMode, type RateLimitConfig, resolveConfig } from '../core/config.js';
import { resolveRetryConfig, type RetryConfig } from '../redis/retry.js';
import { describe } from '../core/describe.js';
import { RateLimitConfigError } from '../core/errors.js';
import type { RateLimiterEvent } from '../core/events.js';
import type { LimiterMeter } from '../metrics/limiter-meter.js';
import type { RedisConnectionOptions } from '../redis/connection-manager.js';
import { isRedisClient } from '../redis/scripts.js';
import { MAX_MODEL_LENGTH } from '../core/options.js';

/** How the module reaches Redis: connection settings (`retryConfig` sits beside `redis`). */
export type LlmRateLimiterRedisOptions = Omit<RedisConnectionOptions, 'retryConfig' | 'client'>;

/**
 * Options of `LlmRateLimiterModule.forRoot()` (and what a `forRootAsync()` factory returns).
 *
 * @example
 * LlmRateLimiterModule.forRoot({
 *   redis: { url: process.env.REDIS_URL },
 *   models: { 'gpt-4o': { tpm: 30_000, rpm: 500, provider: 'openai' } },
 * });
 */
export interface LlmRateLimiterModuleOptions {
  /**
   * Where limits are shared: `{ url }`, `{ host, port, db, username, password, tls,
   * maxConnections }` (and the other `RedisConnectionManager` settings), or an ioredis client
   * the application owns and closes. Absent: an in-memory store, so limits hold per process.
   */
  readonly redis?: LlmRateLimiterRedisOptions | Redis | Cluster;
  /** Retry of transient Redis errors (see `RetryConfig`). */
  readonly retryConfig?: RetryConfig;
  /** While Redis is unavailable: `'open'` (default), `'closed'` or `'local'` (see `RateLimiterOptions`). */
  readonly failureMode?: FailureMode;
  /** For `failureMode: 'local'`: how many processes share the limits. */
  readonly expectedInstances?: number;
  /** Prefix of every Redis key (default `'llmrl'`). */
  readonly keyPrefix?: string;
  /** One limiter per model name, with that model's provider limits. */
  readonly models: Readonly<Record<string, RateLimitConfig>>;
  /** Receives every limiter's events (acquired, adjusted, released, degraded, recovered, ...). */
  readonly onEvent?: (event: RateLimiterEvent) => void;
  /**
   * Check Redis at bootstrap (default true): reachable, the scripts run as the configured user
   * (ACL), an eviction policy that could drop limiter keys. A wrong password, a missing ACL
   * permission or a TLS error fail the bootstrap; Redis being unreachable fails it only with
   * `failureMode: 'closed'`, and is logged otherwise.
   */
  readonly verifyOnStartup?: boolean;
  /**
   * OpenTelemetry metrics of every model (see `LimiterMetrics`): pass a `Meter` of your
   * `@opentelemetry/api` setup. The library imports no OpenTelemetry package itself.
   *
   * @example
   * metrics: { meter: metrics.getMeter('nestjs-llm-rate-limiter') }
   */
  readonly metrics?: { readonly meter: LimiterMeter };
}

const KNOWN_OPTIONS = [
  'redis',
  'retryConfig',
  'failureMode',
  'expectedInstances',
  'keyPrefix',
  'models',
  'onEvent',
  'verifyOnStartup',
  'metrics',
];

/**
 * Checks module options before anything connects, naming the model and field of a bad value:
 * `models["gpt-4o"].tpm must be a non-negative integer ..., got -5`. Settings the limiter itself
 * checks (failureMode, keyPrefix, Redis settings) are checked when it is built.
 */
export function checkModuleOptions(options: LlmRateLimiterModuleOptions): void {
  if (options === null || typeof options !== 'object' || Array.isArray(options)) {
    throw new RateLimitConfigError(
      `LlmRateLimiterModule options must be an object such as { models: { 'gpt-4o': { tpm: 30000 } } }, got ${describe(options)}`,
    );
  }
  for (const key of Object.keys(options)) {
    if (!KNOWN_OPTIONS.includes(key)) {
      throw new RateLimitConfigError(`${key} is not an LlmRateLimiterModule option; known options: ${KNOWN_OPTIONS.join(', ')}`);
    }
  }
  const { models } = options;
  if (models === null || typeof models !== 'object' || Array.isArray(models) || Object.keys(models).length === 0) {
    throw new RateLimitConfigError(
      `models must name at least one model with its limits, such as { 'gpt-4o': { tpm: 30000, rpm: 500 } }, got ${describe(models)}`,
    );
  }
  for (const [model, config] of Object.entries(models)) {
    const where = `models[${JSON.stringify(model)}]`;
    if (model.length === 0 || model.length > MAX_MODEL_LENGTH || !model.isWellFormed()) {
      throw new RateLimitConfigError(
        `${where}: a model name must be a non-empty, well-formed string of at most ${MAX_MODEL_LENGTH} characters`,
      );
    }
    if (config === null || typeof config !== 'object' || Array.isArray(config)) {
      throw new RateLimitConfigError(`${where} must be an object of limits such as { tpm: 30000, rpm: 500 }, got ${describe(config)}`);
    }
    resolveConfig(config, `${where}.`);
  }
  if (options.retryConfig !== undefined) resolveRetryConfig(options.retryConfig);
  if (options.onEvent !== undefined && typeof options.onEvent !== 'function') {
    throw new RateLimitConfigError(`onEvent must be a function receiving limiter events, got ${describe(options.onEvent)}`);
  }
  if (options.verifyOnStartup !== undefined && typeof options.verifyOnStartup !== 'boolean') {
    throw new RateLimitConfigError(`verifyOnStartup must be true or false, got ${describe(options.verifyOnStartup)}`);
  }
  if (options.redis !== undefined && options.redis !== null && (typeof options.redis !== 'object' || Array.isArray(options.redis))) {
    throw new RateLimitConfigError(
      `redis must be connection settings such as { url: 'redis://localhost:6379' } or an ioredis client, got ${describe(options.redis)}`,
    );
  }
  if (options.redis && !isRedisClient(options.redis)) checkRedisSettings(options.redis);
  if (options.metrics !== undefined) {
    const meter: unknown = options.metrics?.meter;
    if (meter === null || typeof meter !== 'object' || typeof (meter as LimiterMeter).createObservableGauge !== 'function') {
      throw new RateLimitConfigError(
        `metrics must be { meter } with an OpenTelemetry Meter, such as metrics.getMeter('llm') of @opentelemetry/api, got ${describe(options.metrics)}`,
      );
    }
  }
}

/**
 * `redis: { url: process.env.REDIS_URL }` with the variable unset would otherwise connect to
 * localhost:6379 by default: in production that is no Redis at all, and fail-open then lets
 * every call through unlimited. A local server must be asked for by name.
 */
function checkRedisSettings(redis: LlmRateLimiterRedisOptions): void {
  const named = (value: unknown) => value !== undefined && value !== null && value !== '';
  if (!named(redis.url) && !named(redis.host) && !named(redis.cluster) && !named(redis.sentinel)) {
    const empty =
      'url' in redis ? `redis.url is ${describe(redis.url)} (an environment variable that is not set?)` : 'redis names no server';
    throw new RateLimitConfigError(
      `${empty}: set url (such as 'redis://redis:6379'), host, cluster or sentinel; for a local server say so with host: 'localhost'. ` +
        'To run without Redis (limits per process), leave redis out.',
    );
  }
  for (const field of ['port', 'db'] as const) {
    const value: unknown = redis[field];
    if (typeof value === 'string') {
      throw new RateLimitConfigError(
        `redis.${field} must be a number, got ${JSON.stringify(value)}, a string: wrap a value read from the environment in Number()`,
      );
    }
  }
}
