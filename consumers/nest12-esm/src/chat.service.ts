import { Injectable } from '@nestjs/common';
import { RateLimitLlm } from 'nestjs-llm-rate-limiter';

/** Stands in for a provider SDK call: answers at once, with usage shaped as OpenAI reports it. */
@Injectable()
export class ChatService {
  @RateLimitLlm({ model: 'fake-model', tokens: (prompt: string) => prompt.length + 16, maxWaitMs: 200 })
  async complete(prompt: string) {
    return {
      object: 'chat.completion',
      choices: [{ message: { role: 'assistant', content: `echo: ${prompt}` } }],
      usage: { prompt_tokens: prompt.length, completion_tokens: 2, total_tokens: prompt.length + 2 },
    };
  }
}
