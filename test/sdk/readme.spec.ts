import { Injectable, Module } from '@nestjs/common';
import type { TestingModule } from '@nestjs/testing';
import OpenAI from 'openai';
import { createLimitedFetch, LlmRateLimiterModule, RateLimiterRegistry, RateLimitLlm } from '../../lib/index.js';
import { initModule } from '../support/nest.js';
import { redisUrl, uniquePrefix, waitFor } from '../support/redis.js';
import { FakeProvider } from './fake-provider.js';

// The README's quick start as written, the SDK finding the fake provider through its own
// OPENAI_BASE_URL and OPENAI_API_KEY variables.
@Injectable()
class ChatService {
  private readonly openai: OpenAI;

  constructor(limiters: RateLimiterRegistry) {
    this.openai = new OpenAI({ fetch: createLimitedFetch({ limiter: limiters }) });
  }

  @RateLimitLlm({ model: 'gpt-4o' })
  complete(body: OpenAI.Chat.ChatCompletionCreateParamsNonStreaming) {
    return this.openai.chat.completions.create(body);
  }
}

describe("the README's quick start", () => {
  let fake: FakeProvider;
  let moduleRef: TestingModule;
  const saved = { base: process.env.OPENAI_BASE_URL, key: process.env.OPENAI_API_KEY };

  beforeAll(async () => {
    fake = new FakeProvider();
    process.env.OPENAI_BASE_URL = `${await fake.start()}/v1`;
    process.env.OPENAI_API_KEY = 'test';
    @Module({
      imports: [
        LlmRateLimiterModule.forRoot({
          redis: { url: redisUrl() },
          keyPrefix: uniquePrefix('readme'),
          models: {
            'gpt-4o': { tpm: 30_000, rpm: 500, provider: 'openai' },
            'claude-sonnet': { inputTpm: 40_000, outputTpm: 8_000, rpm: 50, provider: 'anthropic' },
          },
        }),
      ],
      providers: [ChatService],
    })
    class AppModule {}
    moduleRef = await initModule({ imports: [AppModule] });
  });

  afterAll(async () => {
    await moduleRef.close();
    await fake.stop();
    process.env.OPENAI_BASE_URL = saved.base;
    process.env.OPENAI_API_KEY = saved.key;
  });

  it('limits a call, its retry after a 429, and keeps withResponse() and asResponse()', async () => {
    const chat = moduleRef.get(ChatService);
    const limiter = moduleRef.get(RateLimiterRegistry).get('gpt-4o');
    const body = { model: 'gpt-4o', messages: [{ role: 'user' as const, content: 'hello' }], max_tokens: 100 };
    fake.script.push('rate-limited');
    const { data } = await chat.complete(body).withResponse();
    expect(data.usage?.completion_tokens).toBe(fake.outputTokens);
    expect((await chat.complete(body).asResponse()).status).toBe(200);
    await waitFor(async () => (await limiter.getStatus()).requestsUsed === 3, 10_000, 'three attempts counted');
    expect(fake.hits).toHaveLength(3);
    // The 429 cut the limits for every process (its 30 ms pause is long over).
    expect((await limiter.getStatus()).limitFactor).toBeLessThan(1);
  });
});
