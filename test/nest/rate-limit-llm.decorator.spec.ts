import { Injectable, Scope, SetMetadata } from '@nestjs/common';
import type { TestingModule } from '@nestjs/testing';
import {
  AcquireTimeoutError,
  LlmRateLimiterModule,
  type LlmRateLimiterModuleOptions,
  RateLimitConfigError,
  type RateLimiterEvent,
  RateLimiterRegistry,
  RateLimitLlm,
  RateLimitLlmNotBoundError,
  UnknownModelError,
} from '../../lib/index.js';
import {
  anthropicMessage,
  anthropicStreamEvents,
  generate,
  geminiResponse,
  geminiStreamChunks,
  openAiCompletion,
  openAiStreamChunks,
  ProviderHttpError,
  SdkStream,
} from '../support/llm-shapes.js';
import { initModule, recordingNestLogger } from '../support/nest.js';
import { redisUrl, uniquePrefix, waitFor } from '../support/redis.js';

/** Stands in for a provider SDK client: records each call and answers with what the test says. */
@Injectable()
class FakeSdk {
  readonly calls: { at: number; request: unknown }[] = [];
  answer: (request: any) => unknown = () => openAiCompletion(1, 1);

  create(request: unknown): unknown {
    this.calls.push({ at: Date.now(), request });
    return this.answer(request);
  }
}

@Injectable()
class ChatService {
  constructor(readonly sdk: FakeSdk) {}

  @RateLimitLlm({ model: 'gpt-4o' })
  complete(request: object): Promise<any> {
    return Promise.resolve(this.sdk.create(request));
  }

  @RateLimitLlm({ model: 'gpt-4o' })
  stream(request: object): Promise<AsyncIterable<any>> {
    return Promise.resolve(this.sdk.create(request) as AsyncIterable<any>);
  }

  @RateLimitLlm<[object], Promise<AsyncIterable<{ n: number }>>>({ model: 'gpt-4o', usage: (chunk) => ({ output: chunk.n }) })
  counted(request: object): Promise<AsyncIterable<{ n: number }>> {
    return Promise.resolve(this.sdk.create(request) as AsyncIterable<{ n: number }>);
  }

  @RateLimitLlm({ model: 'gpt-4o' })
  async *streamText(request: object): AsyncGenerator<string> {
    for await (const chunk of this.sdk.create(request) as AsyncIterable<string>) yield chunk;
  }

  @RateLimitLlm({ model: 'split' })
  gemini(request: object): Promise<any> {
    return Promise.resolve(this.sdk.create(request));
  }

  @RateLimitLlm({ model: 'paced' })
  paced(): Promise<any> {
    return Promise.resolve(this.sdk.create({ prompt: 'hi', max_tokens: 1 }));
  }

  @RateLimitLlm({ model: 'paced', maxWaitMs: 0 })
  pacedOrFail(): Promise<any> {
    return Promise.resolve(this.sdk.create({ prompt: 'hi', max_tokens: 1 }));
  }

  @RateLimitLlm<[string, number], { words: number }>({
    model: 'gpt-4o',
    inputTokens: (prompt) => prompt.split(' ').length,
    outputTokens: (_, maxWords) => maxWords,
    usage: (result) => ({ output: result.words }),
  })
  summarise(prompt: string, maxWords: number): Promise<{ words: number }> {
    return Promise.resolve(this.sdk.create({ prompt, maxWords }) as { words: number });
  }

  @RateLimitLlm({ model: 'gpt-4o', tokens: (n: number) => n })
  byCount(n: number): Promise<string> {
    return Promise.resolve(String(this.sdk.create({ n })));
  }

  @SetMetadata('role', 'admin')
  @RateLimitLlm({ model: 'gpt-4o' })
  labelled(): Promise<string> {
    return Promise.resolve('x');
  }
}

const models = {
  'gpt-4o': { tpm: 100_000, rpm: 1000 },
  split: { inputTpm: 100_000, outputTpm: 10_000 },
  paced: { rpm: 2, windowSeconds: 1 },
} satisfies LlmRateLimiterModuleOptions['models'];

const backends = [
  ['memory', () => ({})],
  ['redis', () => ({ redis: { url: redisUrl() } })],
] as const;

