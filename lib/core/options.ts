import { describe } from './describe.js';
import type { FailureMode } from './config.js';
import { RateLimitConfigError } from './errors.js';
import type { LimiterLogger, RateLimiterEvent } from './events.js';
import type { LimiterStoreOwner } from './backend.js';
import type { LimiterStore } from './store.js';

/** The longest model name a limiter takes (it is part of every Redis key of the model). */
export const MAX_MODEL_LENGTH = 1024;

export interface AcquireOptions {
  /**
   * Stops waiting: acquire rejects with `AcquireAbortedError` once the store no longer holds the
   * reservation (a signal aborted before the call sends nothing).
   */
  readonly signal?: AbortSignal;
  /**
   * Longest wait for admission, ms: rejects with `AcquireTimeoutError` at once, reserving
   * nothing, when the store sees it cannot be admitted in time, or after waiting this long.
   */
  readonly maxWaitMs?: number;
}

export interface ReleaseOptions {
  /**
   * The call reached the provider and failed there. Providers that count failed calls (OpenAI)
   * keep the charge; for the others the reservation is given back as usual.
   */
  readonly reachedProvider?: boolean;
}

export interface RateLimiterOptions {
  /**
   * While Redis is unavailable: `'open'` (default) lets calls through unlimited, `'closed'`
   * rejects them with `RedisUnavailableError`, `'local'` limits them in this process to
   * its share of each limit (see docs/faults.md, local mode).
   */
  readonly failureMode?: FailureMode;
  /**
   * How many processes share the limits, for `failureMode: 'local'`. Instances also announce
   * themselves in Redis every second: the share is taken for the larger of this and the largest
   * count announced lately. Without either, a process admits nothing while Redis is down.
   */
  readonly expectedInstances?: number;
  /** Prefix of every key (default `'llmrl'`); limiters with different prefixes never share state. */
  readonly keyPrefix?: string;
  /** Receives the limiter's few log lines (default: `console`). */
  readonly logger?: LimiterLogger;
  /** Receives every acquire, adjust, release, outage and recovery. */
  readonly onEvent?: (event: RateLimiterEvent) => void;
}

/**
 * An ioredis `Redis` or `Cluster` client the application owns, by the members the Redis layer
 * recognises it by (core names no ioredis type); the application keeps closing it.
 */
export interface RedisClientBackend {
  readonly status: string;
  evalsha(...args: never[]): unknown;
  defineCommand(...args: never[]): unknown;
}

/**
 * What `RateLimiter` keeps its state in: a `RedisConnectionManager` (an owner of a store), an
 * ioredis client, or a `MemoryStore`.
 */
export type RateLimiterBackend = LimiterStoreOwner | RedisClientBackend | LimiterStore;

/** The limiter options, checked, with their defaults. */
export function checkLimiterOptions(options: RateLimiterOptions): {
  failureMode: FailureMode;
  expectedInstances?: number;
  keyPrefix: string;
} {
  const failureMode = options.failureMode ?? 'open';
  if (failureMode !== 'open' && failureMode !== 'closed' && failureMode !== 'local') {
    throw new RateLimitConfigError(`failureMode must be 'open', 'closed' or 'local', got ${describe(failureMode)}`);
  }
  const expected = options.expectedInstances;
  if (expected !== undefined && (typeof expected !== 'number' || !Number.isInteger(expected) || expected < 1 || expected > 100_000)) {
    throw new RateLimitConfigError(`expectedInstances must be an integer from 1 to 100000, got ${describe(expected)}`);
  }
  const keyPrefix = options.keyPrefix ?? 'llmrl';
  if (typeof keyPrefix !== 'string' || keyPrefix.length === 0 || /[{}]/.test(keyPrefix)) {
    throw new RateLimitConfigError(`keyPrefix must be a non-empty string without braces, got ${describe(keyPrefix)}`);
  }
  return { failureMode, expectedInstances: expected, keyPrefix };
}

/** An acquire's options checked: its maxWaitMs as the store takes it (-1 = no bound). */
export function checkAcquireOptions(options: AcquireOptions): number {
  if (options === null || typeof options !== 'object') {
    throw new RateLimitConfigError(`acquire options must be an object such as { maxWaitMs: 5000 }, got ${describe(options)}`);
  }
  const { maxWaitMs, signal } = options;
  if (signal !== undefined && !(signal instanceof AbortSignal)) {
    throw new RateLimitConfigError(`signal must be an AbortSignal, got ${describe(signal)}`);
  }
  if (maxWaitMs === undefined) return -1;
  if (typeof maxWaitMs !== 'number' || !Number.isFinite(maxWaitMs) || maxWaitMs < 0) {
    throw new RateLimitConfigError(`maxWaitMs must be a non-negative number of ms, got ${describe(maxWaitMs)}`);
  }
  return Math.floor(maxWaitMs);
}

/** A model name: what keys and messages carry, so bounded and well-formed. */
export function checkModel(model: unknown): asserts model is string {
  if (typeof model !== 'string' || model.length === 0 || model.length > MAX_MODEL_LENGTH || !model.isWellFormed()) {
    throw new RateLimitConfigError(
      `model must be a non-empty, well-formed string of at most ${MAX_MODEL_LENGTH} characters, got ${typeof model === 'string' ? `a string of length ${model.length}` : describe(model)}`,
    );
  }
}
