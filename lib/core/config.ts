import { describe } from './describe.js';
import { RateLimitConfigError } from './errors.js';
import { PROFILES, PROVIDERS, type Provider, type ProviderProfile } from '../providers/profiles.js';

/** How capacity comes back: all of a reservation leaves the window at once, or it refills continuously. */
export type Algorithm = 'sliding-window' | 'token-bucket';

/**
 * The provider's limits for one model. Every limit is per window; 0 or absent turns it off, and
 * at least one must be on.
 *
 * @example
 * const openai: RateLimitConfig = { tpm: 100_000, rpm: 100 };            // combined
 * const vertex: RateLimitConfig = { inputTpm: 4_000_000, outputTpm: 128_000, rpm: 360 }; // split
 */
export interface RateLimitConfig {
  /** Combined tokens (input + burndownRate x output) per window. */
  tpm?: number;
  /** Input tokens per window. */
  inputTpm?: number;
  /** Output tokens per window. */
  outputTpm?: number;
  /** Requests per window. */
  rpm?: number;
  /** Length of the sliding window, in seconds (default 60; at least 0.1, whole milliseconds). */
  windowSeconds?: number;
  /** Every limit is multiplied by this (default 1, at least 1) and rounded down. */
  burstMultiplier?: number;
  /**
   * Weight of an output token in the combined figure (default 1; 5 with `provider: 'bedrock'`).
   * AWS Bedrock counts output tokens of recent Claude models 5x against its token quota.
   */
  burndownRate?: number;
  /**
   * Which provider's counting rules to follow (default `'custom'`: charge what acquire is told,
   * refund and charge on adjust). See the README's provider table.
   */
  provider?: Provider;
  /**
   * `'sliding-window'` (default): a reservation counts for one window from its slot.
   * `'token-bucket'` (default for `provider: 'anthropic'`): capacity refills continuously at
   * limit / window, and the bucket holds `bucketSeconds` worth of it, so traffic is paced within
   * the window (for providers that enforce per-minute limits per second).
   */
  algorithm?: Algorithm;
  /** Token bucket only: seconds of refill the bucket holds (default `windowSeconds`). */
  bucketSeconds?: number;
  /**
   * Sliding window only: the provider also enforces every limit over intervals this long, at
   * limit x quantumSeconds / windowSeconds each (OpenAI: "60,000 per minute may be enforced as
   * 1,000 per second"). Admissions are then paced by a token bucket of that size, refilled at
   * limit / window, on top of the window: both hold at once. Off by default: no provider states
   * its quantum today, and a quantum's share of a small limit may hold less than one call.
   */
  quantumSeconds?: number;
  /**
   * Milliseconds a call may take from its slot to the provider (whole ms, default 100 for the
   * provider profiles, at most 5% of the window and half the bucket or quantum; 0 for
   * `'custom'`). The provider dates a call when it arrives: a sliding window keeps each charge
   * counted this much longer than the window, and a token bucket (or the quantum's pacing
   * bucket) keeps this much refill as headroom, so calls arriving late never meet the next
   * window's, or a fuller bucket, at the provider.
   */
  deliveryMarginMs?: number;
  /**
   * The provider publishes no fixed limit (Vertex AI dynamic shared quota, say): the limits above
   * are starting figures, and the limiter learns the real ones. They grow by
   * `increasePerWindow` of the starting figures per window while demand presses against them
   * and no 429 comes, are cut to 75% on a 429 (seen through `observe` or `backOff`, shared by
   * every process), and never pass `ceiling`. `true` takes the defaults.
   *
   * @example
   * { provider: 'vertex', inputTpm: 200_000, outputTpm: 20_000, rpm: 60, learnLimits: { ceiling: { rpm: 1000 } } }
   */
  learnLimits?: boolean | LearnLimitsConfig;
}

/** How limits of unknown capacity are learned (see `RateLimitConfig.learnLimits`). */
export interface LearnLimitsConfig {
  /**
   * Figures the learned limits never pass, by the names of the limits (`tpm`, `inputTpm`,
   * `outputTpm`, `rpm`), each at least its starting figure. All limits grow together, so the
   * first ceiling reached stops the others too. Default: none.
   */
  ceiling?: { tpm?: number; inputTpm?: number; outputTpm?: number; rpm?: number };
  /**
   * Growth per window of pressing demand, as a fraction of the starting figures (default 0.1:
   * from the start to twice it in ten windows of saturation).
   */
  increasePerWindow?: number;
}

