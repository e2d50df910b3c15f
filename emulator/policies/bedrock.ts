import {
  type Admission,
  type CallFigures,
  type ChargeSink,
  checkLimit,
  checkWindow,
  type Figures,
  type LimitState,
  type Policy,
  type Ticket,
} from './policy.js';
import { WindowedLimits } from './windowed.js';

export interface BedrockPolicyConfig {
  readonly kind: 'bedrock';
  readonly windowMs: number;
  readonly rpm?: number;
  /** Combined tokens per window. */
  readonly tpm?: number;
  /** Weight of an output token at settlement (default 5, as for recent Claude models). */
  readonly burndownRate?: number;
}

/**
 * Bedrock-like reserve and settle over a strict sliding window: a call reserves input + cache
 * writes + cache reads + `max_tokens` when it arrives, and settles at input + cache writes +
 * burndownRate x output when it completes (cache reads are released), dated at its arrival.
 */
export class BedrockPolicy implements Policy {
  readonly kind = 'bedrock';
  readonly windowMs: number;
  readonly limits: Figures;
  readonly burndownRate: number;
  private readonly window: WindowedLimits;
  private nextId = 1;

  constructor(config: BedrockPolicyConfig, sink?: ChargeSink) {
    this.windowMs = checkWindow(config.windowMs);
    this.limits = { requests: checkLimit('rpm', config.rpm), tokens: checkLimit('tpm', config.tpm) };
    this.burndownRate = config.burndownRate ?? 5;
    this.window = new WindowedLimits(this.windowMs, this.limits, sink);
  }

  admit(now: number, call: CallFigures): Admission {
    const cost: Figures = { requests: 1, tokens: call.input + call.cacheWrite + call.cacheRead + call.maxTokens };
    const broken = this.window.check(now, cost);
    if (broken) return { admitted: false, ...broken };
    const entries = this.window.add(now, cost, 'call');
    return { admitted: true, ticket: { id: this.nextId++, at: now, call, charged: cost, entries } };
  }

  complete(now: number, ticket: Ticket, outputTokens: number): void {
    const { input, cacheWrite } = ticket.call;
    this.window.settle(now, ticket.entries, { tokens: Math.ceil(input + cacheWrite + this.burndownRate * outputTokens) });
  }

  fail(now: number, ticket: Ticket): void {
    this.window.settle(now, ticket.entries, { requests: 0, tokens: 0 });
  }

  spend(now: number, amounts: Figures): boolean {
    if (this.window.check(now, amounts)) return false;
    this.window.add(now, amounts, 'foreign');
    return true;
  }

  state(now: number): LimitState[] {
    return this.window.state(now);
  }
}
