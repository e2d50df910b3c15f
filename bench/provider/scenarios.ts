import type { RateLimitConfig } from '../../lib/index.js';
import type { Figures, PolicyKind } from '../../emulator/policies/policy.js';
import type { ProviderEmulatorOptions } from '../../emulator/provider-emulator.js';
import type { Protocol } from '../../emulator/protocols.js';

/** The limiters run side by side on the same scenario. */
export type LimiterKind = 'module' | 'rate-limiter-flexible' | 'bottleneck' | 'none';

export const LIMITERS: readonly LimiterKind[] = ['module', 'rate-limiter-flexible', 'bottleneck', 'none'];

export const LIMITER_LABELS: Record<LimiterKind, string> = {
  module: 'nestjs-llm-rate-limiter',
  'rate-limiter-flexible': 'rate-limiter-flexible',
  bottleneck: 'bottleneck',
  none: 'no limiter',
};

/** What every run shares: time scale, load shape and sizes. */
export interface BenchSettings {
  /** The emulated minute, ms. */
  readonly windowMs: number;
  /**
   * Length of one run, in windows. Utilisation is the mean, over every window ending from 1.25
   * windows after the start to the end, of what that window served: the cold-start burst (first
   * quarter window) is left out, and bursts weigh the same wherever they fall.
   */
  readonly runWindows: number;
  /** Length of a run without a limiter, in windows (it only has to show the 429s). */
  readonly noLimiterRunWindows: number;
  readonly workers: number;
  /** Concurrent calls per worker. */
  readonly concurrency: number;
  /** Calls a worker starts at most in one run (a bound, normally not reached). */
  readonly maxCallsPerWorker: number;
  /** The emulated tokenizer's error against the 4-characters estimate. */
  readonly inputError: number;
  /** Clients reserve their input estimate raised by this much where the provider counts real tokens. */
  readonly inputMargin: number;
  readonly seed: number;
}

export const DEFAULT_SETTINGS: BenchSettings = {
  windowMs: 12_000,
  runWindows: 2,
  noLimiterRunWindows: 1.5,
  workers: 4,
  concurrency: 32,
  maxCallsPerWorker: 2000,
  inputError: 0.05,
  inputMargin: 0.05,
  seed: 42,
};

/** One way to configure this module for a scenario. */
export interface ModuleVariant {
  readonly label: string;
  readonly config: RateLimitConfig;
}

/** One emulator policy with the matching profile, and how the alternatives are set up for it. */
export interface Scenario {
  readonly name: string;
  readonly title: string;
  readonly kind: PolicyKind;
  readonly protocol: Protocol;
  readonly emulator: ProviderEmulatorOptions;
  /** The provider's limits per window, which every limiter is given. */
  readonly limits: Figures;
  readonly moduleVariants: readonly ModuleVariant[];
  /** How the alternatives refill: fixed windows, or a continuously increased reservoir. */
  readonly alternativesRefill: 'fixed-window' | 'increase';
  /** Whether the provider settles on real usage (then the alternatives return or add the difference). */
  readonly settles: boolean;
  /** Whether refused (429) and failed calls keep their charge at the provider. */
  readonly chargesRefused: boolean;
  readonly burndownRate: number;
}

const LATENCY = { fixedMs: 150, perOutputTokenMs: 0.3 };
const OUTPUT_FRACTION = { min: 0.05, max: 0.9 };

/**
 * The scenarios: every limit is sized so the token limit binds at about 60 calls per second, far
 * below what 4 x 32 concurrent callers would send (~500 per second), so every run saturates.
 */
