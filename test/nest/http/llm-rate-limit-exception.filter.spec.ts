import { BadRequestException, Body, Controller, HttpCode, type INestApplication, Post } from '@nestjs/common';
import { APP_FILTER, HttpAdapterHost } from '@nestjs/core';
import { FastifyAdapter, type NestFastifyApplication } from '@nestjs/platform-fastify';
import { Test } from '@nestjs/testing';
import { createServer } from 'node:net';
import {
  InjectRateLimiter,
  LlmRateLimiterModule,
  type LlmRateLimiterModuleOptions,
  LlmRateLimitExceptionFilter,
  type RateLimiter,
} from '../../../lib/index.js';
import { listen, recordingNestLogger } from '../../support/nest.js';
import { redisUrl, uniquePrefix } from '../../support/redis.js';

@Controller()
class ChatController {
  constructor(@InjectRateLimiter('gpt-4o') private readonly limiter: RateLimiter) {}

  @Post('chat')
  @HttpCode(200)
  async chat(@Body() body: { tokens: number }) {
    const { recordId } = await this.limiter.acquire({ tokens: body.tokens }, { maxWaitMs: 0 });
    return { recordId };
  }

  @Post('bad-request')
  badRequest(): never {
    throw new BadRequestException('prompt is missing');
  }

  @Post('broken')
  broken(): never {
    throw new Error('a bug of the application');
  }
}

/** A loopback port nobody listens on. */
async function closedPort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as { port: number };
  await new Promise<void>((resolve) => server.close(() => resolve()));
  return port;
}

const post = (url: string, path: string, body: unknown = {}) =>
  fetch(`${url}/${path}`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) });

describe('LlmRateLimitExceptionFilter over HTTP', () => {
  let app: INestApplication | undefined;
  afterEach(async () => {
    await app?.close();
    app = undefined;
  });

  async function start(
    options: Partial<LlmRateLimiterModuleOptions>,
    filter: 'provider' | 'global' | 'fastify' = 'provider',
  ): Promise<string> {
    const root = LlmRateLimiterModule.forRoot({
      redis: { url: redisUrl() },
      keyPrefix: uniquePrefix(),
      models: { 'gpt-4o': { tpm: 1000, rpm: 1, windowSeconds: 60 } },
      ...options,
    });
    if (filter === 'provider') {
      const providers = [{ provide: APP_FILTER, useClass: LlmRateLimitExceptionFilter }];
      const started = await listen({ imports: [root], controllers: [ChatController], providers }, recordingNestLogger());
      app = started.app;
      return started.url;
    }
    if (filter === 'fastify') {
      const moduleRef = await Test.createTestingModule({
        imports: [root],
        controllers: [ChatController],
        providers: [{ provide: APP_FILTER, useClass: LlmRateLimitExceptionFilter }],
      }).compile();
      app = moduleRef.createNestApplication<NestFastifyApplication>(new FastifyAdapter(), { logger: false });
      await app.listen(0, '127.0.0.1');
      return app.getUrl();
    }
    const moduleRef = await Test.createTestingModule({ imports: [root], controllers: [ChatController] }).compile();
    app = moduleRef.createNestApplication({ logger: false });
    app.useGlobalFilters(new LlmRateLimitExceptionFilter(app.get(HttpAdapterHost)));
    await app.listen(0, '127.0.0.1');
    return app.getUrl();
  }

  it('answers a request the limiter cannot admit in time with 429 and Retry-After from its estimate', async () => {
    const url = await start({});
    expect((await post(url, 'chat', { tokens: 10 })).status).toBe(200);
    const refused = await post(url, 'chat', { tokens: 10 });
    expect(refused.status).toBe(429);
    expect(refused.headers.get('content-type')).toMatch(/^application\/json/);
    const retryAfter = Number(refused.headers.get('retry-after'));
    // rpm 1 over 60 s: the next slot is when the first call leaves the window, within 60 s.
    expect(Number.isInteger(retryAfter)).toBe(true);
    expect(retryAfter).toBeGreaterThanOrEqual(1);
    expect(retryAfter).toBeLessThanOrEqual(60);
    const body = (await refused.json()) as Record<string, unknown>;
    expect(body).toMatchObject({ statusCode: 429, error: 'Too Many Requests', retryAfterSeconds: retryAfter });
    expect(body.message).toContain('gpt-4o cannot admit this request within maxWaitMs (0)');
  });

  it('answers a request larger than a whole window allows with 413, naming the limit', async () => {
    const url = await start({});
    const response = await post(url, 'chat', { tokens: 999_999 });
    expect(response.status).toBe(413);
    expect(response.headers.get('retry-after')).toBeNull();
    expect(await response.json()).toMatchObject({
      statusCode: 413,
      error: 'Payload Too Large',
      limit: { name: 'tpm', requested: 999_999, allowed: 1000 },
    });
  });

  it('answers with 503 when Redis is unavailable and failureMode is closed, without the Redis address', async () => {
    const port = await closedPort();
    const url = await start({
      redis: { host: '127.0.0.1', port, connectTimeoutMs: 200 },
      failureMode: 'closed',
      verifyOnStartup: false,
      retryConfig: { maxRetries: 0 },
    });
    const response = await post(url, 'chat', { tokens: 10 });
    expect(response.status).toBe(503);
    const body = (await response.json()) as { statusCode: number; message: string };
    expect(body.statusCode).toBe(503);
    expect(body.message).toContain('failureMode: closed');
    expect(body.message).not.toContain(String(port));
  });

  it("leaves other errors to Nest's own handling", async () => {
    const url = await start({});
    const badRequest = await post(url, 'bad-request');
    expect(badRequest.status).toBe(400);
    expect(await badRequest.json()).toMatchObject({ statusCode: 400, message: 'prompt is missing' });
    expect((await post(url, 'broken')).status).toBe(500);
  });

  it('works registered with app.useGlobalFilters() as well', async () => {
    const url = await start({}, 'global');
    expect((await post(url, 'chat', { tokens: 999_999 })).status).toBe(413);
  });

  it('answers the same way on Fastify', async () => {
    const url = await start({}, 'fastify');
    expect((await post(url, 'chat', { tokens: 10 })).status).toBe(200);
    const refused = await post(url, 'chat', { tokens: 10 });
    expect(refused.status).toBe(429);
    expect(Number(refused.headers.get('retry-after'))).toBeGreaterThanOrEqual(1);
    expect(await refused.json()).toMatchObject({ statusCode: 429, retryAfterSeconds: Number(refused.headers.get('retry-after')) });
    const tooLarge = await post(url, 'chat', { tokens: 999_999 });
    expect(tooLarge.status).toBe(413);
    expect(await tooLarge.json()).toMatchObject({ statusCode: 413, limit: { name: 'tpm' } });
  });
});
