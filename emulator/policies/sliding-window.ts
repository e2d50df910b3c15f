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

export interface SlidingWindowPolicyConfig {
  readonly kind: 'sliding-window';
  readonly windowMs: number;
  readonly rpm?: number;
  /** Combined: all input (cached too) + output. */
  readonly tpm?: number;
  /** All input, cached parts included. */
  readonly inputTpm?: number;
  readonly outputTpm?: number;
}

/**
 * A strict sliding window (Vertex-like split quotas): a call counts for exactly one window from
 * its arrival, with all its input and `max_tokens` of output, settled to the real output when it
 * completes. Any window of the configured length holds at most each limit.
 */
export class SlidingWindowPolicy implements Policy {
  readonly kind = 'sliding-window';
  readonly windowMs: number;
  readonly limits: Figures;
  private readonly window: WindowedLimits;
  private nextId = 1;

  constructor(config: SlidingWindowPolicyConfig, sink?: ChargeSink) {
    this.windowMs = checkWindow(config.windowMs);
    this.limits = {
      requests: checkLimit('rpm', config.rpm),
      tokens: checkLimit('tpm', config.tpm),
      inputTokens: checkLimit('inputTpm', config.inputTpm),
      outputTokens: checkLimit('outputTpm', config.outputTpm),
    };
    this.window = new WindowedLimits(this.windowMs, this.limits, sink);
  }

  private static chargeOf(call: CallFigures, output: number): Figures {
    const input = call.input + call.cacheRead + call.cacheWrite;
    return { requests: 1, inputTokens: input, outputTokens: output, tokens: input + output };
  }

  admit(now: number, call: CallFigures): Admission {
    const cost = SlidingWindowPolicy.chargeOf(call, call.maxTokens);
    const broken = this.window.check(now, cost);
    if (broken) return { admitted: false, ...broken };
    const entries = this.window.add(now, cost, 'call');
    return { admitted: true, ticket: { id: this.nextId++, at: now, call, charged: cost, entries } };
  }

  complete(now: number, ticket: Ticket, outputTokens: number): void {
    this.window.settle(now, ticket.entries, SlidingWindowPolicy.chargeOf(ticket.call, outputTokens));
  }

  fail(now: number, ticket: Ticket): void {
    this.window.settle(now, ticket.entries, { requests: 0, inputTokens: 0, outputTokens: 0, tokens: 0 });
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
