import { Module } from '@nestjs/common';
import { TerminusModule } from '@nestjs/terminus';
import { APP_FILTER } from '@nestjs/core';
import { LlmRateLimiterModule, LlmRateLimitExceptionFilter } from 'nestjs-llm-rate-limiter';
import { LlmRateLimiterHealthIndicator } from 'nestjs-llm-rate-limiter/health';
import { ChatController } from './chat.controller.js';
import { ChatService, MODEL } from './chat.service.js';
import { FakeLlmProvider } from './fake-provider.js';
import { HealthController } from './health.controller.js';
import { MetricsController, MetricsService } from './metrics.js';
import { StatsService } from './stats.service.js';

/** How much longer the limiter's window is than the provider's. */
const WINDOW_MARGIN_SECONDS = 0.25;

/** What the limiter's factory needs: the provider (for its limits) and the stats hook. */
@Module({ providers: [FakeLlmProvider, StatsService, MetricsService], exports: [FakeLlmProvider, StatsService, MetricsService] })
export class ProviderModule {}

@Module({
  imports: [
    ProviderModule,
    TerminusModule.forRoot(),
    LlmRateLimiterModule.forRootAsync({
      isGlobal: true,
      imports: [ProviderModule],
      inject: [FakeLlmProvider, StatsService, MetricsService],
      // Declared here so @InjectRateLimiter(MODEL) can be resolved before the factory runs.
      models: [MODEL],
      useFactory: (provider: FakeLlmProvider, stats: StatsService, metrics: MetricsService) => ({
        // Without REDIS_URL the limits hold per process; with it, every instance shares them.
        redis: process.env.REDIS_URL ? { url: process.env.REDIS_URL } : undefined,
        keyPrefix: process.env.LLMRL_KEY_PREFIX ?? 'llmrl-sample',
        // The same TPM and RPM as the provider, over a window a little longer than its: a call
        // reaches the provider a few ms after its slot (more for the first of a burst, whose
        // replies queue), and the provider counts it from then.
        models: { [MODEL]: { ...provider.limits, windowSeconds: provider.limits.windowSeconds + WINDOW_MARGIN_SECONDS } },
        onEvent: (event) => stats.record(event),
        // Usage, limits, queue, waits, admissions and 429 back-offs per model, served at /metrics.
        metrics: { meter: metrics.meter },
      }),
    }),
  ],
  controllers: [ChatController, HealthController, MetricsController],
  providers: [
    ChatService,
    LlmRateLimiterHealthIndicator,
    // AcquireTimeoutError becomes 429 with Retry-After, RequestTooLargeError 413 (maxTokens: 999999).
    { provide: APP_FILTER, useClass: LlmRateLimitExceptionFilter },
  ],
})
export class AppModule {}
