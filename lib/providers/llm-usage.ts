/**
 * Token figures of one finished call as the provider reported them. Every field is optional:
 * what is missing is taken from the reservation.
 */
export interface LlmUsage {
  /** Prompt tokens (for Anthropic: uncached input only). */
  readonly input?: number;
  /** Completion tokens, reasoning included. */
  readonly output?: number;
  /** Prompt-cache reads reported apart from `input` (Anthropic). */
  readonly cacheRead?: number;
  /** Prompt-cache writes reported apart from `input` (Anthropic). */
  readonly cacheWrite?: number;
}

/** What one call is expected to use, before it runs. */
export interface CallEstimate {
  readonly inputTokens: number;
  readonly outputTokens: number;
}

/** What has been seen of a streamed response so far. */
export interface StreamState {
  /** Usage figures reported by the stream's events, the latest of each kind. */
  usage: { input?: number; output?: number; cacheRead?: number; cacheWrite?: number };
  /** Characters of generated text (and tool arguments) seen, for when no usage arrives. */
  textChars: number;
  /** Whether any chunk had a shape this library knows. */
  recognised: boolean;
}

export function newStreamState(): StreamState {
  return { usage: {}, textChars: 0, recognised: false };
}

export type Json = Record<string, unknown>;

export function isRecord(value: unknown): value is Json {
  return value !== null && typeof value === 'object' && !Array.isArray(value);
}

/** A token count from a provider payload, or undefined when the field is absent or not a count. */
export function countOf(value: unknown): number | undefined {
  return typeof value === 'number' && Number.isFinite(value) && value >= 0 ? Math.ceil(value) : undefined;
}

/** Copies the figures `from` defines onto the stream's usage, keeping the others. */
export function mergeUsage(state: StreamState, from: LlmUsage | undefined): void {
  if (!from) return;
  for (const field of ['input', 'output', 'cacheRead', 'cacheWrite'] as const) {
    const value = countOf(from[field]);
    if (value !== undefined) state.usage[field] = value;
  }
}

/** Length of `value` when it is a string, else 0. */
export function charsOf(value: unknown): number {
  return typeof value === 'string' ? value.length : 0;
}