describe.each(backends)('@RateLimitLlm on a service method (%s)', (_, backendOptions) => {
  let moduleRef: TestingModule;
  let chat: ChatService;
  let sdk: FakeSdk;
  let registry: RateLimiterRegistry;
  let events: RateLimiterEvent[];
  let logger: ReturnType<typeof recordingNestLogger>;

  beforeEach(async () => {
    events = [];
    logger = recordingNestLogger();
    moduleRef = await initModule(
      {
        imports: [LlmRateLimiterModule.forRoot({ ...backendOptions(), keyPrefix: uniquePrefix(), models, onEvent: (e) => events.push(e) })],
        providers: [FakeSdk, ChatService],
      },
      logger,
    );
    chat = moduleRef.get(ChatService);
    sdk = moduleRef.get(FakeSdk);
    registry = moduleRef.get(RateLimiterRegistry);
  });
  afterEach(() => moduleRef.close());

  const status = (model = 'gpt-4o') => registry.get(model).getStatus();

  it('spaces calls so that no window holds more than the limit', async () => {
    const usedAtCall: number[] = [];
    sdk.answer = () => status('paced').then((s) => (usedAtCall.push(s.requestsUsed), openAiCompletion(1, 1)));
    await Promise.all([chat.paced(), chat.paced(), chat.paced(), chat.paced()]);
    const acquired = events.filter((e) => e.type === 'acquired' && e.model === 'paced') as Extract<
      RateLimiterEvent,
      { type: 'acquired' }
    >[];
    // rpm 2 per 1 s window: two calls go at once, two wait for the next window...
    expect(acquired.filter((e) => e.waitMs === 0)).toHaveLength(2);
    expect(acquired.filter((e) => e.waitMs > 0)).toHaveLength(2);
    // ...and whenever a call reaches the provider, its window holds at most 2 requests, itself included.
    expect(usedAtCall).toHaveLength(4);
    expect(Math.max(...usedAtCall)).toBeLessThanOrEqual(2);
  });

  it('reserves the estimate before the call: the request text plus its output cap', async () => {
    let during: Awaited<ReturnType<typeof status>> | undefined;
    sdk.answer = () => status().then((s) => ((during = s), openAiCompletion(10, 5)));
    await chat.complete({ model: 'gpt-4o', messages: [{ role: 'user', content: 'x'.repeat(400) }], max_tokens: 300 });
    // 3 per request + 4 per message + 400 characters / 4, then 300 of output.
    expect(during).toMatchObject({ tokensUsed: 3 + 4 + 100 + 300, requestsUsed: 1 });
  });

  it('adjusts to the usage of an OpenAI chat completion', async () => {
    sdk.answer = () => openAiCompletion(120, 30);
    const result = await chat.complete({ messages: [{ role: 'user', content: 'x'.repeat(4000) }], max_tokens: 2000 });
    expect(result.usage.total_tokens).toBe(150);
    expect(await status()).toMatchObject({ tokensUsed: 150, inputTokensUsed: 120, outputTokensUsed: 30, requestsUsed: 1 });
  });

  it('adjusts to the usage of an Anthropic message, cache reads and writes included', async () => {
    sdk.answer = () => anthropicMessage({ input: 10, output: 20, cacheRead: 100, cacheWrite: 5 });
    await chat.complete({ system: 'be brief', messages: [{ role: 'user', content: 'hello' }], max_tokens: 1000 });
    expect(await status()).toMatchObject({ tokensUsed: 135, outputTokensUsed: 20 });
  });

  it('adjusts input and output apart to the usage of a Gemini response', async () => {
    sdk.answer = () => geminiResponse(30, 12);
    await chat.gemini({ contents: 'x'.repeat(1000), config: { maxOutputTokens: 500 } });
    expect(await status('split')).toMatchObject({ inputTokensUsed: 30, outputTokensUsed: 12 });
  });

  it('adjusts a streamed OpenAI completion when the stream ends, from its include_usage chunk', async () => {
    sdk.answer = () => generate(openAiStreamChunks(['Hel', 'lo'], { input: 40, output: 2 }));
    const stream = await chat.stream({ messages: [{ role: 'user', content: 'hi' }], max_tokens: 500, stream: true });
    const before = await status();
    expect(before.outputTokensUsed).toBe(500);
    let text = '';
    for await (const chunk of stream) text += chunk.choices[0]?.delta.content ?? '';
    expect(text).toBe('Hello');
    expect(await status()).toMatchObject({ tokensUsed: 42, outputTokensUsed: 2 });
  });

  it('adjusts a streamed Anthropic message from message_start and message_delta, keeping the SDK stream object', async () => {
    const sdkStream = new SdkStream(anthropicStreamEvents(25, ['a', 'b'], 7));
    sdk.answer = () => sdkStream;
    const stream = await chat.stream({ system: 's', messages: [{ role: 'user', content: 'hi' }], max_tokens: 900, stream: true });
    expect(stream).toBe(sdkStream);
    const types: string[] = [];
    for await (const event of stream) types.push(event.type);
    expect(types[0]).toBe('message_start');
    expect(await status()).toMatchObject({ tokensUsed: 32, outputTokensUsed: 7 });
  });

  it("adjusts a streamed Gemini response from its last chunk's usageMetadata", async () => {
    sdk.answer = () => generate(geminiStreamChunks(11, ['Hel', 'lo', '!'], [1, 2, 3]));
    const stream = await chat.gemini({ contents: 'hi', config: { maxOutputTokens: 400 } });
    for await (const _ of stream);
    expect(await status('split')).toMatchObject({ inputTokensUsed: 11, outputTokensUsed: 3 });
  });

  it('settles a stream the consumer stops early from what it saw: reported input, output estimated from the text', async () => {
    sdk.answer = () => generate(anthropicStreamEvents(25, ['x'.repeat(40), 'y'.repeat(40), 'z'.repeat(40)], 30));
    const stream = await chat.stream({ system: 's', messages: [{ role: 'user', content: 'hi' }], max_tokens: 900 });
    for await (const event of stream) {
      if (event.type === 'content_block_delta') break;
    }
    // message_start said 25 input tokens; 40 characters of text had arrived = 10 tokens.
    expect(await status()).toMatchObject({ inputTokensUsed: 25, outputTokensUsed: 10, requestsUsed: 1 });
  });

  it("reads a stream's usage with a usage function, called with each chunk", async () => {
    sdk.answer = () => generate([{ n: 1 }, { n: 5 }]);
    for await (const _ of await chat.counted({ messages: [], max_tokens: 50 }));
    expect((await status()).outputTokensUsed).toBe(5);
  });

  it('limits an async generator method from its first next(), settling when it finishes', async () => {
    sdk.answer = () => generate(['abcd', 'efgh', 'ijkl']);
    const generator = chat.streamText({ messages: [{ role: 'user', content: 'x'.repeat(40) }], max_tokens: 100 });
    expect((await status()).requestsUsed).toBe(0);
    const pieces: string[] = [];
    for await (const piece of generator) pieces.push(piece);
    expect(pieces.join('')).toBe('abcdefghijkl');
    // No usage events: the output is estimated from 12 characters of text; the input estimate stays.
    expect(await status()).toMatchObject({ inputTokensUsed: 3 + 4 + 10, outputTokensUsed: 3 });
  });

  it('takes the reservation from tokens/inputTokens/outputTokens functions and the usage from a usage function', async () => {
    let during: Awaited<ReturnType<typeof status>> | undefined;
    sdk.answer = () => status().then((s) => ((during = s), { words: 7 }));
    await chat.summarise('four words of prompt', 50);
    expect(during).toMatchObject({ inputTokensUsed: 4, outputTokensUsed: 50 });
    expect(await status()).toMatchObject({ inputTokensUsed: 4, outputTokensUsed: 7 });

    sdk.answer = () => 'plain';
    await chat.byCount(25);
    expect((await status()).tokensUsed).toBe(4 + 7 + 25);
    expect(logger.lines.some((l) => l.level === 'warn' && /ChatService.byCount: the result carries no usage/.test(l.message))).toBe(true);
  });

  it('releases the reservation when the call throws before reaching the provider', async () => {
    sdk.answer = () => {
      throw new TypeError('fetch failed');
    };
    await expect(chat.complete({ messages: [], max_tokens: 10 })).rejects.toThrow('fetch failed');
    expect(await status()).toMatchObject({ tokensUsed: 0, requestsUsed: 0 });
    expect(events.some((e) => e.type === 'released')).toBe(true);
  });

  it('releases the reservation when a stream fails before its first chunk', async () => {
    sdk.answer = () =>
      // eslint-disable-next-line require-yield -- a stream that fails before its first chunk
      (async function* () {
        throw new Error('connection reset');
      })();
    const stream = await chat.stream({ messages: [], max_tokens: 10 });
    await expect(async () => {
      for await (const _ of stream);
    }).rejects.toThrow('connection reset');
    expect((await status()).requestsUsed).toBe(0);
  });

  it('on a 429 from the provider, gives the reservation back and pauses admissions', async () => {
    sdk.answer = () => Promise.reject(new ProviderHttpError(429, { 'retry-after': '2' }));
    await expect(chat.complete({ messages: [], max_tokens: 10 })).rejects.toThrow(ProviderHttpError);
    const after = await status();
    expect(after.requestsUsed).toBe(0);
    expect(after.pausedUntil).toBeGreaterThan(Date.now());
  });

  it('acquires once per call, however many calls run at once', async () => {
    await Promise.all(Array.from({ length: 5 }, () => chat.complete({ messages: [], max_tokens: 1 })));
    expect(events.filter((e) => e.type === 'acquired')).toHaveLength(5);
    expect(events.filter((e) => e.type === 'adjusted')).toHaveLength(5);
    expect(sdk.calls).toHaveLength(5);
  });

  it('rejects with AcquireTimeoutError, without calling the provider, when the slot is further than maxWaitMs', async () => {
    await chat.pacedOrFail();
    await chat.pacedOrFail();
    await expect(chat.pacedOrFail()).rejects.toThrow(AcquireTimeoutError);
    expect(sdk.calls).toHaveLength(2);
  });
});

