import { Body, Controller, HttpCode, Post } from '@nestjs/common';
import type { INestApplication } from '@nestjs/common';
import { LlmRateLimiterModule, type RateLimiterEvent, RateLimiterRegistry, RateLimitLlm } from '../../lib/index.js';
import { openAiCompletion } from '../support/llm-shapes.js';
import { listen, recordingNestLogger } from '../support/nest.js';
import { redisUrl, uniquePrefix } from '../support/redis.js';

@Controller('chat')
class ChatController {
  calls = 0;

  // Route decorators on both sides of @RateLimitLlm: Nest must still find the route and its code.
  @Post()
  @RateLimitLlm({ model: 'gpt-4o' })
  @HttpCode(200)
  complete(@Body() body: { messages: { role: string; content: string }[]; max_tokens: number }) {
    this.calls++;
    return openAiCompletion(50, body.max_tokens / 2, `echo: ${body.messages.at(-1)?.content}`);
  }
}

describe('@RateLimitLlm on a controller route', () => {
  let app: INestApplication;
  let url: string;
  let events: RateLimiterEvent[];

  beforeEach(async () => {
    events = [];
    ({ app, url } = await listen(
      {
        imports: [
          LlmRateLimiterModule.forRoot({
            redis: { url: redisUrl() },
            keyPrefix: uniquePrefix(),
            models: { 'gpt-4o': { tpm: 10_000, rpm: 2, windowSeconds: 1 } },
            onEvent: (e) => events.push(e),
          }),
        ],
        controllers: [ChatController],
      },
      recordingNestLogger(),
    ));
  });
  afterEach(() => app.close());

  const post = (content: string) =>
    fetch(`${url}/chat`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ messages: [{ role: 'user', content }], max_tokens: 100 }),
    });

  it('limits calls that arrive over HTTP, and adjusts them to the usage in the response', async () => {
    const response = await post('hello');
    expect(response.status).toBe(200);
    expect(((await response.json()) as any).choices[0].message.content).toBe('echo: hello');
    const status = await app.get(RateLimiterRegistry).get('gpt-4o').getStatus();
    expect(status).toMatchObject({ requestsUsed: 1, tokensUsed: 100 });
    expect(app.get(ChatController).calls).toBe(1);
  });

  it('holds a request back until its slot comes, then serves it', async () => {
    const responses = await Promise.all([post('a'), post('b'), post('c')]);
    expect(responses.map((r) => r.status)).toEqual([200, 200, 200]);
    // rpm 2 per 1 s window: two were admitted at once, the third waited for the window.
    const waits = events.flatMap((e) => (e.type === 'acquired' ? [e.waitMs] : []));
    expect(waits.filter((w) => w === 0)).toHaveLength(2);
    expect(waits.filter((w) => w > 0)).toHaveLength(1);
    expect(app.get(ChatController).calls).toBe(3);
  });
});
