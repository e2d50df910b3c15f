import { Injectable } from '@nestjs/common';
import type { RateLimitConfig } from 'nestjs-llm-rate-limiter';

/** The fake provider's limits, which the app configures the limiter with too. */
export const FAKE_PROVIDER_LIMITS = { tpm: 6000, rpm: 20, windowSeconds: 5 } satisfies RateLimitConfig;

export interface ChatMessage {
  readonly role: 'system' | 'user' | 'assistant';
  readonly content: string;
}

/** A chat completion request, as OpenAI's chat.completions.create takes it. */
export interface ChatRequest {
  readonly model: string;
  readonly messages: readonly ChatMessage[];
  readonly max_tokens: number;
  readonly stream?: boolean;
  readonly stream_options?: { include_usage: boolean };
}

export interface ChatCompletion {
  readonly id: string;
  readonly object: 'chat.completion';
  readonly choices: { index: number; message: ChatMessage; finish_reason: 'stop' | 'length' }[];
  readonly usage: { prompt_tokens: number; completion_tokens: number; total_tokens: number };
}

export interface ChatCompletionChunk {
  readonly object: 'chat.completion.chunk';
  readonly choices: { index: number; delta: { content?: string } }[];
  readonly usage: ChatCompletion['usage'] | null;
}

/** What the fake answers when its limits are exceeded, shaped like the SDKs' API errors. */
export class FakeProviderError extends Error {
  constructor(
    readonly status: number,
    readonly headers: Record<string, string>,
    message: string,
  ) {
    super(message);
    this.name = 'FakeProviderError';
  }
}

interface Admitted {
  readonly at: number;
  tokens: number;
}

const WORDS = 'the a limiter window token request provider answer slot queue model every process shares one budget'.split(' ');

/**
 * An in-process stand-in for an LLM API: it enforces the same TPM/RPM the limiter is given, over
 * a sliding window of its own, and answers 429 when a request would exceed them, so the sample
 * shows whether the limiter kept every call within the limits. No network is involved.
 *
 * It counts as OpenAI does at admission (prompt tokens plus max_tokens) and then, once the
 * answer is known, the real usage (prompt plus completion), which the limiter adjusts to.
 */
@Injectable()
export class FakeLlmProvider {
  readonly limits = FAKE_PROVIDER_LIMITS;
  served = 0;
  rejected = 0;
  private readonly admitted: Admitted[] = [];

  /** A chat completion, after 20 to 60 ms of "generation". */
  async createChatCompletion(request: ChatRequest): Promise<ChatCompletion> {
    const { entry, promptTokens } = this.admit(request);
    await new Promise((resolve) => setTimeout(resolve, 20 + Math.random() * 40));
    const { text, tokens } = this.answer(request);
    entry.tokens = promptTokens + tokens;
    return {
      id: `chatcmpl-${this.served}`,
      object: 'chat.completion',
      choices: [
        { index: 0, message: { role: 'assistant', content: text }, finish_reason: tokens === request.max_tokens ? 'length' : 'stop' },
      ],
      usage: { prompt_tokens: promptTokens, completion_tokens: tokens, total_tokens: promptTokens + tokens },
    };
  }

  /** A streamed chat completion; the last chunk carries usage when `stream_options.include_usage` is set. */
  async createChatCompletionStream(request: ChatRequest): Promise<AsyncGenerator<ChatCompletionChunk>> {
    const { entry, promptTokens } = this.admit(request);
    const { text, tokens } = this.answer(request);
    entry.tokens = promptTokens + tokens;
    const words = text.split(/(?<= )/);
    return (async function* () {
      for (const word of words) {
        await new Promise((resolve) => setTimeout(resolve, 5));
        yield { object: 'chat.completion.chunk' as const, choices: [{ index: 0, delta: { content: word } }], usage: null };
      }
      if (request.stream_options?.include_usage) {
        yield {
          object: 'chat.completion.chunk' as const,
          choices: [],
          usage: { prompt_tokens: promptTokens, completion_tokens: tokens, total_tokens: promptTokens + tokens },
        };
      }
    })();
  }

  /** The fake's tokenizer: one token per 4 characters of message text. */
  promptTokensOf(request: ChatRequest): number {
    return Math.ceil(request.messages.reduce((n, m) => n + m.content.length, 0) / 4);
  }

  private admit(request: ChatRequest): { entry: Admitted; promptTokens: number } {
    const now = Date.now();
    const windowMs = this.limits.windowSeconds * 1000;
    while (this.admitted.length > 0 && this.admitted[0].at <= now - windowMs) this.admitted.shift();
    const promptTokens = this.promptTokensOf(request);
    const charge = promptTokens + request.max_tokens;
    const used = this.admitted.reduce((n, e) => n + e.tokens, 0);
    if (this.admitted.length + 1 > this.limits.rpm || used + charge > this.limits.tpm) {
      this.rejected++;
      const retryAfter = Math.max(1, Math.ceil((this.admitted[0].at + windowMs - now) / 1000));
      throw new FakeProviderError(
        429,
        { 'retry-after': String(retryAfter) },
        `429 Too Many Requests: ${this.admitted.length} requests and ${used} tokens in the last ${this.limits.windowSeconds} s; this one needs ${charge}`,
      );
    }
    const entry = { at: now, tokens: charge };
    this.admitted.push(entry);
    this.served++;
    return { entry, promptTokens };
  }

  private answer(request: ChatRequest): { text: string; tokens: number } {
    // Between a tenth of max_tokens and all of it; each word and its space is one token.
    const tokens = Math.max(1, Math.round(request.max_tokens * (0.1 + 0.9 * Math.random())));
    const words = Array.from({ length: tokens }, (_, i) => WORDS[(i * 7 + tokens) % WORDS.length]);
    return { text: words.join(' '), tokens };
  }
}
