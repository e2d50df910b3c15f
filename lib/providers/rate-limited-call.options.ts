import type { LlmUsage } from './llm-usage.js';

/** What `usage` receives: the awaited result, or each chunk of a streamed one. */
export type UsageSource<Result> = Awaited<Result> extends AsyncIterable<infer Chunk> ? Chunk : Awaited<Result>;

/**
 * How a limited call is sized and settled. Every function receives the call's arguments.
 * Without `tokens`/`inputTokens`/`outputTokens`, the call is estimated from an OpenAI,
 * Anthropic or Gemini request among the arguments (see `estimate.ts`); without `usage`, the
 * real usage is read from the result, or from a streamed result's chunks.
 */
// eslint-disable-next-line @typescript-eslint/no-explicit-any -- defaults for options written without type arguments: a method's typed parameters and result must fit, and unknown would refuse them
export interface RateLimitedCallOptions<Args extends unknown[] = any[], Result = any> {
  /** Combined tokens to reserve (combined `tpm` only); excludes `inputTokens`/`outputTokens`. */
  readonly tokens?: (...args: Args) => number;
  /** Input tokens to reserve; default: estimated from the request. */
  readonly inputTokens?: (...args: Args) => number;
  /** Output tokens to reserve; default: the request's output cap (`max_tokens` and the like) or 1024. */
  readonly outputTokens?: (...args: Args) => number;
  /**
   * The call's real usage, from its result (for a streamed result: from each chunk, the latest
   * figures winning); undefined to fall back to the SDK shapes this library knows.
   */
  readonly usage?: (result: UsageSource<Result>) => LlmUsage | undefined;
  /** Reject with `AcquireTimeoutError` instead of waiting longer than this for a slot. */
  readonly maxWaitMs?: number;
}
