import type { LedgerEntry } from '../ledger.js';

/** What a provider limits. `tokens` is the combined figure; input and output may be limited apart. */
export type Dimension = 'requests' | 'tokens' | 'inputTokens' | 'outputTokens';

export const DIMENSIONS: readonly Dimension[] = ['requests', 'tokens', 'inputTokens', 'outputTokens'];

/** A figure per dimension: limits per window, or a charge. */
export type Figures = Partial<Record<Dimension, number>>;

/** One call as the provider sees it when it arrives. */
export interface CallFigures {
  /** The provider's character-based estimate of the whole prompt (cached parts included). */
  readonly estimatedInput: number;
  /** Prompt tokens outside the prompt cache, by the provider's tokenizer. */
  readonly input: number;
  /** Prompt tokens read from the cache. */
  readonly cacheRead: number;
  /** Prompt tokens written to the cache. */
  readonly cacheWrite: number;
  /** The call's `max_tokens`. */
  readonly maxTokens: number;
}

/** Who spent capacity: an admitted call, a rejected call the provider still counts, another consumer. */
export type ChargeSource = 'call' | 'rejected' | 'foreign';

/** One change of what a dimension has counted, dated where the provider counts it. */
export interface ChargeEvent {
  readonly at: number;
  readonly dimension: Dimension;
  readonly amount: number;
  readonly source: ChargeSource;
}

export type ChargeSink = (event: ChargeEvent) => void;

/** An admitted call, handed back to the policy when it completes or fails. */
export interface Ticket {
  readonly id: number;
  readonly at: number;
  readonly call: CallFigures;
  /** What the call is counted for now, per dimension. */
  readonly charged: Figures;
  /** Sliding-window entries of the call, settled in place. */
  readonly entries: Partial<Record<Dimension, LedgerEntry>>;
}

export interface Rejection {
  readonly admitted: false;
  /** The first limit the call would break. */
  readonly dimension: Dimension;
  readonly limit: number;
  readonly used: number;
  readonly requested: number;
  /** Ms until every limit would let the call through, if nothing else arrived. */
  readonly retryAfterMs: number;
}

export type Admission = { readonly admitted: true; readonly ticket: Ticket } | Rejection;

/** A limit as rate-limit headers report it. */
export interface LimitState {
  readonly dimension: Dimension;
  readonly limit: number;
  readonly remaining: number;
  /** Ms until the limit is back to its initial state (fully replenished). */
  readonly resetMs: number;
}

export type PolicyKind = 'sliding-window' | 'openai' | 'anthropic' | 'bedrock';

/** How one provider counts calls against its limits. Times are epoch ms from the caller. */
export interface Policy {
  readonly kind: PolicyKind;
  readonly windowMs: number;
  readonly limits: Figures;
  /** Admits and charges the call, or says which limit it breaks and when to retry. */
  admit(now: number, call: CallFigures): Admission;
  /** Settles an admitted call on its real output. */
  complete(now: number, ticket: Ticket, outputTokens: number): void;
  /** An admitted call failed at the provider (a 5xx). */
  fail(now: number, ticket: Ticket): void;
  /** Another consumer of the same key spends this much; false when the provider refused it. */
  spend(now: number, amounts: Figures): boolean;
  /** Every limit in force, for rate-limit headers. */
  state(now: number): LimitState[];
}

/** Checks a limit from a config: a positive integer or absent. */
export function checkLimit(name: string, value: number | undefined): number | undefined {
  if (value === undefined || value === 0) return undefined;
  if (!Number.isInteger(value) || value < 0) throw new Error(`emulator policy: ${name} must be a positive integer, got ${value}`);
  return value;
}

export function checkWindow(windowMs: number): number {
  if (!Number.isFinite(windowMs) || windowMs <= 0) throw new Error(`emulator policy: windowMs must be positive, got ${windowMs}`);
  return windowMs;
}