export function scenarios(settings: BenchSettings): Scenario[] {
  const w = settings.windowMs;
  const perWindow = (perSecond: number) => Math.round((perSecond * w) / 1000);
  const windowSeconds = w / 1000;
  const common = { latency: LATENCY, outputFraction: OUTPUT_FRACTION, inputError: settings.inputError, seed: settings.seed };
  const rpm = perWindow(100);

  const sliding = { requests: rpm, inputTokens: perWindow(120_000), outputTokens: perWindow(27_000) };
  const openai = { requests: rpm, tokens: perWindow(165_000) };
  const anthropic = { requests: rpm, inputTokens: perWindow(60_000), outputTokens: perWindow(27_000) };
  const bedrock = { requests: rpm, tokens: perWindow(165_000) };
  // Quantized per 1/12 of the minute: 1 s at the default 12 s minute, OpenAI's own example
  // ("60,000 requests/minute may be enforced as 1,000 requests/second") scaled to the window.
  const quantumMs = Math.round(w / 12);
  const quantumSeconds = quantumMs / 1000;
  // How late calls reach the provider here: bursts of ~100 calls from 4 processes on 2 cores
  // arrive up to ~200 ms after their slots; the profiles' default (100 ms) is for a quieter host.
  const deliveryMarginMs = 250;
  // The configuration the benchmark recommends for a sliding-window provider: paced by the quantum,
  // with the margin this host needs.
  const paced = (provider: RateLimitConfig['provider'], limits: RateLimitConfig): ModuleVariant => ({
    label: `provider: '${provider}', quantumSeconds: ${quantumSeconds}, deliveryMarginMs: ${deliveryMarginMs}`,
    config: { provider, ...limits, windowSeconds, quantumSeconds, deliveryMarginMs },
  });

  return [
    {
      name: 'sliding-window',
      title: 'Strict sliding window, split input/output quotas (Vertex-like)',
      kind: 'sliding-window',
      protocol: 'vertex',
      emulator: {
        ...common,
        policy: { kind: 'sliding-window', windowMs: w, rpm, inputTpm: sliding.inputTokens, outputTpm: sliding.outputTokens },
      },
      limits: sliding,
      moduleVariants: [
        paced('vertex', { rpm, inputTpm: sliding.inputTokens, outputTpm: sliding.outputTokens }),
        {
          label: "provider: 'vertex'",
          config: { provider: 'vertex', rpm, inputTpm: sliding.inputTokens, outputTpm: sliding.outputTokens, windowSeconds },
        },
      ],
      alternativesRefill: 'fixed-window',
      settles: true,
      chargesRefused: false,
      burndownRate: 1,
    },
    {
      name: 'openai',
      title: 'OpenAI: character estimate + max_tokens at admission, kept; refused calls count',
      kind: 'openai',
      protocol: 'openai',
      emulator: { ...common, policy: { kind: 'openai', windowMs: w, rpm, tpm: openai.tokens } },
      limits: openai,
      moduleVariants: [paced('openai', { rpm, tpm: openai.tokens })],
      alternativesRefill: 'fixed-window',
      settles: false,
      chargesRefused: true,
      burndownRate: 1,
    },
    {
      name: 'openai-quantized',
      title: `OpenAI, per-minute limits also enforced as a token bucket of 1/12 of the minute (${quantumMs} ms here)`,
      kind: 'openai',
      protocol: 'openai',
      emulator: { ...common, policy: { kind: 'openai', windowMs: w, rpm, tpm: openai.tokens, quantumMs, quantumKind: 'bucket' } },
      limits: openai,
      moduleVariants: [paced('openai', { rpm, tpm: openai.tokens })],
      alternativesRefill: 'fixed-window',
      settles: false,
      chargesRefused: true,
      burndownRate: 1,
    },
    {
      name: 'anthropic',
      title: 'Anthropic: token buckets for RPM, ITPM (cache reads free), OTPM (output as produced)',
      kind: 'anthropic',
      protocol: 'anthropic',
      emulator: {
        ...common,
        policy: { kind: 'anthropic', windowMs: w, rpm, inputTpm: anthropic.inputTokens, outputTpm: anthropic.outputTokens },
      },
      limits: anthropic,
      moduleVariants: [
        {
          label: "provider: 'anthropic'",
          config: { provider: 'anthropic', rpm, inputTpm: anthropic.inputTokens, outputTpm: anthropic.outputTokens, windowSeconds },
        },
      ],
      alternativesRefill: 'increase',
      settles: true,
      chargesRefused: false,
      burndownRate: 1,
    },
    {
      name: 'bedrock',
      title: 'Bedrock: reserve input + cache + max_tokens, settle input + cache writes + 5 x output',
      kind: 'bedrock',
      protocol: 'bedrock-converse',
      emulator: { ...common, policy: { kind: 'bedrock', windowMs: w, rpm, tpm: bedrock.tokens } },
      limits: bedrock,
      moduleVariants: [paced('bedrock', { rpm, tpm: bedrock.tokens })],
      alternativesRefill: 'fixed-window',
      settles: true,
      chargesRefused: false,
      burndownRate: 5,
    },
  ];
}
