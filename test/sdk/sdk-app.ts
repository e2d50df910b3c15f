import Anthropic from '@anthropic-ai/sdk';
import { GoogleGenAI } from '@google/genai';
import { Injectable } from '@nestjs/common';
import type { TestingModule } from '@nestjs/testing';
import OpenAI from 'openai';
import { LlmRateLimiterModule, type RateLimiterEvent, RateLimiterRegistry, RateLimitLlm } from '../../lib/index.js';
import { initModule, recordingNestLogger } from '../support/nest.js';
import { MODELS } from './fixtures.js';
import { redisUrl, uniquePrefix } from '../support/redis.js';

/** The SDK clients the services call, each with the SDK's default retries. */
export interface Clients {
  openai: OpenAI;
  anthropic: Anthropic;
  gemini: GoogleGenAI;
}

@Injectable()
export class LlmService {
  clients!: Clients;

  @RateLimitLlm({ model: 'gpt-4o' })
  complete(body: OpenAI.Chat.ChatCompletionCreateParamsNonStreaming) {
    return this.clients.openai.chat.completions.create(body);
  }

  @RateLimitLlm({ model: 'gpt-4o' })
  streamed(body: OpenAI.Chat.ChatCompletionCreateParamsStreaming) {
    return this.clients.openai.chat.completions.create(body);
  }

  @RateLimitLlm({ model: 'gpt-4o' })
  helper(body: Omit<OpenAI.Chat.ChatCompletionCreateParamsNonStreaming, 'stream'>) {
    return this.clients.openai.chat.completions.stream(body);
  }

  @RateLimitLlm({ model: 'gpt-4o-counted' })
  counted(body: OpenAI.Chat.ChatCompletionCreateParamsNonStreaming) {
    return this.clients.openai.chat.completions.create(body);
  }

  @RateLimitLlm({ model: 'text-embedding-3-small' })
  embed(body: OpenAI.EmbeddingCreateParams) {
    return this.clients.openai.embeddings.create(body);
  }

  @RateLimitLlm({ model: 'gpt-4o' })
  listModels() {
    return this.clients.openai.models.list();
  }

  @RateLimitLlm({ model: 'claude' })
  message(body: Anthropic.MessageCreateParamsNonStreaming) {
    return this.clients.anthropic.messages.create(body);
  }

  @RateLimitLlm({ model: 'claude' })
  messageStream(body: Anthropic.MessageCreateParamsNonStreaming) {
    return this.clients.anthropic.messages.stream(body);
  }

  @RateLimitLlm({ model: 'gemini' })
  generate(text: string) {
    return this.clients.gemini.models.generateContent({ model: 'gemini-2.5-flash', contents: text, config: { maxOutputTokens: 400 } });
  }

  @RateLimitLlm({ model: 'gemini' })
  generateStream(text: string) {
    return this.clients.gemini.models.generateContentStream({
      model: 'gemini-2.5-flash',
      contents: text,
      config: { maxOutputTokens: 400 },
    });
  }

  @RateLimitLlm({ model: 'gemini-embedding' })
  embedGemini(text: string) {
    return this.clients.gemini.models.embedContent({ model: 'gemini-embedding-001', contents: text });
  }
}

export interface SdkApp {
  moduleRef: TestingModule;
  service: LlmService;
  registry: RateLimiterRegistry;
  events: RateLimiterEvent[];
  logger: ReturnType<typeof recordingNestLogger>;
}

/** The module on Redis with the service; `clients` builds the SDK clients from the registry. */
export async function startSdkApp(clients: (registry: RateLimiterRegistry) => Clients, keyPrefix = uniquePrefix('sdk')): Promise<SdkApp> {
  const events: RateLimiterEvent[] = [];
  const logger = recordingNestLogger();
  const moduleRef = await initModule(
    {
      imports: [LlmRateLimiterModule.forRoot({ redis: { url: redisUrl() }, keyPrefix, models: MODELS, onEvent: (e) => events.push(e) })],
      providers: [LlmService],
    },
    logger,
  );
  const registry = moduleRef.get(RateLimiterRegistry);
  const service = moduleRef.get(LlmService);
  service.clients = clients(registry);
  return { moduleRef, service, registry, events, logger };
}

/** SDK clients pointed at the fake provider, with `fetch` when given (and default retries). */
export function sdkClients(url: string, fetch?: typeof globalThis.fetch): Clients {
  return {
    openai: new OpenAI({ apiKey: 'test', baseURL: `${url}/v1`, ...(fetch && { fetch }) }),
    anthropic: new Anthropic({ apiKey: 'test', baseURL: url, ...(fetch && { fetch }) }),
    // Without a fetch of its own, the Google SDK reaches for undici's global dispatcher, which
    // Jest's module sandbox does not expose; a plain pass-through fetch is the SDK's default path.
    gemini: new GoogleGenAI({
      apiKey: 'test',
      httpOptions: { baseUrl: url, fetch: fetch ?? ((input, init) => globalThis.fetch(input, init)) },
    }),
  };
}

export { CHAT, CLAUDE, MODELS } from './fixtures.js';