/** Learned limits as the store applies them: a factor on the starting limits. */
export interface LearnSettings {
  /** Largest factor: the tightest ceiling over its starting figure. */
  readonly maxFactor: number;
  /** Factor gained per window of pressing demand. */
  readonly increasePerWindow: number;
}

/** Limits as the store applies them: whole numbers, burst applied, 0 = off. */
export interface EffectiveLimits {
  readonly tokens: number;
  readonly inputTokens: number;
  readonly outputTokens: number;
  readonly requests: number;
}

/** A validated config with every default filled in. */
export interface ResolvedConfig {
  readonly windowMs: number;
  readonly burstMultiplier: number;
  readonly burndownRate: number;
  readonly limits: EffectiveLimits;
  /** Whether the config has split limits, so acquire needs input and output apart. */
  readonly split: boolean;
  readonly provider: Provider;
  readonly profile: ProviderProfile;
  readonly algorithm: Algorithm;
  /** Token bucket capacity in ms of refill (equals windowMs for the sliding window). */
  readonly bucketMs: number;
  /** Sliding window: length of the provider's enforcement quantum in ms (0 = none). */
  readonly quantumMs: number;
  readonly deliveryMarginMs: number;
  /** Set when the limits are learned (`learnLimits`); the limits are then the starting figures. */
  readonly learn?: LearnSettings;
}

/** Largest limit accepted: sums of a window stay exact in Redis's Lua doubles. */
export const MAX_LIMIT = 1e12;

const LIMIT_FIELDS = ['tpm', 'inputTpm', 'outputTpm', 'rpm'] as const;
const KNOWN_FIELDS = new Set<string>([
  ...LIMIT_FIELDS,
  'windowSeconds',
  'burstMultiplier',
  'burndownRate',
  'provider',
  'algorithm',
  'bucketSeconds',
  'quantumSeconds',
  'deliveryMarginMs',
  'learnLimits',
]);

const DEFAULT_INCREASE_PER_WINDOW = 0.1;

/**
 * Checks a config and fills in its defaults. `where` prefixes field names in messages, e.g.
 * `models["gpt-4o"].` when the config came from module options.
 */
