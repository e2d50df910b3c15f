import type { Dimension, LimitState } from './policies/policy.js';

/**
 * A duration as OpenAI writes it in `x-ratelimit-reset-*`: `12ms`, `1.5s`, `6m0s`, `1h2m3s`.
 */
export function formatOpenAiDuration(ms: number): string {
  const total = Math.max(0, ms);
  if (total < 1000) return `${Math.ceil(total)}ms`;
  const seconds = (value: number) => `${Number(value.toFixed(3))}s`;
  if (total < 60_000) return seconds(total / 1000);
  const hours = Math.floor(total / 3_600_000);
  const minutes = Math.floor((total % 3_600_000) / 60_000);
  const rest = (total % 60_000) / 1000;
  return `${hours > 0 ? `${hours}h` : ''}${minutes}m${seconds(rest)}`;
}

/** Reads an OpenAI duration (`6m0s`, `12ms`, `1.5s`) back into ms; NaN when it is not one. */
export function parseOpenAiDuration(text: string): number {
  const match = /^(?:(\d+(?:\.\d+)?)h)?(?:(\d+(?:\.\d+)?)m(?!s))?(?:(\d+(?:\.\d+)?)s)?(?:(\d+(?:\.\d+)?)ms)?$/.exec(text.trim());
  if (!match || text.trim() === '') return NaN;
  const [, h = '0', m = '0', s = '0', msPart = '0'] = match;
  return Number(h) * 3_600_000 + Number(m) * 60_000 + Number(s) * 1000 + Number(msPart);
}

const OPENAI_NAMES: Partial<Record<Dimension, string>> = { requests: 'requests', tokens: 'tokens' };

/** `x-ratelimit-{limit,remaining,reset}-{requests,tokens}`. */
export function openAiHeaders(states: readonly LimitState[]): Record<string, string> {
  const headers: Record<string, string> = {};
  for (const state of states) {
    const name = OPENAI_NAMES[state.dimension];
    if (!name) continue;
    headers[`x-ratelimit-limit-${name}`] = String(state.limit);
    headers[`x-ratelimit-remaining-${name}`] = String(Math.floor(state.remaining));
    headers[`x-ratelimit-reset-${name}`] = formatOpenAiDuration(state.resetMs);
  }
  return headers;
}

const ANTHROPIC_NAMES: Partial<Record<Dimension, string>> = {
  requests: 'requests',
  inputTokens: 'input-tokens',
  outputTokens: 'output-tokens',
  tokens: 'tokens',
};

/**
 * `anthropic-ratelimit-{requests,input-tokens,output-tokens,tokens}-{limit,remaining,reset}`:
 * token figures rounded to the nearest thousand, resets as RFC 3339 times when the bucket is full
 * again. `tokens` shows the most restrictive token limit in force.
 */
export function anthropicHeaders(states: readonly LimitState[], now: number): Record<string, string> {
  const headers: Record<string, string> = {};
  const write = (name: string, state: LimitState, round: boolean) => {
    headers[`anthropic-ratelimit-${name}-limit`] = String(state.limit);
    headers[`anthropic-ratelimit-${name}-remaining`] = String(
      round ? Math.round(state.remaining / 1000) * 1000 : Math.floor(state.remaining),
    );
    headers[`anthropic-ratelimit-${name}-reset`] = new Date(now + Math.ceil(state.resetMs)).toISOString();
  };
  let tightest: LimitState | undefined;
  for (const state of states) {
    const name = ANTHROPIC_NAMES[state.dimension];
    if (!name) continue;
    write(name, state, state.dimension !== 'requests');
    if (state.dimension !== 'requests' && (!tightest || state.remaining / state.limit < tightest.remaining / tightest.limit))
      tightest = state;
  }
  if (tightest && !states.some((s) => s.dimension === 'tokens')) write('tokens', tightest, true);
  return headers;
}

/** `retry-after` in whole seconds (rounded up), and `retry-after-ms` for the scaled-down windows. */
export function retryAfterHeaders(retryAfterMs: number): Record<string, string> {
  const ms = Number.isFinite(retryAfterMs) ? Math.max(1, Math.ceil(retryAfterMs)) : 60_000;
  return { 'retry-after': String(Math.ceil(ms / 1000)), 'retry-after-ms': String(ms) };
}
