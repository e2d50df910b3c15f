import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';

/** What the fake answers to the next requests, in order; then `ok` for ever. */
export type Reply = 'ok' | 'rate-limited' | 'billing' | 'server-error';

export interface Hit {
  readonly path: string;
  readonly at: number;
  readonly reply: Reply;
  /** The SDK's `x-stainless-retry-count`: 0 for a call's first attempt. */
  readonly retry: number;
}

type Json = Record<string, unknown>;

const WORDS = 'every attempt counts against one shared budget'.split(' ');

function textOf(value: unknown): string {
  if (typeof value === 'string') return value;
  if (Array.isArray(value)) return value.map(textOf).join(' ');
  if (value !== null && typeof value === 'object') return Object.values(value).map(textOf).join(' ');
  return '';
}

/**
 * An LLM provider on loopback that speaks the wire formats of OpenAI (chat completions, plain and
 * SSE, embeddings), Anthropic (messages, plain and SSE) and the Gemini API (generateContent,
 * streamGenerateContent?alt=sse, embedContent, batchEmbedContents), for the real SDKs to call. It reports usage
 * (one token per 4 characters of prompt; `outputTokens` words of answer), the rate-limit headers
 * of each provider (its own tokens spent plus `foreignTokens` taken from `tokenLimit`), 429s with
 * `retry-after-ms` in each provider's error body, and billing refusals.
 */
export class FakeProvider {
  readonly hits: Hit[] = [];
  /** Replies for the next requests, consumed in order. */
  readonly script: Reply[] = [];
  /** Tokens another consumer of the key has spent, reported in the remaining-tokens headers. */
  foreignTokens = 0;
  /** Every 429 (rate-limited) answer after the first is also this, while `persistent`. */
  persistent429 = false;
  /** The `retry-after-ms` of a rate-limited answer. */
  retryAfterMs = 30;
  readonly tokenLimit = 1_000_000;
  readonly outputTokens = 6;
  /** Called at each request, before it is answered. */
  onHit: (hit: Hit) => void = () => undefined;
  private spent = 0;
  private server?: Server;
  url = '';

  async start(): Promise<string> {
    this.server = createServer((req, res) => void this.handle(req, res));
    await new Promise<void>((resolve) => this.server!.listen(0, '127.0.0.1', resolve));
    this.url = `http://127.0.0.1:${(this.server.address() as AddressInfo).port}`;
    return this.url;
  }

  async stop(): Promise<void> {
    this.server?.closeAllConnections();
    await new Promise<void>((resolve) => (this.server ? this.server.close(() => resolve()) : resolve()));
  }

  hitsOf(reply: Reply): number {
    return this.hits.filter((h) => h.reply === reply).length;
  }

  private next(): Reply {
    if (this.persistent429) return 'rate-limited';
    return this.script.shift() ?? 'ok';
  }

