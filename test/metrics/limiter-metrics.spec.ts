import type { Histogram } from '@opentelemetry/sdk-metrics';
import { createServer } from 'node:net';
import { LimiterMetrics, RateLimiter, RedisConnectionManager } from '../../lib/index.js';
import { recordingLogger } from '../support/backends.js';
import { inMemoryMetrics } from '../support/metrics.js';
import { redisUrl, uniquePrefix, waitFor } from '../support/redis.js';

describe('LimiterMetrics on Redis', () => {
  let manager: RedisConnectionManager;
  let otel: ReturnType<typeof inMemoryMetrics>;
  let metrics: LimiterMetrics;
  let limiter: RateLimiter;

  beforeEach(() => {
    manager = new RedisConnectionManager({ url: redisUrl() });
    otel = inMemoryMetrics();
    metrics = new LimiterMetrics(otel.meter, recordingLogger());
    limiter = new RateLimiter(
      manager,
      'gpt-4o',
      { tpm: 1000, rpm: 10, windowSeconds: 60 },
      { keyPrefix: uniquePrefix(), onEvent: metrics.record, logger: recordingLogger() },
    );
    metrics.observe(limiter);
  });
  afterEach(async () => {
    metrics.close();
    await otel.shutdown();
    await manager.close();
  });

  const model = { model: 'gpt-4o' };
  const figure = (name: string) => ({ ...model, figure: name });

  it('shows usage and limits per figure after acquires and an adjust, and counts admissions and their waits', async () => {
    const first = await limiter.acquire({ inputTokens: 100, outputTokens: 200 });
    await limiter.acquire({ tokens: 300 });
    await limiter.adjust(first.recordId, { actualOutput: 0 });

    const value = await otel.collect();
    expect(value('llm_rate_limiter.used', figure('tokens'))).toBe(400);
    expect(value('llm_rate_limiter.used', figure('requests'))).toBe(2);
    expect(value('llm_rate_limiter.limit', figure('tokens'))).toBe(1000);
    expect(value('llm_rate_limiter.limit', figure('requests'))).toBe(10);
    // Limits that are off have no series.
    expect(value('llm_rate_limiter.used', figure('input_tokens'))).toBeUndefined();
    expect(value('llm_rate_limiter.queue_depth', model)).toBe(0);
    expect(value('llm_rate_limiter.degraded', model)).toBe(0);
    expect(value('llm_rate_limiter.paused', model)).toBe(0);
    expect(value('llm_rate_limiter.admissions', { ...model, degraded: 'false' })).toBe(2);
    expect((value('llm_rate_limiter.wait', model) as Histogram).count).toBe(2);
  });

  it('shows a 429 back-off: the pause, the cut limit in force, the queue behind it', async () => {
    await limiter.acquire({ tokens: 400 });
    await limiter.observe({ 'retry-after': '30' }, { status: 429 });

    let value = await otel.collect();
    expect(value('llm_rate_limiter.backoffs', model)).toBe(1);
    expect(value('llm_rate_limiter.paused', model)).toBe(1);
    // 75% after the cut, recovering slowly from then on.
    expect(value('llm_rate_limiter.limit_factor', model)).toBeCloseTo(0.75, 2);
    expect(value('llm_rate_limiter.limit', figure('tokens'))).toBe(750);
    expect(value('llm_rate_limiter.used', figure('tokens'))).toBe(400);

    const abort = new AbortController();
    const waiting = limiter.acquire({ tokens: 100 }, { signal: abort.signal });
    await waitFor(async () => (await otel.collect())('llm_rate_limiter.queue_depth', model) === 1, 10_000, 'the queued acquire to show');
    abort.abort();
    await expect(waiting).rejects.toThrow();
    await waitFor(
      async () => (await otel.collect())('llm_rate_limiter.releases', { ...model, reason: 'aborted' }) === 1,
      10_000,
      'the release to be counted',
    );
    value = await otel.collect();
    expect(value('llm_rate_limiter.queue_depth', model)).toBe(0);
  });

  it('shows the degraded mode and the outage while Redis cannot be reached, and leaves usage out', async () => {
    const server = createServer();
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    const { port } = server.address() as { port: number };
    await new Promise<void>((resolve) => server.close(() => resolve()));
    const down = new RedisConnectionManager({ host: '127.0.0.1', port, connectTimeoutMs: 200, retryConfig: { maxRetries: 0 } });
    const logger = recordingLogger();
    const degradedMetrics = new LimiterMetrics(otel.meter, logger);
    const cut = new RateLimiter(
      down,
      'claude',
      { rpm: 10 },
      { keyPrefix: uniquePrefix(), onEvent: degradedMetrics.record, logger: recordingLogger() },
    );
    degradedMetrics.observe(cut);
    try {
      const result = await cut.acquire({ tokens: 1 });
      expect(result.degraded).toBe(true);
      const value = await otel.collect();
      const claude = { model: 'claude' };
      expect(value('llm_rate_limiter.degraded', claude)).toBe(1);
      expect(value('llm_rate_limiter.outages', { ...claude, failure_mode: 'open' })).toBe(1);
      expect(value('llm_rate_limiter.admissions', { ...claude, degraded: 'true' })).toBe(1);
      expect(value('llm_rate_limiter.used', { ...claude, figure: 'requests' })).toBeUndefined();
      await otel.collect();
      expect(logger.lines.filter((l) => l.message.includes("metrics: claude's usage cannot be read"))).toHaveLength(1);
    } finally {
      degradedMetrics.close();
      await down.close();
    }
  });

  it('stops reading the limiters once closed', async () => {
    await limiter.acquire({ tokens: 1 });
    expect((await otel.collect())('llm_rate_limiter.used', figure('requests'))).toBe(1);
    metrics.close();
    await limiter.acquire({ tokens: 1 });
    // The SDK keeps a gauge's last value; what matters is that it is no longer refreshed.
    expect((await otel.collect())('llm_rate_limiter.used', figure('requests'))).toBe(1);
    expect((await limiter.getStatus()).requestsUsed).toBe(2);
  });
});
