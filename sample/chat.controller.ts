import { Body, Controller, Get, HttpCode, Post, Query, Res } from '@nestjs/common';
import type { ServerResponse } from 'node:http';
import { InjectRateLimiter, type RateLimiter } from 'nestjs-llm-rate-limiter';
import { ChatService, MODEL } from './chat.service.js';
import { FakeLlmProvider } from './fake-provider.js';
import { StatsService } from './stats.service.js';

@Controller('chat')
export class ChatController {
  constructor(
    private readonly chat: ChatService,
    private readonly provider: FakeLlmProvider,
    private readonly stats: StatsService,
    @InjectRateLimiter(MODEL) private readonly limiter: RateLimiter,
  ) {}

  /** `POST /chat { "prompt": "...", "maxTokens": 400 }`: waits for its slot, then answers. */
  @Post()
  @HttpCode(200)
  async complete(@Body() body: { prompt?: string; maxTokens?: number }) {
    const started = Date.now();
    const completion = await this.chat.complete(this.chat.requestFor(body.prompt ?? 'Hello', body.maxTokens));
    return { answer: completion.choices[0].message.content, usage: completion.usage, tookMs: Date.now() - started };
  }

  /** `GET /chat/stream?prompt=...`: the answer as plain text, as the provider streams it. */
  @Get('stream')
  async stream(@Query('prompt') prompt: string | undefined, @Res() res: ServerResponse) {
    const chunks = await this.chat.stream(this.chat.requestFor(prompt ?? 'Hello', 60));
    res.setHeader('content-type', 'text/plain; charset=utf-8');
    for await (const chunk of chunks) {
      const text = chunk.choices[0]?.delta.content;
      if (text) res.write(text);
    }
    res.end('\n');
  }

  /** What the limiter and the fake provider counted. */
  @Get('stats')
  async statistics() {
    return {
      limiter: {
        backend: this.limiter.backend,
        status: await this.limiter.getStatus(),
        waitsMs: this.stats.waitsMs,
        degradedEvents: this.stats.degradedEvents,
      },
      provider: { limits: this.provider.limits, served: this.provider.served, rejected429: this.provider.rejected },
    };
  }
}
