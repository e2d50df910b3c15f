import type { ResolvedConfig } from './config.js';
import { describe } from './describe.js';
import { InvalidTokenCountError, RequestTooLargeError } from './errors.js';
import { type CallTokens, type ChargedFigures, chargeOf } from '../providers/profiles.js';
import type { ParsedRecordId } from './record-id.js';
import { type Charge, MAX_COUNT } from './store.js';

/**
 * What one call will use: a combined figure, or input and output apart (needed for split limits
 * and provider profiles). `outputTokens` is the call's `max_tokens` or an estimate; cache figures
 * are prompt-cache reads and writes, counted as the provider profile says.
 */
export type TokenRequest =
  | { readonly tokens: number; readonly inputTokens?: undefined; readonly outputTokens?: undefined }
  | {
      readonly inputTokens: number;
      readonly outputTokens: number;
      readonly cacheReadTokens?: number;
      readonly cacheWriteTokens?: number;
      readonly tokens?: undefined;
    };

/** The real usage of a call, reported after it returns. */
export interface ActualUsage {
  readonly actualOutput: number;
  /** Defaults to the input the reservation was made with. */
  readonly actualInput?: number;
  /** Defaults to the cache reads the reservation was made with. */
  readonly actualCacheRead?: number;
  /** Defaults to the cache writes the reservation was made with. */
  readonly actualCacheWrite?: number;
}

/** A validated request: what the store charges, and the raw figures the record id keeps. */
export interface RequestCost {
  readonly cost: Charge;
  readonly call: CallTokens;
}

export const NO_CHARGE: Charge = { tokens: 0, inputTokens: 0, outputTokens: 0, requests: 0 };

export function addCharges(a: Charge, b: Charge): Charge {
  return {
    tokens: a.tokens + b.tokens,
    inputTokens: a.inputTokens + b.inputTokens,
    outputTokens: a.outputTokens + b.outputTokens,
    requests: a.requests + b.requests,
  };
}

/**
 * A count the stores can keep exactly: a safe integer from 0 to MAX_COUNT (their sums stay
 * below 2^53 only because every single figure does).
 */
export function isCount(value: unknown): value is number {
  return typeof value === 'number' && Number.isSafeInteger(value) && value >= 0 && value <= MAX_COUNT;
}

function checkCount(name: string, value: unknown): number {
  if (isCount(value)) return value;
  const why = typeof value === 'number' && Number.isInteger(value) && value > MAX_COUNT ? ` (at most ${MAX_COUNT})` : '';
  throw new InvalidTokenCountError(`${name} must be a non-negative integer${why}, got ${describe(value)}`);
}

/** A charged figure must also stay a count: a burndown rate can push the combined one past it. */
function checkCharged(model: string, figures: ChargedFigures): ChargedFigures {
  // Three comparisons rather than Object.entries: this runs on every acquire.
  if (figures.tokens > MAX_COUNT || figures.inputTokens > MAX_COUNT || figures.outputTokens > MAX_COUNT) {
    const [name, value] = Object.entries(figures).find(([, v]) => (v as number) > MAX_COUNT) as [string, number];
    throw new InvalidTokenCountError(
      `${model}: the call would be charged ${value} ${name}, more than one request may count (${MAX_COUNT})`,
    );
  }
  return figures;
}

/**
 * What a request costs under a limiter's config, checked: every count a non-negative integer up
 * to MAX_COUNT (`InvalidTokenCountError`, BigInt and strings included), and no figure larger than
 * its limit (`RequestTooLargeError`: it could never be admitted).
 */
export function costOf(config: ResolvedConfig, model: string, request: unknown): RequestCost {
  if (request === null || typeof request !== 'object') {
    throw new InvalidTokenCountError(`acquire needs { tokens } or { inputTokens, outputTokens }, got ${describe(request)}`);
  }
  const { tokens, inputTokens, outputTokens, cacheReadTokens, cacheWriteTokens } = request as Record<string, unknown>;
  let call: CallTokens;
  if (tokens !== undefined) {
    if (inputTokens !== undefined || outputTokens !== undefined || cacheReadTokens !== undefined || cacheWriteTokens !== undefined) {
      throw new InvalidTokenCountError('pass either tokens or inputTokens and outputTokens (with optional cache figures), not both');
    }
    const count = checkCount('tokens', tokens);
    if (config.split) {
      throw new InvalidTokenCountError(
        `${model} has input or output limits (inputTpm/outputTpm): pass inputTokens and outputTokens instead of tokens`,
      );
    }
    call = { input: count, output: 0, cacheRead: 0, cacheWrite: 0 };
  } else {
    call = {
      input: checkCount('inputTokens', inputTokens),
      output: checkCount('outputTokens', outputTokens),
      cacheRead: checkCount('cacheReadTokens', cacheReadTokens ?? 0),
      cacheWrite: checkCount('cacheWriteTokens', cacheWriteTokens ?? 0),
    };
  }
  const charged = checkCharged(model, chargeOf(config.profile, config.burndownRate, call, 'admit'));
  const cost: Charge = { tokens: charged.tokens, inputTokens: charged.inputTokens, outputTokens: charged.outputTokens, requests: 1 };
  const { limits } = config;
  const tooLarge = (name: string, needed: number, limit: number): never => {
    throw new RequestTooLargeError(
      `a request for ${needed} tokens can never fit ${model}'s ${name} of ${limit} per ${config.windowMs / 1000} s (burst included); split the request or raise the limit`,
      name,
      needed,
      limit,
    );
  };
  if (limits.tokens > 0 && cost.tokens > limits.tokens) tooLarge('tpm', cost.tokens, limits.tokens);
  if (limits.inputTokens > 0 && cost.inputTokens > limits.inputTokens) tooLarge('inputTpm', cost.inputTokens, limits.inputTokens);
  if (limits.outputTokens > 0 && cost.outputTokens > limits.outputTokens) tooLarge('outputTpm', cost.outputTokens, limits.outputTokens);
  return { cost, call };
}

/**
 * What a reservation settles at after its call: the profile's settle charge of the real usage,
 * figures not reported defaulting to the request's (the record id carries those).
 */
export function adjustTarget(config: ResolvedConfig, model: string, record: ParsedRecordId, usage: unknown): ChargedFigures {
  if (usage === null || typeof usage !== 'object') {
    throw new InvalidTokenCountError(`adjust needs { actualOutput, actualInput? }, got ${describe(usage)}`);
  }
  const u = usage as Record<string, unknown>;
  const optional = (name: string, fallback: number) => (u[name] === undefined ? fallback : checkCount(name, u[name]));
  const call: CallTokens = {
    input: optional('actualInput', record.input),
    output: checkCount('actualOutput', u.actualOutput),
    cacheRead: optional('actualCacheRead', record.cacheRead),
    cacheWrite: optional('actualCacheWrite', record.cacheWrite),
  };
  return checkCharged(model, chargeOf(config.profile, config.burndownRate, call, 'settle'));
}
