/**
 * Reads what a provider's response headers say about its rate limits: OpenAI's
 * `x-ratelimit-*` (resets as durations such as `6m0s` or `12ms`) and Anthropic's
 * `anthropic-ratelimit-*` (resets as RFC 3339 times, remaining tokens rounded to thousands), and
 * `retry-after-ms` / `retry-after` (seconds or an HTTP date).
 */
export interface ProviderLimitReport {
  /** Room left per figure, as the provider counts it; absent = not reported. */
  readonly remaining: { tokens?: number; inputTokens?: number; outputTokens?: number; requests?: number };
  /** The provider's limits, where reported. */
  readonly limit: { tokens?: number; inputTokens?: number; outputTokens?: number; requests?: number };
  /** How long to wait before sending again, ms, where the provider said (`retry-after`). */
  readonly retryAfterMs?: number;
  /** Until an exhausted figure has room again, ms from now (its reset header), if any is exhausted. */
  readonly exhaustedResetMs?: number;
  /** How coarse the provider's token figures are (Anthropic rounds to thousands). */
  readonly tokenPrecision: number;
}

/** Headers as fetch (`Headers`), Node (`IncomingHttpHeaders`) or the provider SDKs give them. */
export type HeaderSource = Headers | { get(name: string): string | null | undefined } | Record<string, unknown>;

function reader(headers: HeaderSource): (name: string) => string | undefined {
  if (typeof (headers as { get?: unknown }).get === 'function') {
    const h = headers as { get(name: string): string | null | undefined };
    return (name) => h.get(name) ?? undefined;
  }
  const lower = new Map<string, unknown>();
  for (const [key, value] of Object.entries(headers as Record<string, unknown>)) lower.set(key.toLowerCase(), value);
  return (name) => {
    const value = lower.get(name);
    if (Array.isArray(value)) return value.length ? String(value[0]) : undefined;
    // Header values are strings (Node also gives numbers); anything else is no header value.
    return typeof value === 'string' || typeof value === 'number' ? String(value) : undefined;
  };
}

function count(value: string | undefined): number | undefined {
  if (value === undefined || value.trim() === '') return undefined;
  const n = Number(value);
  // Some gateways send -1 or garbage when they do not know: ignore those.
  return Number.isFinite(n) && n >= 0 ? Math.floor(n) : undefined;
}

const UNIT_MS: Record<string, number> = { h: 3_600_000, m: 60_000, s: 1000, ms: 1, us: 0.001, µs: 0.001, ns: 0.000001 };

/** `6m0s`, `1s`, `12ms`, `1h2m3.5s` → ms; undefined when it is not such a duration. */
export function parseDurationMs(value: string | undefined): number | undefined {
  if (!value) return undefined;
  const text = value.trim();
  if (!/^(\d+(\.\d+)?(h|ms|m|s|us|µs|ns))+$/.test(text)) return undefined;
  let total = 0;
  for (const [, amount, , unit] of text.matchAll(/(\d+(\.\d+)?)(h|ms|m|s|us|µs|ns)/g)) total += Number(amount) * UNIT_MS[unit];
  return total;
}

/** `retry-after-ms`, then `retry-after` as seconds or an HTTP date, relative to `nowMs`. */
export function parseRetryAfterMs(get: (name: string) => string | undefined, nowMs: number): number | undefined {
  const ms = count(get('retry-after-ms'));
  if (ms !== undefined) return ms;
  const raw = get('retry-after');
  if (raw === undefined) return undefined;
  const seconds = Number(raw);
  if (raw.trim() !== '' && Number.isFinite(seconds) && seconds >= 0) return Math.round(seconds * 1000);
  const date = Date.parse(raw);
  return Number.isNaN(date) ? undefined : Math.max(0, date - nowMs);
}

export function readProviderHeaders(headers: HeaderSource, nowMs = Date.now()): ProviderLimitReport {
  const get = reader(headers);
  const retryAfterMs = parseRetryAfterMs(get, nowMs);
  const anthropic = (figure: string, what: string) => count(get(`anthropic-ratelimit-${figure}-${what}`));
  if (['requests', 'tokens', 'input-tokens', 'output-tokens'].some((f) => get(`anthropic-ratelimit-${f}-remaining`) !== undefined)) {
    const inputTokens = anthropic('input-tokens', 'remaining');
    const outputTokens = anthropic('output-tokens', 'remaining');
    return {
      remaining: {
        requests: anthropic('requests', 'remaining'),
        inputTokens,
        outputTokens,
        // The combined figure is the most restrictive limit in effect, not a sum: use it only
        // when the split figures are missing.
        tokens: inputTokens === undefined && outputTokens === undefined ? anthropic('tokens', 'remaining') : undefined,
      },
      limit: {
        requests: anthropic('requests', 'limit'),
        inputTokens: anthropic('input-tokens', 'limit'),
        outputTokens: anthropic('output-tokens', 'limit'),
        tokens: anthropic('tokens', 'limit'),
      },
      retryAfterMs,
      exhaustedResetMs: latest(
        ['requests', 'tokens', 'input-tokens', 'output-tokens']
          .filter((f) => anthropic(f, 'remaining') === 0)
          .map((f) => {
            const at = Date.parse(get(`anthropic-ratelimit-${f}-reset`) ?? '');
            return Number.isNaN(at) ? undefined : Math.max(0, at - nowMs);
          }),
      ),
      tokenPrecision: 1000,
    };
  }
  const remaining = { tokens: count(get('x-ratelimit-remaining-tokens')), requests: count(get('x-ratelimit-remaining-requests')) };
  return {
    remaining,
    limit: { tokens: count(get('x-ratelimit-limit-tokens')), requests: count(get('x-ratelimit-limit-requests')) },
    retryAfterMs,
    exhaustedResetMs: latest([
      remaining.tokens === 0 ? parseDurationMs(get('x-ratelimit-reset-tokens')) : undefined,
      remaining.requests === 0 ? parseDurationMs(get('x-ratelimit-reset-requests')) : undefined,
    ]),
    tokenPrecision: 1,
  };
}

function latest(values: (number | undefined)[]): number | undefined {
  const known = values.filter((v): v is number => v !== undefined);
  return known.length ? Math.max(...known) : undefined;
}
