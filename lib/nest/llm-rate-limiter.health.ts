import { Inject, Injectable } from '@nestjs/common';
import { HealthIndicatorService, type HealthIndicatorResult } from '@nestjs/terminus';
import { describe } from '../core/describe.js';
import type { RateLimitStatus } from '../core/results.js';
import { RATE_LIMITER_REGISTRY, RateLimiterRegistry } from './rate-limiter.registry.js';

/** Thresholds past which `isHealthy` reports down although Redis answers. */
export interface LlmRateLimiterHealthOptions {
  /** Down when any model has more reservations waiting for their slot than this. */
  readonly maxQueueDepth?: number;
  /** Down when any model uses more than this fraction (0 to 1) of one of its limits. */
  readonly maxUtilization?: number;
}

/** One model's figures in the health details. */
export interface LlmRateLimiterModelHealth extends Omit<RateLimitStatus, 'model'> {
  /** The largest used / limit in force (`limitsInForce`: after a cut, or as learned) among the model's limits that are on. */
  readonly utilization: number;
  /** True while the limiter lets calls through (or refuses them) because Redis failed. */
  readonly degraded: boolean;
}

function utilizationOf(s: RateLimitStatus): number {
  // Against the limits in force: after a cut, or as learned, not as configured.
  const limits = s.limitsInForce;
  const pairs: Array<[number, number]> = [
    [s.tokensUsed, limits.tokens],
    [s.inputTokensUsed, limits.inputTokens],
    [s.outputTokensUsed, limits.outputTokens],
    [s.requestsUsed, limits.requests],
  ];
  const ratios = pairs.filter(([, limit]) => limit > 0).map(([used, limit]) => used / limit);
  return Math.round(Math.max(0, ...ratios) * 1000) / 1000;
}

/**
 * A @nestjs/terminus health indicator: up with the backend, Redis round-trip time and each
 * model's usage and queue depth; down, with the reason, when Redis cannot be reached or a
 * threshold is passed. It never throws. Import it from `nestjs-llm-rate-limiter/health`, so
 * applications without @nestjs/terminus never load it.
 *
 * @example
 * @Get('health') @HealthCheck()
 * check() { return this.health.check([() => this.limiter.isHealthy('llm', { maxQueueDepth: 100 })]); }
 */
@Injectable()
export class LlmRateLimiterHealthIndicator {
  constructor(
    private readonly health: HealthIndicatorService,
    @Inject(RATE_LIMITER_REGISTRY) private readonly registry: RateLimiterRegistry,
  ) {}

  async isHealthy<const Key extends string = 'llm-rate-limiter'>(
    key: Key = 'llm-rate-limiter' as Key,
    options: LlmRateLimiterHealthOptions = {},
  ): Promise<HealthIndicatorResult<Key>> {
    const check = this.health.check(key);
    const backend = this.registry.backend;
    const problem = this.checkOptions(options);
    if (problem) return check.down({ backend, message: problem });

    let latencyMs: number;
    const models: Record<string, LlmRateLimiterModelHealth> = {};
    try {
      latencyMs = Math.round((await this.registry.ping()) * 100) / 100;
      const statuses = await Promise.all([...this.registry].map(async (limiter) => ({ limiter, status: await limiter.getStatus() })));
      for (const { limiter, status } of statuses) {
        const { model, ...figures } = status;
        models[model] = { ...figures, utilization: utilizationOf(status), degraded: limiter.degraded };
      }
    } catch (error) {
      return check.down({
        backend,
        message: `${backend === 'redis' ? 'Redis cannot be reached' : 'the store failed'}: ${describe(error)}`,
      });
    }

    const passed: string[] = [];
    for (const [model, figures] of Object.entries(models)) {
      if (options.maxQueueDepth !== undefined && figures.queueDepth > options.maxQueueDepth) {
        passed.push(`${model}: queue depth ${figures.queueDepth} is over maxQueueDepth ${options.maxQueueDepth}`);
      }
      if (options.maxUtilization !== undefined && figures.utilization > options.maxUtilization) {
        passed.push(`${model}: utilization ${figures.utilization} is over maxUtilization ${options.maxUtilization}`);
      }
    }
    const details = { backend, latencyMs, models };
    return passed.length > 0 ? check.down({ ...details, message: passed.join('; ') }) : check.up(details);
  }

  private checkOptions(options: LlmRateLimiterHealthOptions): string | undefined {
    if (options === null || typeof options !== 'object')
      return `isHealthy options must be an object such as { maxQueueDepth: 100 }, got ${String(options)}`;
    const { maxQueueDepth, maxUtilization } = options;
    if (maxQueueDepth !== undefined && (typeof maxQueueDepth !== 'number' || !Number.isInteger(maxQueueDepth) || maxQueueDepth < 0)) {
      return `maxQueueDepth must be a non-negative integer, got ${String(maxQueueDepth)}`;
    }
    if (maxUtilization !== undefined && (typeof maxUtilization !== 'number' || !(maxUtilization >= 0))) {
      return `maxUtilization must be a non-negative fraction such as 0.9, got ${String(maxUtilization)}`;
    }
    return undefined;
  }
}
