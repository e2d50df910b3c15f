import { Module } from '@nestjs/common';
import { TerminusModule } from '@nestjs/terminus';
import { LlmRateLimiterModule } from 'nestjs-llm-rate-limiter';
import { LlmRateLimiterHealthIndicator } from 'nestjs-llm-rate-limiter/health';
import { ChatController } from './chat.controller.js';
import { ChatService, MODEL } from './chat.service.js';
import { FakeLlmProvider } from './fake-provider.js';
import { HealthController } from './health.controller.js';
import { StatsService } from './stats.service.js';

/** How much longer the limiter's window is than the provider's. */
const WINDOW_MARGIN_SECONDS = 0.25;

/** What the limiter's factory needs: the provider (for its limits) and the stats hook. */
@Module({ providers: [FakeLlmProvider, StatsService], exports: [FakeLlmProvider, StatsService] })
export class ProviderModule {}

@Module({
  imports: [
    ProviderModule,
    TerminusModule.forRoot(),
    LlmRateLimiterModule.forRootAsync({
      isGlobal: true,
      imports: [ProviderModule],
      inject: [FakeLlmProvider, StatsService],
      // Declared here so @InjectRateLimiter(MODEL) can be resolved before the factory runs.
      models: [MODEL],
      useFactory: (provider: FakeLlmProvider, stats: StatsService) => ({
        // Without REDIS_URL the limits hold per process; with it, every instance shares them.
        redis: process.env.REDIS_URL ? { url: process.env.REDIS_URL } : undefined,
        keyPrefix: process.env.LLMRL_KEY_PREFIX ?? 'llmrl-sample',
        // The same TPM and RPM as the provider, over a window a little longer than its: a call
        // reaches the provider a few ms after its slot (more for the first of a burst, whose
        // replies queue), and the provider counts it from then.
        models: { [MODEL]: { ...provider.limits, windowSeconds: provider.limits.windowSeconds + WINDOW_MARGIN_SECONDS } },
        onEvent: (event) => stats.record(event),
      }),
    }),
  ],
  controllers: [ChatController, HealthController],
  providers: [ChatService, LlmRateLimiterHealthIndicator],
})
export class AppModule {}
