import { Injectable } from '@nestjs/common';
import { RateLimitLlm } from 'nestjs-llm-rate-limiter';
import { type ChatCompletion, type ChatCompletionChunk, type ChatRequest, FakeLlmProvider } from './fake-provider.js';

export const MODEL = 'fake-gpt';

/**
 * Calls the provider. Each method is limited by @RateLimitLlm: the request's messages and
 * max_tokens are reserved before the call, and the usage in the answer (or in the stream's
 * last chunk) is adjusted in after it.
 */
@Injectable()
export class ChatService {
  constructor(private readonly provider: FakeLlmProvider) {}

  @RateLimitLlm({ model: MODEL })
  complete(request: ChatRequest): Promise<ChatCompletion> {
    return this.provider.createChatCompletion(request);
  }

  @RateLimitLlm({ model: MODEL })
  stream(request: ChatRequest): Promise<AsyncIterable<ChatCompletionChunk>> {
    return this.provider.createChatCompletionStream({ ...request, stream: true, stream_options: { include_usage: true } });
  }

  /** The request a prompt becomes. */
  requestFor(prompt: string, maxTokens = 400): ChatRequest {
    return {
      model: MODEL,
      messages: [
        { role: 'system', content: 'You are a concise assistant.' },
        { role: 'user', content: prompt },
      ],
      max_tokens: maxTokens,
    };
  }
}
