import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { LlmRateLimiterModule, RateLimitConfigError, type RateLimiterEvent, RateLimiterRegistry } from '../../lib/index.js';
import { inMemoryMetrics } from '../support/metrics.js';
import { initModule } from '../support/nest.js';
import { redisUrl, uniquePrefix } from '../support/redis.js';

describe('LlmRateLimiterModule with metrics: { meter }', () => {
  it("reports every model's usage and events, and still hands the events to onEvent", async () => {
    const otel = inMemoryMetrics();
    const events: RateLimiterEvent[] = [];
    const moduleRef = await initModule({
      imports: [
        LlmRateLimiterModule.forRootAsync({
          useFactory: () => ({
            redis: { url: redisUrl() },
            keyPrefix: uniquePrefix(),
            models: { 'gpt-4o': { tpm: 1000 }, claude: { rpm: 5 } },
            metrics: { meter: otel.meter },
            onEvent: (event) => events.push(event),
          }),
        }),
      ],
    });
    try {
      const registry = moduleRef.get(RateLimiterRegistry);
      await registry.get('gpt-4o').acquire({ tokens: 250 });
      await registry.get('claude').acquire({ tokens: 10 });
      const value = await otel.collect();
      expect(value('llm_rate_limiter.used', { model: 'gpt-4o', figure: 'tokens' })).toBe(250);
      expect(value('llm_rate_limiter.used', { model: 'claude', figure: 'requests' })).toBe(1);
      expect(value('llm_rate_limiter.limit', { model: 'claude', figure: 'requests' })).toBe(5);
      expect(value('llm_rate_limiter.admissions', { model: 'claude', degraded: 'false' })).toBe(1);
      expect(events.filter((e) => e.type === 'acquired').map((e) => e.model)).toEqual(['gpt-4o', 'claude']);
    } finally {
      await moduleRef.close();
    }
    await otel.shutdown();
  });

  it('refuses metrics without a Meter', async () => {
    const failure = initModule({ imports: [LlmRateLimiterModule.forRoot({ models: { m: { tpm: 1 } }, metrics: {} as never })] });
    await expect(failure).rejects.toThrow(RateLimitConfigError);
    await expect(failure).rejects.toThrow('metrics must be { meter } with an OpenTelemetry Meter');
  });

  it('never imports an OpenTelemetry package: applications without it load the library unchanged', () => {
    const files = (dir: string): string[] =>
      readdirSync(dir, { withFileTypes: true }).flatMap((e) =>
        e.isDirectory() ? files(join(dir, e.name)) : e.name.endsWith('.ts') ? [join(dir, e.name)] : [],
      );
    const importing = files('lib').filter((file) =>
      /^\s*(import|export)\b[^;]*from\s*['"]@opentelemetry\/|import\(\s*['"]@opentelemetry\/|require\(\s*['"]@opentelemetry\//m.test(
        readFileSync(file, 'utf8'),
      ),
    );
    expect(importing).toEqual([]);
  });
});
