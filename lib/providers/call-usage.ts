import { anthropicUsage, estimateAnthropicRequest, isAnthropicRequest, readAnthropicStreamEvent } from './anthropic.js';
import { CHARS_PER_TOKEN, estimateContentTokens, estimateFromArguments, REQUEST_OVERHEAD_TOKENS } from './estimate.js';
import { estimateGeminiRequest, geminiUsage, isGeminiRequest, readGeminiStreamEvent } from './gemini.js';
import { type CallEstimate, isRecord, type LlmUsage, type StreamState } from './llm-usage.js';
import { estimateOpenAiRequest, isOpenAiRequest, openAiUsage, readOpenAiStreamEvent } from './openai.js';

/**
 * What a decorated method's call is expected to use, read from the first argument that is an
 * OpenAI, Anthropic or Gemini request; failing that, from the strings among its arguments.
 */
export function estimateCall(args: readonly unknown[]): CallEstimate {
  for (const arg of args) {
    if (!isRecord(arg)) continue;
    if (isEmbeddingRequest(arg))
      return { inputTokens: REQUEST_OVERHEAD_TOKENS + estimateContentTokens(arg.input ?? arg.contents ?? arg.content), outputTokens: 0 };
    if (isGeminiRequest(arg)) return estimateGeminiRequest(arg);
    if (isAnthropicRequest(arg)) return estimateAnthropicRequest(arg);
    if (isOpenAiRequest(arg)) return estimateOpenAiRequest(arg);
  }
  return estimateFromArguments(args);
}

const EMBEDDING_FIELDS = ['dimensions', 'encoding_format'];

/**
 * An embeddings request (`embeddings.create`, Gemini `embedContent`): it generates nothing, so
 * nothing is reserved for output. Known by its own fields or by the model's name (every
 * embedding model of the three providers has "embed" in it).
 */
export function isEmbeddingRequest(request: Record<string, unknown>): boolean {
  const config = isRecord(request.config) ? request.config : {};
  if (EMBEDDING_FIELDS.some((key) => request[key] !== undefined)) return true;
  if (config.taskType !== undefined || config.outputDimensionality !== undefined) return true;
  return typeof request.model === 'string' && /embed/i.test(request.model);
}

/** The usage a finished call's result reports, in any of the three SDKs' shapes. */
export function usageOfResult(result: unknown): LlmUsage | undefined {
  // Anthropic first: OpenAI's Responses API shares its field names but not its cache fields.
  return anthropicUsage(result) ?? openAiUsage(result) ?? geminiUsage(result);
}

/** Reads one chunk of a streamed result into `state`. */
export function readStreamEvent(chunk: unknown, state: StreamState): void {
  if (typeof chunk === 'string') {
    // A method that streams plain text.
    state.textChars += chunk.length;
    state.recognised = true;
    return;
  }
  if (!isRecord(chunk)) return;
  if (readAnthropicStreamEvent(chunk, state) || readOpenAiStreamEvent(chunk, state) || readGeminiStreamEvent(chunk, state)) {
    state.recognised = true;
  }
}

/**
 * The usage of a stream that has ended: the figures its events reported, with the output
 * estimated from the text seen when none was reported (a stream without `include_usage`). For a
 * stream that did not finish (the consumer stopped early, or it failed midway), reported output
 * may be stale (Anthropic's message_start says 1), so the larger of it and the text estimate
 * counts. Undefined when no chunk was recognised.
 */
export function streamedUsage(state: StreamState, finished = true): LlmUsage | undefined {
  const { usage } = state;
  if (!state.recognised && usage.output === undefined && usage.input === undefined) return undefined;
  const fromText = Math.ceil(state.textChars / CHARS_PER_TOKEN);
  const output = finished ? (usage.output ?? fromText) : Math.max(usage.output ?? 0, fromText);
  return { ...usage, output };
}
