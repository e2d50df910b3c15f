import {
  estimateContentTokens,
  estimateDefinitionTokens,
  estimateMessagesTokens,
  MESSAGE_OVERHEAD_TOKENS,
  outputCapOf,
  REQUEST_OVERHEAD_TOKENS,
} from './estimate.js';
import { type CallEstimate, charsOf, countOf, isRecord, type LlmUsage, mergeUsage, type StreamState } from './llm-usage.js';

/**
 * The Anthropic SDK's shapes: `messages.create` (`system`, `messages`, `max_tokens`), a
 * `Message` with `usage.input_tokens` (uncached input only), `cache_read_input_tokens` and
 * `cache_creation_input_tokens`, and the streamed events `message_start` (input usage),
 * `content_block_delta` (text) and `message_delta` (cumulative output usage).
 */

const ANTHROPIC_ONLY = ['system', 'stop_sequences', 'top_k', 'thinking', 'mcp_servers'];

/**
 * Whether a request uses fields only Anthropic has. A request with `messages` and `max_tokens`
 * alone fits both OpenAI and Anthropic, and is estimated the same either way.
 */
export function isAnthropicRequest(request: Record<string, unknown>): boolean {
  return request.messages !== undefined && ANTHROPIC_ONLY.some((key) => request[key] !== undefined);
}

/** Input and output a `messages.create` request is expected to use. */
export function estimateAnthropicRequest(request: Record<string, unknown>): CallEstimate {
  let input = REQUEST_OVERHEAD_TOKENS + estimateMessagesTokens(request.messages);
  if (request.system !== undefined) input += MESSAGE_OVERHEAD_TOKENS + estimateContentTokens(request.system);
  input += estimateDefinitionTokens(request.tools);
  return { inputTokens: input, outputTokens: outputCapOf(request) };
}

function usageFields(usage: Record<string, unknown>): LlmUsage {
  return {
    input: countOf(usage.input_tokens),
    output: countOf(usage.output_tokens),
    cacheRead: countOf(usage.cache_read_input_tokens),
    cacheWrite: countOf(usage.cache_creation_input_tokens),
  };
}

/** Usage of a `Message`, with cache reads and writes apart from the input. */
export function anthropicUsage(result: unknown): LlmUsage | undefined {
  if (!isRecord(result) || !isRecord(result.usage)) return undefined;
  const usage = result.usage;
  // OpenAI's Responses API also says input_tokens/output_tokens; Anthropic alone says
  // type 'message' and reports cache figures beside them.
  const anthropic = result.type === 'message' || 'cache_read_input_tokens' in usage || 'cache_creation_input_tokens' in usage;
  if (!anthropic || (countOf(usage.input_tokens) === undefined && countOf(usage.output_tokens) === undefined)) return undefined;
  return usageFields(usage);
}

/** Reads one streamed event; false when it is not of Anthropic's shapes. */
export function readAnthropicStreamEvent(event: Record<string, unknown>, state: StreamState): boolean {
  switch (event.type) {
    case 'message_start':
      if (isRecord(event.message) && isRecord(event.message.usage)) mergeUsage(state, usageFields(event.message.usage));
      return true;
    case 'content_block_delta': {
      const delta = isRecord(event.delta) ? event.delta : {};
      state.textChars += charsOf(delta.text) + charsOf(delta.partial_json) + charsOf(delta.thinking);
      return true;
    }
    case 'message_delta':
      // Cumulative: the last message_delta holds the whole output (and, lately, the input too).
      if (isRecord(event.usage)) mergeUsage(state, usageFields(event.usage));
      return true;
    case 'content_block_start':
    case 'content_block_stop':
    case 'message_stop':
    case 'ping':
      return true;
    default:
      return false;
  }
}