describe('@RateLimitLlm wiring', () => {
  const quiet = () => recordingNestLogger();

  it('keeps the method name and the metadata of decorators applied before it', () => {
    expect(ChatService.prototype.labelled.name).toBe('labelled');
    expect(Reflect.getMetadata('role', ChatService.prototype.labelled)).toBe('admin');
  });

  it('refuses a call on an instance Nest did not create, rather than skipping the limit', async () => {
    const sdk = new FakeSdk();
    const chat = new ChatService(sdk);
    await expect(chat.complete({})).rejects.toThrow(RateLimitLlmNotBoundError);
    await expect(chat.complete({})).rejects.toThrow('ChatService.complete is decorated with @RateLimitLlm() but no limiter is bound');
    expect(sdk.calls).toHaveLength(0);
  });

  it('refuses a call made without the instance', async () => {
    const detached = ChatService.prototype.complete;
    await expect(detached({})).rejects.toThrow('it was called without its instance');
  });

  it('uses the only configured model when none is named', async () => {
    @Injectable()
    class OneModel {
      @RateLimitLlm()
      run(prompt: string) {
        return Promise.resolve(openAiCompletion(prompt.length, 1));
      }
    }
    const moduleRef = await initModule(
      { imports: [LlmRateLimiterModule.forRoot({ models: { only: { tpm: 10_000 } } })], providers: [OneModel] },
      quiet(),
    );
    await moduleRef.get(OneModel).run('abc');
    expect((await moduleRef.get(RateLimiterRegistry).get('only').getStatus()).tokensUsed).toBe(4);
    await moduleRef.close();
  });

  it('fails the bootstrap on a model that is not configured', async () => {
    @Injectable()
    class Typo {
      @RateLimitLlm({ model: 'gpt-4' })
      run() {
        return Promise.resolve();
      }
    }
    const bootstrap = initModule(
      { imports: [LlmRateLimiterModule.forRoot({ models: { 'gpt-4o': { tpm: 1 } } })], providers: [Typo] },
      quiet(),
    );
    await expect(bootstrap).rejects.toThrow(UnknownModelError);
    await expect(
      initModule({ imports: [LlmRateLimiterModule.forRoot({ models: { 'gpt-4o': { tpm: 1 } } })], providers: [Typo] }, quiet()),
    ).rejects.toThrow('@RateLimitLlm() on Typo.run: no rate limiter is configured for model "gpt-4"; configured models: "gpt-4o"');
  });

  it('fails the bootstrap when no model is named and several are configured', async () => {
    @Injectable()
    class Unnamed {
      @RateLimitLlm()
      run() {
        return Promise.resolve();
      }
    }
    await expect(
      initModule({ imports: [LlmRateLimiterModule.forRoot({ models: { a: { tpm: 1 }, b: { tpm: 1 } } })], providers: [Unnamed] }, quiet()),
    ).rejects.toThrow(
      '@RateLimitLlm() on Unnamed.run needs a model, since several are configured (a, b); for example @RateLimitLlm({ model: "a" })',
    );
  });

  it('refuses bad options when the class is defined', () => {
    expect(() => {
      class Bad {
        @RateLimitLlm({ model: 'm', tokens: () => 1, inputTokens: () => 1 })
        run() {}
      }
      return Bad;
    }).toThrow(new RateLimitConfigError('@RateLimitLlm() on Bad.run: give either tokens or inputTokens/outputTokens, not both'));
    expect(() => {
      class Twice {
        @RateLimitLlm({ model: 'm' })
        @RateLimitLlm({ model: 'm' })
        run() {}
      }
      return Twice;
    }).toThrow('@RateLimitLlm() is applied to Twice.run twice');
  });

  it('warns at bootstrap that a request-scoped provider cannot be bound', async () => {
    @Injectable({ scope: Scope.REQUEST })
    class PerRequest {
      @RateLimitLlm()
      run() {
        return Promise.resolve();
      }
    }
    const logger = quiet();
    const moduleRef = await initModule(
      { imports: [LlmRateLimiterModule.forRoot({ models: { m: { rpm: 10 } } })], providers: [PerRequest] },
      logger,
    );
    expect(logger.lines).toContainEqual(
      expect.objectContaining({
        level: 'warn',
        message: expect.stringMatching(/^PerRequest\.run: PerRequest is request-scoped, so its @RateLimitLlm\(\) methods cannot be bound/),
      }),
    );
    await moduleRef.close();
  });

  it('limits a method a subclass inherits, and one it reaches through super', async () => {
    @Injectable()
    class Base {
      @RateLimitLlm()
      ask() {
        return Promise.resolve(openAiCompletion(1, 1));
      }
    }
    @Injectable()
    class Derived extends Base {
      override ask() {
        return super.ask();
      }
    }
    const moduleRef = await initModule(
      { imports: [LlmRateLimiterModule.forRoot({ models: { m: { rpm: 10 } } })], providers: [Derived] },
      quiet(),
    );
    await moduleRef.get(Derived).ask();
    expect((await moduleRef.get(RateLimiterRegistry).get('m').getStatus()).requestsUsed).toBe(1);
    await moduleRef.close();
  });
});

