import { Inject, Injectable, Logger, type OnApplicationShutdown, type OnModuleInit } from '@nestjs/common';
import { RateLimitConfigError, RedisUnavailableError } from '../core/errors.js';
import type { RateLimiterEvent } from '../core/events.js';
import { RateLimiter } from '../core/rate-limiter.js';
import { LimiterMetrics } from '../metrics/limiter-metrics.js';
import { MemoryStore } from '../memory/memory-store.js';
import { RedisConnectionManager } from '../redis/connection-manager.js';
import { UnknownModelError } from './errors/unknown-model.error.js';
import { LLM_RATE_LIMITER_OPTIONS } from './llm-rate-limiter.module-definition.js';
import { checkModuleOptions, type LlmRateLimiterModuleOptions } from './llm-rate-limiter.options.js';
import { isRedisClient } from '../redis/scripts.js';

/**
 * Every model's `RateLimiter`, built from the module options at bootstrap. `get(model)` works
 * for any configured model, whether or not it was declared for injection; iterate it for
 * health and metrics.
 *
 * @example
 * constructor(private readonly limiters: RateLimiterRegistry) {}
 * const status = await this.limiters.get('gpt-4o').getStatus();
 */
@Injectable()
export class RateLimiterRegistry implements Iterable<RateLimiter>, OnModuleInit, OnApplicationShutdown {
  /**
   * The Redis connections the limiters share; undefined with the in-memory store. The module
   * closes it on application shutdown (a client passed in `redis` stays open: it is yours).
   */
  readonly connectionManager: RedisConnectionManager | undefined;
  private readonly limiters = new Map<string, RateLimiter>();
  private readonly metrics: LimiterMetrics | undefined;
  private readonly logger = new Logger('LlmRateLimiter');

  constructor(@Inject(LLM_RATE_LIMITER_OPTIONS) private readonly options: LlmRateLimiterModuleOptions) {
    checkModuleOptions(options);
    this.connectionManager = this.connect(options);
    const backend = this.connectionManager ?? new MemoryStore();
    const metrics = options.metrics && new LimiterMetrics(options.metrics.meter, this.logger);
    this.metrics = metrics;
    const { onEvent } = options;
    const report = metrics
      ? (event: RateLimiterEvent) => {
          metrics.record(event);
          onEvent?.(event);
        }
      : onEvent;
    try {
      for (const [model, config] of Object.entries(options.models)) {
        this.limiters.set(
          model,
          new RateLimiter(backend, model, config, {
            failureMode: options.failureMode,
            expectedInstances: options.expectedInstances,
            keyPrefix: options.keyPrefix,
            logger: this.logger,
            onEvent: report,
          }),
        );
      }
      for (const limiter of this.limiters.values()) metrics?.observe(limiter);
    } catch (error) {
      metrics?.close();
      void this.connectionManager?.close();
      throw error;
    }
    if (!this.connectionManager) {
      this.logger.log(
        `no redis configured: ${this.models.join(', ')} limited by an in-memory store, so limits hold per process (every replica may use the full limits); set redis to share them`,
      );
    }
  }

  /** The configured model names, in configuration order. */
  get models(): readonly string[] {
    return [...this.limiters.keys()];
  }

  /** Where the limiters keep their state: `'redis'` (shared) or `'memory'` (this process). */
  get backend(): 'redis' | 'memory' {
    return this.connectionManager ? 'redis' : 'memory';
  }

  /** The model a `@RateLimitLlm()` without `model` uses: the only one configured, if so. */
  get defaultModel(): string | undefined {
    return this.limiters.size === 1 ? this.models[0] : undefined;
  }

  /** Whether limits are configured for `model`. */
  has(model: string): boolean {
    return this.limiters.has(model);
  }

  /** The limiter of `model`; throws `UnknownModelError`, naming the configured models, for any other name. */
  get(model: string): RateLimiter {
    const limiter = this.limiters.get(model);
    if (!limiter) throw new UnknownModelError(model, this.models);
    return limiter;
  }

  [Symbol.iterator](): Iterator<RateLimiter> {
    return this.limiters.values();
  }

  /** Round trip to the backend, ms (0 for memory); rejects when Redis cannot be reached. */
  ping(): Promise<number> {
    return this.limiters.values().next().value!.ping();
  }

  /** The startup self-check (see `verifyOnStartup`). */
  async onModuleInit(): Promise<void> {
    const manager = this.connectionManager;
    if (!manager || this.options.verifyOnStartup === false) return;
    try {
      const report = await manager.verify({ keyPrefix: this.options.keyPrefix, logger: this.logger });
      this.logger.log(
        `Redis ${report.serverVersion ?? ''} (${report.topology}) checked: scripts run as ${report.username ?? 'default'}, round trip ${report.roundTripMs.toFixed(1)} ms`,
      );
    } catch (error) {
      if (error instanceof RedisUnavailableError && this.options.failureMode !== 'closed') {
        this.logger.warn(
          `Redis cannot be reached at startup (${error.message}); starting anyway with failureMode '${this.options.failureMode ?? 'open'}'`,
        );
        return;
      }
      await manager.close();
      throw error;
    }
  }

  async onApplicationShutdown(): Promise<void> {
    this.metrics?.close();
    await this.connectionManager?.close();
  }

  private connect(options: LlmRateLimiterModuleOptions): RedisConnectionManager | undefined {
    const { redis, retryConfig } = options;
    if (redis === undefined || redis === null) return undefined;
    try {
      return isRedisClient(redis)
        ? new RedisConnectionManager({ client: redis, retryConfig })
        : new RedisConnectionManager({ ...redis, retryConfig });
    } catch (error) {
      if (error instanceof RateLimitConfigError) throw new RateLimitConfigError(`redis: ${error.message}`, { cause: error });
      throw error;
    }
  }
}

/**
 * The registry's injection token besides its class, the same in the CommonJS and the ESM build:
 * the library's own providers inject it by this token, so they resolve whichever copy's module
 * the application registered.
 */
export const RATE_LIMITER_REGISTRY: unique symbol = Symbol.for('nestjs-llm-rate-limiter.RateLimiterRegistry');
