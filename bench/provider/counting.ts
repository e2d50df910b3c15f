import type { ActualUsage, TokenRequest } from '../../lib/index.js';
import type { Figures, PolicyKind } from '../../emulator/policies/policy.js';
import type { Usage } from '../../emulator/protocols.js';

/** A call as the client plans it, before it knows what the provider will count. */
export interface PlannedCall {
  /** Character estimate of the cacheable prefix (0 without one). */
  readonly prefixEstimate: number;
  /** Character estimate of the rest of the prompt. */
  readonly textEstimate: number;
  readonly maxTokens: number;
  /** The client has seen this prefix answered before, so it expects a cache read. */
  readonly expectCacheRead: boolean;
}

export type CallUsage = Omit<Usage, 'stoppedAtMax'>;

const up = (tokens: number, margin: number) => Math.ceil(tokens * (1 + margin));

/**
 * What a client that knows the provider's rules reserves, per limit, for one call: the same
 * figures this module's profile computes, given to every limiter so that only the algorithms
 * differ. `margin` covers the tokenizer's error where the provider counts real tokens.
 */
export function admissionFigures(kind: PolicyKind, call: PlannedCall, margin: number): Figures {
  const prompt = call.prefixEstimate + call.textEstimate;
  // Each part is tokenized on its own, so each is raised on its own.
  const counted = up(call.prefixEstimate, margin) + up(call.textEstimate, margin);
  switch (kind) {
    case 'sliding-window':
      return { requests: 1, inputTokens: counted, outputTokens: call.maxTokens, tokens: counted + call.maxTokens };
    case 'openai':
      // OpenAI charges its own character estimate, which the client can compute exactly.
      return { requests: 1, tokens: prompt + call.maxTokens };
    case 'anthropic':
      return {
        requests: 1,
        inputTokens: up(call.textEstimate, margin) + (call.expectCacheRead ? 0 : up(call.prefixEstimate, margin)),
        outputTokens: call.maxTokens,
      };
    case 'bedrock':
      return { requests: 1, tokens: counted + call.maxTokens };
  }
}

/** What the provider settles the call at, or undefined when it keeps the admission charge. */
export function settlementFigures(kind: PolicyKind, usage: CallUsage, burndownRate: number): Figures | undefined {
  const prompt = usage.input + usage.cacheRead + usage.cacheWrite;
  switch (kind) {
    case 'sliding-window':
      return { requests: 1, inputTokens: prompt, outputTokens: usage.output, tokens: prompt + usage.output };
    case 'openai':
      return undefined;
    case 'anthropic':
      return { requests: 1, inputTokens: usage.input + usage.cacheWrite, outputTokens: usage.output };
    case 'bedrock':
      return { requests: 1, tokens: Math.ceil(usage.input + usage.cacheWrite + burndownRate * usage.output) };
  }
}

/** This module's acquire request for the call: raw figures; the profile decides what counts. */
export function moduleRequest(kind: PolicyKind, call: PlannedCall, margin: number): TokenRequest {
  const prompt = call.prefixEstimate + call.textEstimate;
  switch (kind) {
    case 'openai':
      return { inputTokens: prompt, outputTokens: call.maxTokens };
    case 'sliding-window':
      return { inputTokens: up(call.prefixEstimate, margin) + up(call.textEstimate, margin), outputTokens: call.maxTokens };
    case 'anthropic':
    case 'bedrock': {
      const prefix = up(call.prefixEstimate, margin);
      return {
        inputTokens: up(call.textEstimate, margin),
        outputTokens: call.maxTokens,
        cacheReadTokens: call.expectCacheRead ? prefix : 0,
        cacheWriteTokens: call.expectCacheRead ? 0 : prefix,
      };
    }
  }
}

/** This module's adjust for the call, from the usage in the response, as a usage extractor reads it. */
export function moduleUsage(kind: PolicyKind, usage: CallUsage): ActualUsage {
  if (kind === 'openai' || kind === 'sliding-window') {
    return { actualInput: usage.input + usage.cacheRead + usage.cacheWrite, actualOutput: usage.output };
  }
  return { actualInput: usage.input, actualOutput: usage.output, actualCacheRead: usage.cacheRead, actualCacheWrite: usage.cacheWrite };
}