  private async handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const chunks: Buffer[] = [];
    for await (const chunk of req) chunks.push(chunk as Buffer);
    const body = JSON.parse(Buffer.concat(chunks).toString('utf8') || '{}') as Json;
    const url = new URL(req.url ?? '/', 'http://fake');
    const reply = this.next();
    const hit = { path: url.pathname, at: Date.now(), reply, retry: Number(req.headers['x-stainless-retry-count'] ?? 0) };
    this.hits.push(hit);
    this.onHit(hit);
    const provider = url.pathname.startsWith('/v1/messages') ? 'anthropic' : url.pathname.includes('/models/') ? 'gemini' : 'openai';
    if (reply === 'server-error') {
      res.writeHead(500, { 'content-type': 'application/json', 'x-should-retry': 'false' });
      res.end(JSON.stringify({ error: { message: 'The server had an error', type: 'server_error' } }));
      return;
    }
    if (reply !== 'ok') return this.refuse(res, provider, reply);
    if (req.method === 'GET') {
      res.writeHead(200, { 'content-type': 'application/json' });
      res.end(JSON.stringify({ object: 'list', data: [{ id: 'gpt-4o', object: 'model', created: 1, owned_by: 'fake' }] }));
      return;
    }
    const input =
      Math.ceil(textOf(body.messages ?? body.input ?? body.contents ?? body.requests ?? '').length / 4) +
      Math.ceil(textOf(body.system ?? '').length / 4);
    const embedding = /embed/i.test(url.pathname);
    const output = embedding ? 0 : this.outputTokens;
    this.spent += input + output;
    const headers = this.limitHeaders(provider);
    const stream = body.stream === true || url.pathname.endsWith(':streamGenerateContent');
    if (stream) return this.sse(res, headers, this.events(provider, body, input));
    res.writeHead(200, { 'content-type': 'application/json', ...headers });
    res.end(JSON.stringify(this.answer(provider, url.pathname, body, input)));
  }

  private limitHeaders(provider: string): Record<string, string> {
    const remaining = String(Math.max(0, this.tokenLimit - this.spent - this.foreignTokens));
    if (provider === 'anthropic') {
      const reset = new Date(Date.now() + 60_000).toISOString();
      return {
        'anthropic-ratelimit-input-tokens-limit': String(this.tokenLimit),
        'anthropic-ratelimit-input-tokens-remaining': remaining,
        'anthropic-ratelimit-input-tokens-reset': reset,
      };
    }
    if (provider === 'gemini') return {};
    return {
      'x-ratelimit-limit-tokens': String(this.tokenLimit),
      'x-ratelimit-remaining-tokens': remaining,
      'x-ratelimit-reset-tokens': '6s',
    };
  }

  private refuse(res: ServerResponse, provider: string, reply: Reply): void {
    const rate = reply === 'rate-limited';
    const headers: Record<string, string> = { 'content-type': 'application/json' };
    if (rate)
      Object.assign(headers, { 'retry-after-ms': String(this.retryAfterMs), 'retry-after': String(Math.ceil(this.retryAfterMs / 1000)) });
    let status = 429;
    let body: Json;
    if (provider === 'anthropic') {
      if (!rate) status = 402;
      body = {
        type: 'error',
        error: { type: rate ? 'rate_limit_error' : 'billing_error', message: rate ? 'rate limit exceeded' : 'credit balance too low' },
      };
    } else if (provider === 'gemini') {
      body = { error: { code: 429, message: 'Resource has been exhausted', status: 'RESOURCE_EXHAUSTED' } };
    } else {
      body = rate
        ? { error: { message: 'Rate limit reached for requests', type: 'requests', param: null, code: 'rate_limit_exceeded' } }
        : {
            error: {
              message: 'You exceeded your current quota, please check your plan and billing details.',
              type: 'insufficient_quota',
              param: null,
              code: 'insufficient_quota',
            },
          };
    }
    res.writeHead(status, headers);
    res.end(JSON.stringify(body));
  }

  private answer(provider: string, path: string, body: Json, input: number): Json {
    const text = WORDS.slice(0, this.outputTokens).join(' ');
    const output = this.outputTokens;
    if (provider === 'anthropic') {
      return {
        id: 'msg_1',
        type: 'message',
        role: 'assistant',
        model: body.model,
        content: [{ type: 'text', text }],
        stop_reason: 'end_turn',
        stop_sequence: null,
        usage: { input_tokens: input, output_tokens: output, cache_read_input_tokens: 0, cache_creation_input_tokens: 0 },
      };
    }
    if (provider === 'gemini') {
      if (path.endsWith(':embedContent')) return { embedding: { values: [0.1, 0.2, 0.3] } };
      // The SDK's embedContent sends every text through batchEmbedContents.
      if (path.endsWith(':batchEmbedContents')) return { embeddings: [{ values: [0.1, 0.2, 0.3] }] };
      return {
        candidates: [{ content: { role: 'model', parts: [{ text }] }, finishReason: 'STOP', index: 0 }],
        usageMetadata: { promptTokenCount: input, candidatesTokenCount: output, totalTokenCount: input + output },
      };
    }
    if (path.endsWith('/embeddings')) {
      return {
        object: 'list',
        model: body.model,
        data: [{ object: 'embedding', index: 0, embedding: [0.1, 0.2, 0.3] }],
        usage: { prompt_tokens: input, total_tokens: input },
      };
    }
    return {
      id: 'chatcmpl-1',
      object: 'chat.completion',
      created: 1,
      model: body.model,
      choices: [{ index: 0, message: { role: 'assistant', content: text, refusal: null }, finish_reason: 'stop', logprobs: null }],
      usage: { prompt_tokens: input, completion_tokens: output, total_tokens: input + output },
    };
  }

  /** The SSE events of a streamed answer, `event` names included where the provider sends them. */
  private events(provider: string, body: Json, input: number): { event?: string; data: unknown }[] {
    const words = WORDS.slice(0, this.outputTokens);
    const output = this.outputTokens;
    if (provider === 'anthropic') {
      const message = {
        id: 'msg_1',
        type: 'message',
        role: 'assistant',
        model: body.model,
        content: [],
        stop_reason: null,
        stop_sequence: null,
        usage: { input_tokens: input, output_tokens: 1 },
      };
      return [
        { event: 'message_start', data: { type: 'message_start', message } },
        { event: 'content_block_start', data: { type: 'content_block_start', index: 0, content_block: { type: 'text', text: '' } } },
        ...words.map((w, i) => ({
          event: 'content_block_delta',
          data: { type: 'content_block_delta', index: 0, delta: { type: 'text_delta', text: i === 0 ? w : ` ${w}` } },
        })),
        { event: 'content_block_stop', data: { type: 'content_block_stop', index: 0 } },
        {
          event: 'message_delta',
          data: { type: 'message_delta', delta: { stop_reason: 'end_turn', stop_sequence: null }, usage: { output_tokens: output } },
        },
        { event: 'message_stop', data: { type: 'message_stop' } },
      ];
    }
    if (provider === 'gemini') {
      return words.map((w, i) => ({
        data: {
          candidates: [
            {
              content: { role: 'model', parts: [{ text: i === 0 ? w : ` ${w}` }] },
              index: 0,
              ...(i === words.length - 1 ? { finishReason: 'STOP' } : {}),
            },
          ],
          usageMetadata: {
            promptTokenCount: input,
            ...(i === words.length - 1 ? { candidatesTokenCount: output, totalTokenCount: input + output } : {}),
          },
        },
      }));
    }
    const includeUsage = (body.stream_options as Json | undefined)?.include_usage === true;
    const chunk = (delta: Json, finish: string | null) => ({
      id: 'chatcmpl-1',
      object: 'chat.completion.chunk',
      created: 1,
      model: body.model,
      choices: [{ index: 0, delta, finish_reason: finish, logprobs: null }],
    });
    return [
      { data: chunk({ role: 'assistant', content: '' }, null) },
      ...words.map((w, i) => ({ data: chunk({ content: i === 0 ? w : ` ${w}` }, null) })),
      { data: chunk({}, 'stop') },
      ...(includeUsage
        ? [
            {
              data: {
                id: 'chatcmpl-1',
                object: 'chat.completion.chunk',
                created: 1,
                model: body.model,
                choices: [],
                usage: { prompt_tokens: input, completion_tokens: output, total_tokens: input + output },
              },
            },
          ]
        : []),
      { data: '[DONE]' },
    ];
  }

  private sse(res: ServerResponse, headers: Record<string, string>, events: { event?: string; data: unknown }[]): void {
    res.writeHead(200, { 'content-type': 'text/event-stream', 'cache-control': 'no-cache', ...headers });
    for (const { event, data } of events) {
      res.write(`${event ? `event: ${event}\n` : ''}data: ${typeof data === 'string' ? data : JSON.stringify(data)}\n\n`);
    }
    res.end();
  }
}