describe('two application instances sharing one Redis', () => {
  it('share the limits of a model', async () => {
    const keyPrefix = uniquePrefix();
    const start = () =>
      initModule(
        { imports: [LlmRateLimiterModule.forRoot({ redis: { url: redisUrl() }, keyPrefix, models })], providers: [FakeSdk, ChatService] },
        recordingNestLogger(),
      );
    const [a, b] = await Promise.all([start(), start()]);
    try {
      await a.get(ChatService).pacedOrFail();
      await b.get(ChatService).pacedOrFail();
      // rpm 2 is spent between them: a third call through either waits, so maxWaitMs 0 refuses it.
      await expect(a.get(ChatService).pacedOrFail()).rejects.toThrow(AcquireTimeoutError);
      await expect(b.get(ChatService).pacedOrFail()).rejects.toThrow(AcquireTimeoutError);
      expect((await b.get(RateLimiterRegistry).get('paced').getStatus()).requestsUsed).toBe(2);
      // Each instance's calls ran under its own application's limiter.
      expect(a.get(FakeSdk).calls).toHaveLength(1);
      expect(b.get(FakeSdk).calls).toHaveLength(1);
      await waitFor(async () => (await a.get(RateLimiterRegistry).get('paced').getStatus()).requestsUsed === 0, 5000, 'the window to pass');
      await a.get(ChatService).pacedOrFail();
    } finally {
      await Promise.all([a.close(), b.close()]);
    }
  });
});
