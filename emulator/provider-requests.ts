import type { Protocol, Usage } from './protocols.js';

/** A prompt as a client would send it: an optional cacheable prefix, the rest, and `max_tokens`. */
export interface Prompt {
  readonly model: string;
  readonly prefix: string;
  readonly text: string;
  readonly maxTokens: number;
}

/** The path and body of a request in the shape of `protocol`, as the providers' SDKs send it. */
export function buildRequest(protocol: Protocol, prompt: Prompt): { path: string; body: unknown } {
  const { model, prefix, text, maxTokens } = prompt;
  switch (protocol) {
    case 'openai':
      return {
        path: '/v1/chat/completions',
        body: {
          model,
          max_tokens: maxTokens,
          messages: [...(prefix ? [{ role: 'system', content: prefix }] : []), { role: 'user', content: text }],
        },
      };
    case 'anthropic':
    case 'bedrock-invoke':
      return {
        path: protocol === 'anthropic' ? '/v1/messages' : `/model/${encodeURIComponent(model)}/invoke`,
        body: {
          ...(protocol === 'anthropic' ? { model } : { anthropic_version: 'bedrock-2023-05-31' }),
          max_tokens: maxTokens,
          ...(prefix ? { system: [{ type: 'text', text: prefix, cache_control: { type: 'ephemeral' } }] } : {}),
          messages: [{ role: 'user', content: [{ type: 'text', text }] }],
        },
      };
    case 'bedrock-converse':
      return {
        path: `/model/${encodeURIComponent(model)}/converse`,
        body: {
          ...(prefix ? { system: [{ text: prefix }, { cachePoint: { type: 'default' } }] } : {}),
          messages: [{ role: 'user', content: [{ text }] }],
          inferenceConfig: { maxTokens },
        },
      };
    case 'vertex':
      return {
        path: `/v1/projects/emulator/locations/us-central1/publishers/google/models/${encodeURIComponent(model)}:generateContent`,
        body: {
          ...(prefix ? { systemInstruction: { parts: [{ text: prefix }] } } : {}),
          contents: [{ role: 'user', parts: [{ text }] }],
          generationConfig: { maxOutputTokens: maxTokens },
        },
      };
  }
}

/** A response body as parsed from JSON. */
type Json = Record<string, unknown>;

/** The usage object of a response; a response without one is no success response of the protocol. */
function usageObject(body: Json, key: string): Json {
  const usage = body[key];
  if (usage === null || typeof usage !== 'object') throw new Error(`the response has no ${key}: ${JSON.stringify(body)}`);
  return usage as Json;
}

/** A figure the protocol always reports. */
function figure(usage: Json, key: string): number {
  const value = usage[key];
  if (typeof value !== 'number') throw new Error(`the response's usage has no ${key}: ${JSON.stringify(usage)}`);
  return value;
}

/** A figure the protocol reports only when it is not 0. */
function optionalFigure(usage: Json, key: string): number {
  const value = usage[key];
  return typeof value === 'number' ? value : 0;
}

/**
 * Usage of a response as a client reads it: `input` is the prompt outside the cache. OpenAI and
 * Vertex report no cache writes (a write is plain input there).
 */
export function readUsage(protocol: Protocol, body: Json): Omit<Usage, 'stoppedAtMax'> {
  switch (protocol) {
    case 'openai': {
      const u = usageObject(body, 'usage');
      const details = u.prompt_tokens_details;
      const cached = details !== null && typeof details === 'object' ? optionalFigure(details as Json, 'cached_tokens') : 0;
      return { input: figure(u, 'prompt_tokens') - cached, cacheRead: cached, cacheWrite: 0, output: figure(u, 'completion_tokens') };
    }
    case 'anthropic':
    case 'bedrock-invoke': {
      const u = usageObject(body, 'usage');
      return {
        input: figure(u, 'input_tokens'),
        cacheRead: optionalFigure(u, 'cache_read_input_tokens'),
        cacheWrite: optionalFigure(u, 'cache_creation_input_tokens'),
        output: figure(u, 'output_tokens'),
      };
    }
    case 'bedrock-converse': {
      const u = usageObject(body, 'usage');
      return {
        input: figure(u, 'inputTokens'),
        cacheRead: optionalFigure(u, 'cacheReadInputTokens'),
        cacheWrite: optionalFigure(u, 'cacheWriteInputTokens'),
        output: figure(u, 'outputTokens'),
      };
    }
    case 'vertex': {
      const u = usageObject(body, 'usageMetadata');
      const cached = optionalFigure(u, 'cachedContentTokenCount');
      return { input: figure(u, 'promptTokenCount') - cached, cacheRead: cached, cacheWrite: 0, output: figure(u, 'candidatesTokenCount') };
    }
  }
}

/**
 * How long a 429 asks to wait, ms: `retry-after-ms`, then `retry-after` (seconds or an HTTP
 * date), as the OpenAI and Anthropic SDKs read them; undefined when neither is usable (0-60 s).
 */
export function retryAfterMs(headers: Headers, now = Date.now()): number | undefined {
  const ms = Number(headers.get('retry-after-ms'));
  if (headers.has('retry-after-ms') && Number.isFinite(ms) && ms >= 0 && ms <= 60_000) return ms;
  const value = headers.get('retry-after');
  if (value === null) return undefined;
  const seconds = Number(value);
  const wait = Number.isFinite(seconds) ? seconds * 1000 : Date.parse(value) - now;
  return Number.isFinite(wait) && wait >= 0 && wait <= 60_000 ? wait : undefined;
}

/** Text of about `tokens` tokens by the 4-characters estimate, distinct for each `tag`. */
export function textOfTokens(tokens: number, tag: string): string {
  const length = Math.max(4, tokens * 4);
  const head = `${tag} `;
  return (head + 'lorem ipsum dolor sit amet '.repeat(Math.ceil(length / 27) + 1)).slice(0, length);
}
