import type { ResolvedConfig } from './config.js';
import type { ProviderLimitReport } from '../providers/headers.js';
import type { Charge, ModelSettings, ReconcileCommand } from './store.js';

/**
 * What the store enforces for a config. The delivery margin is applied here: a sliding window
 * counts each charge for window + margin (a call arriving up to margin late at the provider
 * still falls in the span the limiter counted it in), and a bucket keeps margin ms of refill as
 * headroom (whatever arrives late finds the provider's bucket no emptier than ours was).
 */
export function storeSettingsOf(config: ResolvedConfig): ModelSettings {
  const { windowMs, algorithm, bucketMs, quantumMs, deliveryMarginMs: margin, limits, learn } = config;
  const learned = learn && { learn };
  if (algorithm === 'token-bucket') return { windowMs, algorithm, bucketMs: bucketMs - margin, paceMs: 0, limits, ...learned };
  return {
    windowMs: windowMs + margin,
    algorithm,
    bucketMs: windowMs + margin,
    paceMs: quantumMs ? quantumMs - margin : 0,
    limits,
    ...learned,
  };
}

/**
 * The reconcile a provider's remaining figures call for, or undefined when it reported none.
 * Differences within 1% of a limit (or the header's precision) are noise.
 */
export function reconcileCommandOf(config: ResolvedConfig, report: ProviderLimitReport): ReconcileCommand | undefined {
  if (!Object.values(report.remaining).some((v) => v !== undefined)) return undefined;
  const { limits } = config;
  const noise = (limit: number, precision: number) => Math.max(precision, Math.ceil(limit * 0.01));
  const tolerance = {
    tokens: noise(limits.tokens, report.tokenPrecision),
    inputTokens: noise(limits.inputTokens, report.tokenPrecision),
    outputTokens: noise(limits.outputTokens, report.tokenPrecision),
    requests: noise(limits.requests, 1),
  };
  return { remaining: behindProvider(config, report.remaining), tolerance };
}

/**
 * A token bucket stays its delivery margin's worth of refill behind the provider's: compare the
 * provider's remaining figures less that headroom, or every reconcile would spend it.
 */
function behindProvider(config: ResolvedConfig, remaining: Partial<Charge>): Partial<Charge> {
  const { algorithm, deliveryMarginMs, windowMs, limits } = config;
  if (algorithm !== 'token-bucket' || deliveryMarginMs === 0) return remaining;
  const less = (left: number | undefined, limit: number) =>
    left === undefined ? undefined : Math.max(0, left - Math.ceil((limit * deliveryMarginMs) / windowMs));
  return {
    tokens: less(remaining.tokens, limits.tokens),
    inputTokens: less(remaining.inputTokens, limits.inputTokens),
    outputTokens: less(remaining.outputTokens, limits.outputTokens),
    requests: less(remaining.requests, limits.requests),
  };
}
