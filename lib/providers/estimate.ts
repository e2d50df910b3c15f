import { type CallEstimate, isRecord } from './llm-usage.js';

/**
 * The token estimate used when a decorated method gives no `inputTokens`/`tokens` function.
 * It only has to be close enough until the call's real usage is adjusted in: a reservation is
 * corrected as soon as the response reports its usage.
 *
 * - text: one token per 4 characters (English prose averages about 4 characters per token in
 *   the OpenAI, Anthropic and Gemini tokenizers; code and other languages use more tokens);
 * - each chat message adds 4 tokens (role and separators), each request 3;
 * - each image, audio, file or document part counts as 1000 tokens, whatever its size;
 * - tool and schema definitions count as the text of their JSON.
 */
export const CHARS_PER_TOKEN = 4;
export const MESSAGE_OVERHEAD_TOKENS = 4;
export const REQUEST_OVERHEAD_TOKENS = 3;
export const MEDIA_PART_TOKENS = 1000;

/** Output reserved when the request sets no output cap (`max_tokens` and the like). */
export const DEFAULT_OUTPUT_TOKENS = 1024;

/** Keys whose values are labels or ids, not text the model reads. */
const NOT_TEXT = new Set([
  'type',
  'role',
  'id',
  'tool_call_id',
  'tool_use_id',
  'cache_control',
  'mimeType',
  'mime_type',
  'media_type',
  'detail',
  'signature',
  'annotations',
  'logprobs',
  'status',
]);

const MEDIA_TYPES = new Set(['image', 'image_url', 'input_image', 'input_audio', 'input_file', 'file', 'document', 'audio']);
const MEDIA_KEYS = ['image_url', 'input_audio', 'inlineData', 'inline_data', 'fileData', 'file_data'];

/** An image, audio, file or document part of OpenAI, Anthropic or Gemini content. */
function isMediaPart(part: Record<string, unknown>): boolean {
  if (typeof part.type === 'string' && MEDIA_TYPES.has(part.type)) return true;
  return MEDIA_KEYS.some((key) => part[key] !== undefined);
}

/** Tokens of a piece of text. */
export function estimateTextTokens(text: string): number {
  return Math.ceil(text.length / CHARS_PER_TOKEN);
}

/**
 * Tokens of message content in any of the three SDKs' shapes: a string, an array of parts, an
 * object with text fields. Media parts count `MEDIA_PART_TOKENS` each; labels and ids do not count.
 */
export function estimateContentTokens(content: unknown): number {
  let chars = 0;
  let media = 0;
  const seen = new WeakSet<object>();
  const walk = (value: unknown, depth: number): void => {
    if (typeof value === 'string') {
      chars += value.length;
    } else if (typeof value === 'number' || typeof value === 'boolean') {
      chars += String(value).length;
    } else if (value !== null && typeof value === 'object' && depth < 32 && !seen.has(value)) {
      seen.add(value);
      if (Array.isArray(value)) {
        for (const item of value) walk(item, depth + 1);
      } else if (isMediaPart(value as Record<string, unknown>)) {
        media++;
      } else {
        for (const [key, item] of Object.entries(value)) {
          if (!NOT_TEXT.has(key)) walk(item, depth + 1);
        }
      }
    }
  };
  walk(content, 0);
  return Math.ceil(chars / CHARS_PER_TOKEN) + media * MEDIA_PART_TOKENS;
}

/** Tokens of a chat history: each message's content plus `MESSAGE_OVERHEAD_TOKENS`. */
export function estimateMessagesTokens(messages: unknown): number {
  if (!Array.isArray(messages)) return messages === undefined ? 0 : MESSAGE_OVERHEAD_TOKENS + estimateContentTokens(messages);
  let tokens = 0;
  for (const message of messages) tokens += MESSAGE_OVERHEAD_TOKENS + estimateContentTokens(message);
  return tokens;
}

/** Tokens of tool, function or schema definitions: the text of their JSON. */
export function estimateDefinitionTokens(definitions: unknown): number {
  if (definitions === undefined || definitions === null) return 0;
  try {
    return estimateTextTokens(JSON.stringify(definitions) ?? '');
  } catch {
    // Not serialisable (a cycle, a BigInt): count its text fields instead.
    return estimateContentTokens(definitions);
  }
}

/**
 * For a method whose arguments are no provider request: every string in the arguments is read
 * as prompt text, and the output is `DEFAULT_OUTPUT_TOKENS`.
 */
export function estimateFromArguments(args: readonly unknown[]): CallEstimate {
  return { inputTokens: REQUEST_OVERHEAD_TOKENS + estimateContentTokens(args), outputTokens: DEFAULT_OUTPUT_TOKENS };
}

/**
 * The output cap a request sets, in the field names of the three SDKs, times the number of
 * choices asked for; `DEFAULT_OUTPUT_TOKENS` when none is set.
 */
export function outputCapOf(request: Record<string, unknown>): number {
  const config = isRecord(request.config) ? request.config : {};
  const generation = isRecord(request.generationConfig)
    ? request.generationConfig
    : isRecord(config.generationConfig)
      ? config.generationConfig
      : {};
  const candidates = [
    request.max_completion_tokens,
    request.max_tokens,
    request.max_output_tokens,
    request.maxOutputTokens,
    request.maxTokens,
    config.maxOutputTokens,
    generation.maxOutputTokens,
  ];
  const cap = candidates.find((value) => typeof value === 'number' && Number.isFinite(value) && value >= 0) as number | undefined;
  const choices = [request.n, config.candidateCount, generation.candidateCount].find(
    (value) => typeof value === 'number' && Number.isInteger(value) && value > 1,
  ) as number | undefined;
  return Math.ceil(cap ?? DEFAULT_OUTPUT_TOKENS) * (choices ?? 1);
}
