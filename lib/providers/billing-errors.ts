/**
 * Errors that say the account cannot pay, not that it sends too fast: OpenAI answers 429 with
 * `insufficient_quota` (credit spent, or a monthly spend limit reached) and, on older accounts,
 * `billing_hard_limit_reached` / `billing_not_active`; Anthropic answers 402 `billing_error`.
 * Waiting or sending slower does not help, so they must never cut limits or pause admissions.
 */
const BILLING_CODES = new Set(['insufficient_quota', 'billing_hard_limit_reached', 'billing_not_active', 'billing_error']);

function field(value: unknown, key: string): unknown {
  return value !== null && typeof value === 'object' ? (value as Record<string, unknown>)[key] : undefined;
}

function parsed(body: unknown): unknown {
  if (typeof body !== 'string') return body;
  try {
    return JSON.parse(body) as unknown;
  } catch {
    // Not JSON (an HTML error page from a proxy, say): no provider code to read.
    return undefined;
  }
}

/**
 * The provider's billing code when an error body (parsed or its text) says the account is out
 * of credit or over its spend limit; undefined for any other body. Both the whole body
 * (`{ error: { type, code } }`) and the SDKs' `error.error` (OpenAI: the inner object;
 * Anthropic: the whole body) are understood.
 */
export function billingCodeOf(body: unknown): string | undefined {
  const value = parsed(body);
  for (const candidate of [field(value, 'error'), value]) {
    for (const key of ['code', 'type']) {
      const code = field(candidate, key);
      if (typeof code === 'string' && BILLING_CODES.has(code)) return code;
    }
  }
  return undefined;
}
