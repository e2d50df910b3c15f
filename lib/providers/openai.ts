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
 * The OpenAI SDK's shapes: `chat.completions.create` (`messages`, `usage.prompt_tokens`,
 * streamed `chat.completion.chunk`s with a final usage chunk when
 * `stream_options: { include_usage: true }`), `responses.create` (`input`, `instructions`,
 * `usage.input_tokens`, streamed `response.*` events ending in `response.completed`), and the
 * legacy `completions.create` (`prompt`).
 */

/** Whether a request uses OpenAI's field names. */
export function isOpenAiRequest(request: Record<string, unknown>): boolean {
  return ['messages', 'input', 'instructions', 'prompt'].some((key) => request[key] !== undefined);
}

/** Input and output a chat completion, response or completion request is expected to use. */
export function estimateOpenAiRequest(request: Record<string, unknown>): CallEstimate {
  let input = REQUEST_OVERHEAD_TOKENS + estimateMessagesTokens(request.messages);
  if (request.instructions !== undefined) input += MESSAGE_OVERHEAD_TOKENS + estimateContentTokens(request.instructions);
  // Responses API: a string, or a list of message and item objects.
  if (typeof request.input === 'string') input += MESSAGE_OVERHEAD_TOKENS + estimateContentTokens(request.input);
  else if (request.input !== undefined) input += estimateMessagesTokens(request.input);
  if (request.prompt !== undefined) input += estimateContentTokens(request.prompt);
  const format = isRecord(request.text) ? request.text.format : undefined;
  input += estimateDefinitionTokens(request.tools) + estimateDefinitionTokens(request.functions);
  input += estimateDefinitionTokens(request.response_format) + estimateDefinitionTokens(format);
  return { inputTokens: input, outputTokens: outputCapOf(request) };
}

/** Usage of a chat completion (`prompt_tokens`) or a response (`input_tokens`); cached tokens stay in the input. */
export function openAiUsage(result: unknown): LlmUsage | undefined {
  const usage = isRecord(result) ? result.usage : undefined;
  if (!isRecord(usage)) return undefined;
  const chat = { input: countOf(usage.prompt_tokens), output: countOf(usage.completion_tokens) };
  // Embeddings report prompt_tokens and total_tokens alone: they generate nothing.
  if (chat.output === undefined && chat.input !== undefined && countOf(usage.total_tokens) === chat.input)
    return { input: chat.input, output: 0 };
  if (chat.input !== undefined || chat.output !== undefined) return chat;
  const responses = { input: countOf(usage.input_tokens), output: countOf(usage.output_tokens) };
  if (responses.input !== undefined || responses.output !== undefined) return responses;
  return undefined;
}

/** Reads one streamed chunk or event; false when it is not of OpenAI's shapes. */
export function readOpenAiStreamEvent(chunk: Record<string, unknown>, state: StreamState): boolean {
  if (
    chunk.object === 'chat.completion.chunk' ||
    (Array.isArray(chunk.choices) && chunk.choices.some((c) => isRecord(c) && isRecord(c.delta)))
  ) {
    for (const choice of Array.isArray(chunk.choices) ? chunk.choices : []) {
      const delta = isRecord(choice) && isRecord(choice.delta) ? choice.delta : {};
      state.textChars += charsOf(delta.content) + charsOf(delta.refusal) + charsOf(delta.reasoning_content);
      for (const call of Array.isArray(delta.tool_calls) ? delta.tool_calls : []) {
        if (isRecord(call) && isRecord(call.function)) state.textChars += charsOf(call.function.name) + charsOf(call.function.arguments);
      }
    }
    // Only the last chunk carries usage (null in the others), and only with include_usage.
    mergeUsage(state, openAiUsage(chunk));
    return true;
  }
  if (typeof chunk.type === 'string' && chunk.type.startsWith('response.')) {
    if (chunk.type.endsWith('.delta')) state.textChars += charsOf(chunk.delta);
    // response.completed, response.incomplete and response.failed carry the final usage.
    mergeUsage(state, openAiUsage(chunk.response));
    return true;
  }
  return false;
}
