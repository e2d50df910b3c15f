import type { Rejection } from './policies/policy.js';

/** The request and response shapes the emulator speaks. */
export type Protocol = 'openai' | 'anthropic' | 'bedrock-converse' | 'bedrock-invoke' | 'vertex';

/** What the emulator needs from a request body, whatever its shape. */
export interface ParsedRequest {
  readonly model: string;
  /** Prompt text marked cacheable (empty when none). */
  readonly prefix: string;
  /** The rest of the prompt. */
  readonly text: string;
  readonly maxTokens: number;
}

/** What a completed call used, as the provider reports it. */
export interface Usage {
  readonly input: number;
  readonly cacheRead: number;
  readonly cacheWrite: number;
  readonly output: number;
  readonly stoppedAtMax: boolean;
}

export class BadRequestError extends Error {}

type Json = Record<string, unknown>;

function isObject(value: unknown): value is Json {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

function textOf(content: unknown): string {
  if (typeof content === 'string') return content;
  if (Array.isArray(content)) return content.map((part) => (isObject(part) && typeof part.text === 'string' ? part.text : '')).join('');
  return '';
}

function positiveInteger(value: unknown, field: string): number {
  if (typeof value !== 'number' || !Number.isInteger(value) || value < 1)
    throw new BadRequestError(`${field} must be a positive integer, got ${JSON.stringify(value)}`);
  return value;
}

function messagesText(messages: unknown): string {
  if (!Array.isArray(messages) || messages.length === 0) throw new BadRequestError('messages must be a non-empty array');
  return messages.map((m) => (isObject(m) ? textOf(m.content) : '')).join('');
}

/** Anthropic `system` blocks: the prefix runs to the last block marked with `cache_control`. */
function anthropicSystem(system: unknown): { prefix: string; rest: string } {
  if (typeof system === 'string' || system === undefined) return { prefix: '', rest: system ?? '' };
  if (!Array.isArray(system)) throw new BadRequestError('system must be a string or an array of blocks');
  const last = system.findLastIndex((b) => isObject(b) && b.cache_control !== undefined);
  return { prefix: textOf(system.slice(0, last + 1)), rest: textOf(system.slice(last + 1)) };
}

export function parseRequest(protocol: Protocol, body: unknown, modelFromPath = ''): ParsedRequest {
  if (!isObject(body)) throw new BadRequestError('the body must be a JSON object');
  switch (protocol) {
    case 'openai': {
      const messages = body.messages;
      if (!Array.isArray(messages) || messages.length === 0) throw new BadRequestError('messages must be a non-empty array');
      // Prompt caching works on prefixes: a leading system message is the cacheable part.
      const first: unknown = messages[0];
      const cacheable = isObject(first) && (first.role === 'system' || first.role === 'developer');
      return {
        model: typeof body.model === 'string' ? body.model : '',
        prefix: cacheable ? textOf(first.content) : '',
        text: messagesText(cacheable ? messages.slice(1) : messages),
        maxTokens: positiveInteger(body.max_completion_tokens ?? body.max_tokens, 'max_tokens'),
      };
    }
    case 'anthropic':
    case 'bedrock-invoke': {
      const { prefix, rest } = anthropicSystem(body.system);
      return {
        model: typeof body.model === 'string' ? body.model : modelFromPath,
        prefix,
        text: rest + messagesText(body.messages),
        maxTokens: positiveInteger(body.max_tokens, 'max_tokens'),
      };
    }
    case 'bedrock-converse': {
      const system = Array.isArray(body.system) ? body.system : [];
      const point = system.findLastIndex((b) => isObject(b) && b.cachePoint !== undefined);
      const inference = isObject(body.inferenceConfig) ? body.inferenceConfig : {};
      return {
        model: modelFromPath,
        prefix: textOf(system.slice(0, Math.max(0, point))),
        text: textOf(system.slice(point + 1)) + messagesText(body.messages),
        maxTokens: positiveInteger(inference.maxTokens, 'inferenceConfig.maxTokens'),
      };
    }
    case 'vertex': {
      const contents = body.contents;
      if (!Array.isArray(contents) || contents.length === 0) throw new BadRequestError('contents must be a non-empty array');
      const parts = (c: unknown) => (isObject(c) ? textOf(c.parts) : '');
      const config = isObject(body.generationConfig) ? body.generationConfig : {};
      return {
        model: modelFromPath,
        // Context caching on Vertex is explicit; a system instruction plays the cacheable prefix here.
        prefix: parts(body.systemInstruction),
        text: contents.map(parts).join(''),
        maxTokens: positiveInteger(config.maxOutputTokens, 'generationConfig.maxOutputTokens'),
      };
    }
  }
}

const OUTPUT_TEXT = 'emulated output';

export function successBody(protocol: Protocol, request: ParsedRequest, usage: Usage, id: string, now: number): Json {
  const totalInput = usage.input + usage.cacheRead + usage.cacheWrite;
  switch (protocol) {
    case 'openai':
      return {
        id: `chatcmpl-${id}`,
        object: 'chat.completion',
        created: Math.floor(now / 1000),
        model: request.model,
        choices: [
          { index: 0, message: { role: 'assistant', content: OUTPUT_TEXT }, finish_reason: usage.stoppedAtMax ? 'length' : 'stop' },
        ],
        usage: {
          prompt_tokens: totalInput,
          completion_tokens: usage.output,
          total_tokens: totalInput + usage.output,
          prompt_tokens_details: { cached_tokens: usage.cacheRead },
          completion_tokens_details: { reasoning_tokens: 0 },
        },
      };
    case 'anthropic':
    case 'bedrock-invoke':
      return {
        id: `msg_${id}`,
        type: 'message',
        role: 'assistant',
        model: request.model,
        content: [{ type: 'text', text: OUTPUT_TEXT }],
        stop_reason: usage.stoppedAtMax ? 'max_tokens' : 'end_turn',
        stop_sequence: null,
        usage: {
          input_tokens: usage.input,
          output_tokens: usage.output,
          cache_creation_input_tokens: usage.cacheWrite,
          cache_read_input_tokens: usage.cacheRead,
        },
      };
    case 'bedrock-converse':
      return {
        output: { message: { role: 'assistant', content: [{ text: OUTPUT_TEXT }] } },
        stopReason: usage.stoppedAtMax ? 'max_tokens' : 'end_turn',
        usage: {
          inputTokens: usage.input,
          outputTokens: usage.output,
          totalTokens: totalInput + usage.output,
          cacheReadInputTokens: usage.cacheRead,
          cacheWriteInputTokens: usage.cacheWrite,
        },
        metrics: { latencyMs: 0 },
      };
    case 'vertex':
      return {
        candidates: [
          { content: { role: 'model', parts: [{ text: OUTPUT_TEXT }] }, finishReason: usage.stoppedAtMax ? 'MAX_TOKENS' : 'STOP' },
        ],
        usageMetadata: {
          promptTokenCount: totalInput,
          candidatesTokenCount: usage.output,
          totalTokenCount: totalInput + usage.output,
          cachedContentTokenCount: usage.cacheRead,
        },
        modelVersion: request.model,
      };
  }
}

const DIMENSION_WORDS = {
  requests: 'requests per minute',
  tokens: 'tokens per minute',
  inputTokens: 'input tokens per minute',
  outputTokens: 'output tokens per minute',
} as const;

export function rateLimitBody(protocol: Protocol, rejection: Rejection, model: string): Json {
  const words = DIMENSION_WORDS[rejection.dimension];
  const wait = `${(rejection.retryAfterMs / 1000).toFixed(3)}s`;
  switch (protocol) {
    case 'openai':
      return {
        error: {
          message: `Rate limit reached for ${model} in organization org-emulator on ${words}: Limit ${rejection.limit}, Used ${Math.round(rejection.used)}, Requested ${rejection.requested}. Please try again in ${wait}.`,
          type: rejection.dimension === 'requests' ? 'requests' : 'tokens',
          param: null,
          code: 'rate_limit_exceeded',
        },
      };
    case 'anthropic':
    case 'bedrock-invoke':
      return {
        type: 'error',
        error: {
          type: 'rate_limit_error',
          message: `This request would exceed your organization's rate limit of ${rejection.limit} ${words}.`,
        },
      };
    case 'bedrock-converse':
      return { message: 'Too many tokens, please wait before trying again.' };
    case 'vertex':
      return { error: { code: 429, message: 'Resource exhausted. Please try again later.', status: 'RESOURCE_EXHAUSTED' } };
  }
}

export function serverErrorBody(protocol: Protocol): Json {
  switch (protocol) {
    case 'openai':
      return {
        error: { message: 'The server had an error while processing your request.', type: 'server_error', param: null, code: null },
      };
    case 'anthropic':
    case 'bedrock-invoke':
      return { type: 'error', error: { type: 'api_error', message: 'Internal server error' } };
    case 'bedrock-converse':
      return { message: 'The service encountered an internal error.' };
    case 'vertex':
      return { error: { code: 500, message: 'Internal error encountered.', status: 'INTERNAL' } };
  }
}
