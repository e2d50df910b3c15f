/**
 * How each provider counts a call against its limits, from what it reserves when the call is
 * admitted to what it settles at when the call ends. The figures a limiter charges must match,
 * or it stays exact by its own accounting and still draws 429s.
 */
export type Provider = 'openai' | 'anthropic' | 'bedrock' | 'vertex' | 'custom';

export const PROVIDERS: readonly Provider[] = ['openai', 'anthropic', 'bedrock', 'vertex', 'custom'];

export interface ProviderProfile {
  /** Input figure at admission includes cache reads / cache writes. */
  readonly admitCacheRead: boolean;
  readonly admitCacheWrite: boolean;
  /** Input figure at settlement includes cache reads. */
  readonly settleCacheRead: boolean;
  /** Weight of output in the combined figure at admission: the burndown rate, or 1. */
  readonly admitOutputWeight: 'burndown' | 1;
  /** Whether the provider settles below what it reserved (adjust may refund). */
  readonly refunds: boolean;
  /** Whether a call that reached the provider and failed still counts. */
  readonly chargesFailedCalls: boolean;
  readonly defaultBurndownRate: number;
  readonly defaultAlgorithm: 'sliding-window' | 'token-bucket';
  /** Delivery margin assumed when none is configured (see `RateLimitConfig.deliveryMarginMs`). */
  readonly defaultDeliveryMarginMs: number;
}

/** How late a call may reach a real provider after its slot, when the config does not say. */
const DELIVERY_MARGIN_MS = 100;

/** Charge what acquire is told; adjust refunds and charges to real usage. */
const SETTLES_ON_USAGE: ProviderProfile = Object.freeze({
  admitCacheRead: true,
  admitCacheWrite: true,
  settleCacheRead: true,
  admitOutputWeight: 'burndown',
  refunds: true,
  chargesFailedCalls: false,
  defaultBurndownRate: 1,
  defaultAlgorithm: 'sliding-window',
  defaultDeliveryMarginMs: DELIVERY_MARGIN_MS,
});

export const PROFILES: Readonly<Record<Provider, ProviderProfile>> = Object.freeze({
  // The seed's behaviour: charge what you say, refund and charge on adjust, no margin.
  custom: { ...SETTLES_ON_USAGE, defaultDeliveryMarginMs: 0 },
  // Admission counts the prompt estimate plus max_tokens and stays counted: no refunds, and
  // failed requests count too.
  openai: {
    admitCacheRead: true,
    admitCacheWrite: true,
    settleCacheRead: true,
    admitOutputWeight: 'burndown',
    refunds: false,
    chargesFailedCalls: true,
    defaultBurndownRate: 1,
    defaultAlgorithm: 'sliding-window',
    defaultDeliveryMarginMs: DELIVERY_MARGIN_MS,
  },
  // A continuously refilled bucket; input counts uncached input and cache writes, not cache
  // reads; output counts as produced.
  anthropic: {
    admitCacheRead: false,
    admitCacheWrite: true,
    settleCacheRead: false,
    admitOutputWeight: 'burndown',
    refunds: true,
    chargesFailedCalls: false,
    defaultBurndownRate: 1,
    defaultAlgorithm: 'token-bucket',
    defaultDeliveryMarginMs: DELIVERY_MARGIN_MS,
  },
  // Reserves input + cache + max_tokens at weight 1, settles input + cache writes + burndown x output.
  bedrock: {
    admitCacheRead: true,
    admitCacheWrite: true,
    settleCacheRead: false,
    admitOutputWeight: 1,
    refunds: true,
    chargesFailedCalls: false,
    defaultBurndownRate: 5,
    defaultAlgorithm: 'sliding-window',
    defaultDeliveryMarginMs: DELIVERY_MARGIN_MS,
  },
  // Separate input and output quotas settled on real usage: the seed's rules.
  vertex: SETTLES_ON_USAGE,
});

/** Token figures of one call as a provider counts them. */
export interface CallTokens {
  readonly input: number;
  readonly output: number;
  readonly cacheRead: number;
  readonly cacheWrite: number;
}

export interface ChargedFigures {
  readonly tokens: number;
  readonly inputTokens: number;
  readonly outputTokens: number;
}

/** What the provider counts for a call, at admission (estimates) or settlement (actual usage). */
export function chargeOf(profile: ProviderProfile, burndownRate: number, call: CallTokens, phase: 'admit' | 'settle'): ChargedFigures {
  const countsRead = phase === 'admit' ? profile.admitCacheRead : profile.settleCacheRead;
  const countsWrite = phase === 'admit' ? profile.admitCacheWrite : true;
  const inputTokens = call.input + (countsRead ? call.cacheRead : 0) + (countsWrite ? call.cacheWrite : 0);
  const weight = phase === 'admit' && profile.admitOutputWeight === 1 ? 1 : burndownRate;
  return { tokens: Math.ceil(inputTokens + weight * call.output), inputTokens, outputTokens: call.output };
}
