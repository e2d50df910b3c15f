import { Controller, Get } from '@nestjs/common';
import { HealthCheck, HealthCheckService } from '@nestjs/terminus';
import { LlmRateLimiterHealthIndicator } from 'nestjs-llm-rate-limiter/health';

@Controller('health')
export class HealthController {
  constructor(
    private readonly health: HealthCheckService,
    private readonly limiter: LlmRateLimiterHealthIndicator,
  ) {}

  /** Up with the backend, Redis latency and the model's usage; 503 when Redis is unreachable or the queue is deep. */
  @Get()
  @HealthCheck()
  check() {
    return this.health.check([() => this.limiter.isHealthy('llm-rate-limiter', { maxQueueDepth: 500 })]);
  }
}