export function resolveConfig(config: RateLimitConfig, where = ''): ResolvedConfig {
  if (config === null || typeof config !== 'object' || Array.isArray(config)) {
    throw new RateLimitConfigError(`${where || 'config'} must be an object such as { tpm: 100000, rpm: 100 }, got ${describe(config)}`);
  }
  for (const key of Object.keys(config)) {
    if (!KNOWN_FIELDS.has(key)) {
      throw new RateLimitConfigError(`${where}${key} is not a rate limit setting; known settings: ${[...KNOWN_FIELDS].join(', ')}`);
    }
  }
  const limitOf = (field: (typeof LIMIT_FIELDS)[number]): number => {
    const value = config[field];
    if (value === undefined) return 0;
    if (typeof value !== 'number' || !Number.isInteger(value) || value < 0 || value > MAX_LIMIT) {
      throw new RateLimitConfigError(
        `${where}${field} must be a non-negative integer no larger than ${MAX_LIMIT} (0 turns it off), got ${describe(value)}`,
      );
    }
    return value;
  };
  const [tpm, inputTpm, outputTpm, rpm] = LIMIT_FIELDS.map(limitOf);
  if (tpm + inputTpm + outputTpm + rpm === 0) {
    throw new RateLimitConfigError(`${where}tpm, inputTpm, outputTpm and rpm are all off: set at least one of them`);
  }

  const windowSeconds = config.windowSeconds ?? 60;
  const windowMs = typeof windowSeconds === 'number' ? Math.round(windowSeconds * 1000) : NaN;
  if (
    typeof windowSeconds !== 'number' ||
    !Number.isFinite(windowSeconds) ||
    windowMs < 100 ||
    windowMs > 86_400_000 ||
    Math.abs(windowMs - windowSeconds * 1000) > 1e-6
  ) {
    throw new RateLimitConfigError(
      `${where}windowSeconds must be a number of seconds from 0.1 to 86400 in whole milliseconds, got ${describe(windowSeconds)}`,
    );
  }
  const burstMultiplier = config.burstMultiplier ?? 1;
  if (typeof burstMultiplier !== 'number' || !Number.isFinite(burstMultiplier) || burstMultiplier < 1 || burstMultiplier > 1000) {
    throw new RateLimitConfigError(`${where}burstMultiplier must be a number from 1 to 1000, got ${describe(burstMultiplier)}`);
  }
  const provider = config.provider ?? 'custom';
  if (!PROVIDERS.includes(provider)) {
    throw new RateLimitConfigError(
      `${where}provider must be one of ${PROVIDERS.map((p) => `'${p}'`).join(', ')}, got ${describe(provider)}`,
    );
  }
  const profile = PROFILES[provider];
  const algorithm = config.algorithm ?? profile.defaultAlgorithm;
  if (algorithm !== 'sliding-window' && algorithm !== 'token-bucket') {
    throw new RateLimitConfigError(`${where}algorithm must be 'sliding-window' or 'token-bucket', got ${describe(algorithm)}`);
  }
  let bucketMs = windowMs;
  if (config.bucketSeconds !== undefined) {
    const b = config.bucketSeconds;
    bucketMs = typeof b === 'number' ? Math.round(b * 1000) : NaN;
    if (algorithm !== 'token-bucket') {
      throw new RateLimitConfigError(
        `${where}bucketSeconds applies to algorithm 'token-bucket' only; set algorithm: 'token-bucket' or remove it`,
      );
    }
    if (typeof b !== 'number' || !Number.isFinite(b) || bucketMs < 1 || bucketMs > windowMs) {
      throw new RateLimitConfigError(
        `${where}bucketSeconds must be a number from 0.001 to windowSeconds (${windowMs / 1000}), got ${describe(b)}`,
      );
    }
  }
  let quantumMs = 0;
  if (config.quantumSeconds !== undefined) {
    const q = config.quantumSeconds;
    quantumMs = typeof q === 'number' ? Math.round(q * 1000) : NaN;
    if (algorithm !== 'sliding-window') {
      throw new RateLimitConfigError(
        `${where}quantumSeconds applies to algorithm 'sliding-window' only; a token bucket is paced by bucketSeconds, so set that instead`,
      );
    }
    if (typeof q !== 'number' || !Number.isFinite(q) || quantumMs < 1 || quantumMs > windowMs || Math.abs(quantumMs - q * 1000) > 1e-6) {
      throw new RateLimitConfigError(
        `${where}quantumSeconds must be a number of seconds from 0.001 to windowSeconds (${windowMs / 1000}) in whole milliseconds, got ${describe(q)}`,
      );
    }
  }
  // The margin comes out of the smallest span it applies to: the bucket, the quantum, the window.
  const marginRoom = algorithm === 'token-bucket' ? bucketMs : quantumMs || windowMs;
  let deliveryMarginMs: number;
  if (config.deliveryMarginMs !== undefined) {
    deliveryMarginMs = config.deliveryMarginMs;
    const room = algorithm === 'token-bucket' ? 'bucketSeconds' : quantumMs ? 'quantumSeconds' : 'windowSeconds';
    if (
      typeof deliveryMarginMs !== 'number' ||
      !Number.isInteger(deliveryMarginMs) ||
      deliveryMarginMs < 0 ||
      deliveryMarginMs >= marginRoom
    ) {
      throw new RateLimitConfigError(
        `${where}deliveryMarginMs must be a whole number of ms from 0 to less than ${room} (${marginRoom} ms), got ${describe(deliveryMarginMs)}; measure how late calls reach the provider and leave that`,
      );
    }
  } else {
    deliveryMarginMs =
      profile.defaultDeliveryMarginMs > 0
        ? Math.min(profile.defaultDeliveryMarginMs, Math.floor(windowMs * 0.05), Math.floor(marginRoom / 2))
        : 0;
  }
  const burndownRate = config.burndownRate ?? profile.defaultBurndownRate;
  if (typeof burndownRate !== 'number' || !Number.isFinite(burndownRate) || burndownRate < 0 || burndownRate > 1000) {
    throw new RateLimitConfigError(`${where}burndownRate must be a number from 0 to 1000, got ${describe(burndownRate)}`);
  }
  const burst = (limit: number) => Math.min(MAX_LIMIT, Math.floor(limit * burstMultiplier));
  const limits = { tokens: burst(tpm), inputTokens: burst(inputTpm), outputTokens: burst(outputTpm), requests: burst(rpm) };
  const learn = resolveLearn(config.learnLimits, limits, where);
  return {
    windowMs,
    burstMultiplier,
    burndownRate,
    split: inputTpm > 0 || outputTpm > 0,
    provider,
    profile,
    algorithm,
    bucketMs,
    quantumMs,
    deliveryMarginMs,
    limits,
    ...(learn && { learn }),
  };
}

