import { Controller, Get, Injectable, type INestApplication } from '@nestjs/common';
import { HealthCheck, HealthCheckService, TerminusModule } from '@nestjs/terminus';
import { LlmRateLimiterHealthIndicator } from '../../lib/health.js';
import { LlmRateLimiterModule, type LlmRateLimiterModuleOptions, RateLimiterRegistry, RateLimitLlm } from '../../lib/index.js';
import { listen, recordingNestLogger } from '../support/nest.js';
import { redisUrl, uniquePrefix, waitFor } from '../support/redis.js';
import { OwnRedisServer } from '../support/redis-server.js';

@Controller('health')
class HealthController {
  constructor(
    private readonly health: HealthCheckService,
    private readonly limiter: LlmRateLimiterHealthIndicator,
  ) {}

  @Get()
  @HealthCheck()
  check() {
    return this.health.check([() => this.limiter.isHealthy()]);
  }

  @Get('strict')
  @HealthCheck()
  strict() {
    return this.health.check([() => this.limiter.isHealthy('limits', { maxQueueDepth: 0, maxUtilization: 0.5 })]);
  }
}

@Injectable()
class Caller {
  @RateLimitLlm({ model: 'gpt-4o', tokens: () => 600 })
  call() {
    return Promise.resolve('ok');
  }
}

const models = { 'gpt-4o': { tpm: 1000, rpm: 100 }, claude: { inputTpm: 500, outputTpm: 100 } };

async function start(options: Partial<LlmRateLimiterModuleOptions>): Promise<{ app: INestApplication; url: string }> {
  return listen(
    {
      imports: [TerminusModule.forRoot({ logger: false }), LlmRateLimiterModule.forRoot({ keyPrefix: uniquePrefix(), models, ...options })],
      controllers: [HealthController],
      providers: [LlmRateLimiterHealthIndicator, Caller],
    },
    recordingNestLogger(),
  );
}

describe('LlmRateLimiterHealthIndicator', () => {
  it('reports up with the Redis round trip and each model usage and queue depth', async () => {
    const { app, url } = await start({ redis: { url: redisUrl() } });
    try {
      await app.get(Caller).call();
      const response = await fetch(`${url}/health`);
      expect(response.status).toBe(200);
      const body = (await response.json()) as any;
      expect(body.status).toBe('ok');
      const details = body.info['llm-rate-limiter'];
      expect(details).toMatchObject({ status: 'up', backend: 'redis' });
      expect(details.latencyMs).toEqual(expect.any(Number));
      expect(details.models['gpt-4o']).toMatchObject({
        tokensUsed: 600,
        tokensLimit: 1000,
        requestsUsed: 1,
        queueDepth: 0,
        utilization: 0.6,
        degraded: false,
      });
      expect(details.models.claude).toMatchObject({ inputTokensLimit: 500, outputTokensLimit: 100, utilization: 0 });
    } finally {
      await app.close();
    }
  });

  it('reports the memory backend with no round trip', async () => {
    const { app, url } = await start({});
    try {
      const body = (await (await fetch(`${url}/health`)).json()) as any;
      expect(body.info['llm-rate-limiter']).toMatchObject({ status: 'up', backend: 'memory', latencyMs: 0 });
    } finally {
      await app.close();
    }
  });

  it('reports learned limits as they are in force, and utilization against them', async () => {
    const learning = { ...models, 'gpt-4o': { tpm: 1000, rpm: 100, learnLimits: true } };
    const { app, url } = await start({ redis: { url: redisUrl() }, models: learning });
    try {
      await app.get(Caller).call();
      const registry = app.get(RateLimiterRegistry);
      // A 429 cuts the learned limits to 75%: 600 of 750 tokens is 0.8 of what is in force.
      await registry.get('gpt-4o').backOff({ retryAfterMs: 0 });
      const details = ((await (await fetch(`${url}/health`)).json()) as any).info['llm-rate-limiter'];
      expect(details.models['gpt-4o']).toMatchObject({
        learning: true,
        tokensLimit: 1000,
        limitFactor: 0.75,
        limitsInForce: { tokens: 750, inputTokens: 0, outputTokens: 0, requests: 75 },
        utilization: 0.8,
      });
      expect(details.models.claude).toMatchObject({ learning: false, limitsInForce: { inputTokens: 500, outputTokens: 100 } });
    } finally {
      await app.close();
    }
  });

  it('reports down, with the reason, past a threshold', async () => {
    const { app, url } = await start({});
    try {
      await app.get(Caller).call();
      const response = await fetch(`${url}/health/strict`);
      expect(response.status).toBe(503);
      const body = (await response.json()) as any;
      expect(body.status).toBe('error');
      expect(body.error.limits).toMatchObject({ status: 'down', message: 'gpt-4o: utilization 0.6 is over maxUtilization 0.5' });
      expect(body.error.limits.models['gpt-4o'].tokensUsed).toBe(600);
    } finally {
      await app.close();
    }
  });

  it('reports down, with the cause, when Redis cannot be reached, and up again once it answers', async () => {
    const server = await OwnRedisServer.start();
    const { app, url } = await start({ redis: { url: server.url }, retryConfig: { maxRetries: 1, baseDelayMs: 10 } });
    try {
      expect((await fetch(`${url}/health`)).status).toBe(200);
      await server.kill();
      const response = await fetch(`${url}/health`);
      expect(response.status).toBe(503);
      const down = ((await response.json()) as any).error['llm-rate-limiter'];
      expect(down).toMatchObject({ status: 'down', backend: 'redis' });
      expect(down.message).toMatch(/^Redis cannot be reached: /);
      await server.startAgain();
      // The client reconnects with its own backoff; poll until it has.
      await waitFor(async () => (await fetch(`${url}/health`)).status === 200, 10_000, 'health to be up again');
    } finally {
      await app.close();
      await server.stop();
    }
  });
});
