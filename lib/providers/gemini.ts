import {
  estimateContentTokens,
  estimateDefinitionTokens,
  MESSAGE_OVERHEAD_TOKENS,
  outputCapOf,
  REQUEST_OVERHEAD_TOKENS,
} from './estimate.js';
import { type CallEstimate, charsOf, countOf, isRecord, type LlmUsage, mergeUsage, type StreamState } from './llm-usage.js';

/**
 * The Google Gen AI SDK's shapes (Gemini API and Vertex AI alike) and the older Vertex AI SDK's:
 * `contents` (a string, parts or `{ role, parts }` turns), `config.systemInstruction` or
 * `systemInstruction`, `config.maxOutputTokens` or `generationConfig.maxOutputTokens`, and
 * `usageMetadata` on a response (or on `result.response` in the older SDK) and on each streamed
 * chunk, the last chunk's being the whole call's.
 */

/** Whether a request uses Gemini's field names. */
export function isGeminiRequest(request: Record<string, unknown>): boolean {
  return request.contents !== undefined;
}

/** Input and output a `generateContent` request is expected to use. */
export function estimateGeminiRequest(request: Record<string, unknown>): CallEstimate {
  const config = isRecord(request.config) ? request.config : {};
  const contents = request.contents;
  let input = REQUEST_OVERHEAD_TOKENS;
  if (Array.isArray(contents)) {
    // A list of turns costs overhead per turn; a list of bare parts is one turn.
    const turns = contents.filter((turn) => isRecord(turn) && turn.parts !== undefined).length;
    input += Math.max(turns, 1) * MESSAGE_OVERHEAD_TOKENS + estimateContentTokens(contents);
  } else {
    input += MESSAGE_OVERHEAD_TOKENS + estimateContentTokens(contents);
  }
  const system = config.systemInstruction ?? request.systemInstruction;
  if (system !== undefined) input += MESSAGE_OVERHEAD_TOKENS + estimateContentTokens(system);
  input +=
    estimateDefinitionTokens(config.tools ?? request.tools) + estimateDefinitionTokens(config.responseSchema ?? config.responseJsonSchema);
  return { inputTokens: input, outputTokens: outputCapOf(request) };
}

function metadataOf(result: unknown): Record<string, unknown> | undefined {
  if (!isRecord(result)) return undefined;
  if (isRecord(result.usageMetadata)) return result.usageMetadata;
  if (isRecord(result.response) && isRecord(result.response.usageMetadata)) return result.response.usageMetadata;
  return undefined;
}

/**
 * Usage from `usageMetadata`: input is the prompt (cached content included) plus tool-use
 * prompts, output the candidates plus thinking tokens, as both are billed and limited as output.
 */
export function geminiUsage(result: unknown): LlmUsage | undefined {
  const m = metadataOf(result);
  // embedContent answers with vectors and no usageMetadata: no output, the input as estimated.
  if (!m) return isRecord(result) && (Array.isArray(result.embeddings) || isRecord(result.embedding)) ? { output: 0 } : undefined;
  const prompt = countOf(m.promptTokenCount);
  const candidates = countOf(m.candidatesTokenCount);
  if (prompt === undefined && candidates === undefined) return undefined;
  return {
    input: prompt === undefined ? undefined : prompt + (countOf(m.toolUsePromptTokenCount) ?? 0),
    // A response with no candidates (blocked, say) reports no candidatesTokenCount.
    output: (candidates ?? 0) + (countOf(m.thoughtsTokenCount) ?? 0),
  };
}

/** Reads one streamed chunk; false when it is not of Gemini's shapes. */
export function readGeminiStreamEvent(chunk: Record<string, unknown>, state: StreamState): boolean {
  if (!Array.isArray(chunk.candidates) && !isRecord(chunk.usageMetadata)) return false;
  for (const candidate of Array.isArray(chunk.candidates) ? chunk.candidates : []) {
    const parts =
      isRecord(candidate) && isRecord(candidate.content) && Array.isArray(candidate.content.parts) ? candidate.content.parts : [];
    for (const part of parts) {
      if (!isRecord(part)) continue;
      state.textChars += charsOf(part.text);
      if (part.functionCall !== undefined) state.textChars += JSON.stringify(part.functionCall)?.length ?? 0;
    }
  }
  mergeUsage(state, geminiUsage(chunk));
  return true;
}