const FIELD_OF: Record<(typeof LIMIT_FIELDS)[number], keyof EffectiveLimits> = {
  tpm: 'tokens',
  inputTpm: 'inputTokens',
  outputTpm: 'outputTokens',
  rpm: 'requests',
};

function resolveLearn(value: RateLimitConfig['learnLimits'], limits: EffectiveLimits, where: string): LearnSettings | undefined {
  if (value === undefined || value === false) return undefined;
  const learn: LearnLimitsConfig = value === true ? {} : value;
  if (learn === null || typeof learn !== 'object' || Array.isArray(learn)) {
    throw new RateLimitConfigError(
      `${where}learnLimits must be true, false or an object such as { ceiling: { rpm: 1000 } }, got ${describe(value)}`,
    );
  }
  for (const key of Object.keys(learn)) {
    if (key !== 'ceiling' && key !== 'increasePerWindow') {
      throw new RateLimitConfigError(`${where}learnLimits.${key} is not a learning setting; known settings: ceiling, increasePerWindow`);
    }
  }
  const increasePerWindow = learn.increasePerWindow ?? DEFAULT_INCREASE_PER_WINDOW;
  if (typeof increasePerWindow !== 'number' || !Number.isFinite(increasePerWindow) || increasePerWindow <= 0 || increasePerWindow > 10) {
    throw new RateLimitConfigError(
      `${where}learnLimits.increasePerWindow must be a fraction of the starting limits above 0 and at most 10, such as 0.1, got ${describe(increasePerWindow)}`,
    );
  }
  // Without a ceiling, growth stops where a limit would pass the largest accepted figure.
  let maxFactor = MAX_LIMIT / Math.max(limits.tokens, limits.inputTokens, limits.outputTokens, limits.requests);
  const ceiling = learn.ceiling ?? {};
  if (ceiling === null || typeof ceiling !== 'object' || Array.isArray(ceiling)) {
    throw new RateLimitConfigError(
      `${where}learnLimits.ceiling must be an object such as { rpm: 1000, tpm: 2000000 }, got ${describe(ceiling)}`,
    );
  }
  for (const [key, top] of Object.entries(ceiling)) {
    const field = FIELD_OF[key as keyof typeof FIELD_OF];
    if (!field) {
      throw new RateLimitConfigError(
        `${where}learnLimits.ceiling.${key} is not a limit; ceilings are set by limit name: ${LIMIT_FIELDS.join(', ')}`,
      );
    }
    const start = limits[field];
    if (start === 0) {
      throw new RateLimitConfigError(
        `${where}learnLimits.ceiling.${key} is set but ${key} is off: set a starting ${key} or remove its ceiling`,
      );
    }
    if (typeof top !== 'number' || !Number.isInteger(top) || top < start || top > MAX_LIMIT) {
      throw new RateLimitConfigError(
        `${where}learnLimits.ceiling.${key} must be an integer from the starting ${key} (${start}) to ${MAX_LIMIT}, got ${describe(top)}`,
      );
    }
    maxFactor = Math.min(maxFactor, top / start);
  }
  return { maxFactor, increasePerWindow };
}

/**
 * How calls are handled while Redis is unavailable. `'open'` lets them through, marked
 * `degraded`, as the Python original does; `'closed'` rejects with `RedisUnavailableError`;
 * `'local'` limits them in each process to its share of every limit, marked `degraded`.
 */
export type FailureMode = 'open' | 'closed' | 'local';
