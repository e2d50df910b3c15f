import type { RateLimitedCallOptions } from '../providers/rate-limited-call.options.js';

/**
 * How `@RateLimitLlm()` limits a method: which model's limits apply, and how each call is sized
 * and settled. Every function receives the method's arguments.
 */
// eslint-disable-next-line @typescript-eslint/no-explicit-any -- defaults for options written without type arguments (RateLimitLlmOptions alone): a method's typed parameters and result must fit, and unknown would refuse them
export interface RateLimitLlmOptions<Args extends unknown[] = any[], Result = any> extends RateLimitedCallOptions<Args, Result> {
  /** Which configured model's limits apply; default: the only configured model. */
  readonly model?: string;
}

/** What the decorator records on the wrapper it installs. */
export interface RateLimitLlmMetadata {
  readonly options: RateLimitLlmOptions;
  /** `Class.method`, for messages. */
  readonly label: string;
}
