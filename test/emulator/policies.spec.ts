import { createPolicy } from '../../emulator/policies/index.js';
import type { Admission, CallFigures, ChargeEvent, Policy, Ticket } from '../../emulator/policies/policy.js';

function call(figures: Partial<CallFigures> = {}): CallFigures {
  const input = figures.input ?? 1000;
  return { estimatedInput: input, input, cacheRead: 0, cacheWrite: 0, maxTokens: 500, ...figures };
}

function admitted(admission: Admission): Ticket {
  if (!admission.admitted) throw new Error(`expected admission, got a 429 on ${admission.dimension}`);
  return admission.ticket;
}

function rejected(admission: Admission) {
  if (admission.admitted) throw new Error('expected a 429, the call was admitted');
  return admission;
}

function recording(): { events: ChargeEvent[]; sink: (e: ChargeEvent) => void } {
  const events: ChargeEvent[] = [];
  return { events, sink: (e) => events.push(e) };
}

describe("policy 'sliding-window'", () => {
  const make = (sink?: (e: ChargeEvent) => void): Policy =>
    createPolicy({ kind: 'sliding-window', windowMs: 1000, rpm: 10, inputTpm: 3000, outputTpm: 1000 }, sink);

  it('reserves all input and max_tokens at arrival and refuses what would break a limit over any window', () => {
    const policy = make();
    admitted(policy.admit(0, call({ input: 1000, cacheRead: 500, cacheWrite: 500, maxTokens: 600 })));
    const r = rejected(policy.admit(10, call({ input: 100, maxTokens: 500 })));
    expect(r).toMatchObject({ dimension: 'outputTokens', limit: 1000, used: 600, requested: 500, retryAfterMs: 990 });
    admitted(policy.admit(1000, call({ input: 100, maxTokens: 500 })));
  });

  it('settles output to what was produced, dated at arrival, freeing the rest of the window at once', () => {
    const { events, sink } = recording();
    const policy = make(sink);
    const ticket = admitted(policy.admit(0, call({ maxTokens: 900 })));
    rejected(policy.admit(100, call({ maxTokens: 200 })));
    policy.complete(200, ticket, 300);
    admitted(policy.admit(200, call({ maxTokens: 200 })));
    expect(events.filter((e) => e.dimension === 'outputTokens')).toEqual([
      { at: 0, dimension: 'outputTokens', amount: 900, source: 'call' },
      { at: 0, dimension: 'outputTokens', amount: -600, source: 'call' },
      { at: 200, dimension: 'outputTokens', amount: 200, source: 'call' },
    ]);
  });

  it('gives everything back when the call fails at the provider', () => {
    const policy = make();
    const ticket = admitted(policy.admit(0, call({ input: 2500 })));
    policy.fail(5, ticket);
    expect(policy.state(5).find((s) => s.dimension === 'inputTokens')?.remaining).toBe(3000);
  });
});

describe("policy 'openai'", () => {
  it('charges the character estimate of the prompt plus max_tokens, and keeps it whatever was used', () => {
    const policy = createPolicy({ kind: 'openai', windowMs: 1000, tpm: 10_000 });
    const ticket = admitted(policy.admit(0, call({ estimatedInput: 1200, input: 1000, maxTokens: 4000 })));
    policy.complete(50, ticket, 10);
    expect(policy.state(50).find((s) => s.dimension === 'tokens')?.remaining).toBe(4800);
  });

  it('counts a refused call against the limits too, so resending at once does not help', () => {
    const { events, sink } = recording();
    const policy = createPolicy({ kind: 'openai', windowMs: 1000, tpm: 5000, rpm: 100 }, sink);
    admitted(policy.admit(0, call({ estimatedInput: 3000, maxTokens: 1000 })));
    rejected(policy.admit(10, call({ estimatedInput: 1000, maxTokens: 1000 })));
    expect(events.filter((e) => e.source === 'rejected')).toEqual([
      { at: 10, dimension: 'requests', amount: 1, source: 'rejected' },
      { at: 10, dimension: 'tokens', amount: 2000, source: 'rejected' },
    ]);
    // The first call's charge leaves at 1000, the refused one's only at 1010.
    rejected(policy.admit(1005, call({ estimatedInput: 3000, maxTokens: 1000 })));
  });

  it('does not charge refused calls when told so', () => {
    const policy = createPolicy({ kind: 'openai', windowMs: 1000, tpm: 5000, chargeRejected: false });
    admitted(policy.admit(0, call({ estimatedInput: 4000, maxTokens: 1000 })));
    rejected(policy.admit(10, call({ estimatedInput: 1, maxTokens: 1 })));
    expect(policy.state(10)[0]?.remaining).toBe(0);
  });

  it('enforces a per-minute limit per quantum when quantized, even with the minute far from full', () => {
    const policy = createPolicy({ kind: 'openai', windowMs: 6000, tpm: 60_000, quantumMs: 100, chargeRejected: false });
    // 60,000 per 6 s, quantized per 100 ms: 1,000 per quantum.
    admitted(policy.admit(1000, call({ estimatedInput: 500, maxTokens: 400 })));
    const r = rejected(policy.admit(1050, call({ estimatedInput: 100, maxTokens: 100 })));
    expect(r).toMatchObject({ dimension: 'tokens', limit: 1000, retryAfterMs: 50 });
    admitted(policy.admit(1100, call({ estimatedInput: 100, maxTokens: 100 })));
  });

  it("enforces a quantum as a token bucket of one quantum's worth with quantumKind 'bucket'", () => {
    const policy = createPolicy(
      { kind: 'openai', windowMs: 6000, tpm: 60_000, quantumMs: 100, quantumKind: 'bucket', chargeRejected: false },
      undefined,
      0,
    );
    // 1,000 per quantum, refilled at 10 per ms: no reset at quantum boundaries, no burst beyond one quantum.
    admitted(policy.admit(0, call({ estimatedInput: 500, maxTokens: 500 })));
    expect(rejected(policy.admit(99, call({ estimatedInput: 500, maxTokens: 500 }))).retryAfterMs).toBeCloseTo(1, 5);
    admitted(policy.admit(100, call({ estimatedInput: 500, maxTokens: 500 })));
    rejected(policy.admit(120, call({ estimatedInput: 250, maxTokens: 0 })));
  });

  it('keeps the charge of a call that failed at the provider', () => {
    const policy = createPolicy({ kind: 'openai', windowMs: 1000, tpm: 5000 });
    const ticket = admitted(policy.admit(0, call({ estimatedInput: 1000, maxTokens: 1000 })));
    policy.fail(5, ticket);
    expect(policy.state(5)[0]?.remaining).toBe(3000);
  });
});

describe("policy 'anthropic'", () => {
  const make = (extra = {}, sink?: (e: ChargeEvent) => void) =>
    createPolicy({ kind: 'anthropic', windowMs: 1000, rpm: 100, inputTpm: 10_000, outputTpm: 2000, ...extra }, sink, 0);

  it('counts uncached input and cache writes against ITPM, not cache reads', () => {
    const policy = make();
    admitted(policy.admit(0, call({ input: 1000, cacheWrite: 2000, cacheRead: 50_000 })));
    expect(policy.state(0).find((s) => s.dimension === 'inputTokens')?.remaining).toBe(7000);
  });

  it('counts cache reads too for older models when told so', () => {
    const policy = make({ cacheReadsCount: true });
    rejected(policy.admit(0, call({ input: 1000, cacheRead: 9500 })));
  });

  it('refills continuously rather than resetting at window boundaries', () => {
    const policy = make();
    admitted(policy.admit(0, call({ input: 10_000 })));
    const r = rejected(policy.admit(0, call({ input: 1000 })));
    expect(r).toMatchObject({ dimension: 'inputTokens', retryAfterMs: 100 });
    admitted(policy.admit(100, call({ input: 1000 })));
    rejected(policy.admit(100, call({ input: 1 })));
  });

  it('does not look at max_tokens for OTPM, counts output as produced, and refuses calls while OTPM is spent', () => {
    const { events, sink } = recording();
    const policy = make({}, sink);
    const big = admitted(policy.admit(0, call({ input: 10, maxTokens: 100_000 })));
    policy.complete(10, big, 2500);
    expect(events.filter((e) => e.dimension === 'outputTokens')).toEqual([
      { at: 10, dimension: 'outputTokens', amount: 2500, source: 'call' },
    ]);
    // OTPM was full (2000) and is now at -500, refilling 2 per ms: empty until it is back at 1.
    const r = rejected(policy.admit(10, call({ input: 10 })));
    expect(r.dimension).toBe('outputTokens');
    expect(r.retryAfterMs).toBeCloseTo(250.5, 3);
  });

  it("reserves max_tokens and returns the unused part with outputCounting 'max-tokens'", () => {
    const policy = make({ outputCounting: 'max-tokens' });
    const t = admitted(policy.admit(0, call({ input: 10, maxTokens: 1500 })));
    rejected(policy.admit(0, call({ input: 10, maxTokens: 600 })));
    policy.complete(0, t, 100);
    admitted(policy.admit(0, call({ input: 10, maxTokens: 600 })));
  });

  it('holds only bucketMs worth of refill when told so, so per-minute limits are paced within the minute', () => {
    const policy = make({ bucketMs: 100 });
    // 10,000 per second, bucket of 100 ms = 1,000.
    rejected(policy.admit(0, call({ input: 1001 })));
    admitted(policy.admit(0, call({ input: 1000 })));
  });
});

describe("policy 'bedrock'", () => {
  it('reserves input, cache reads and writes, and max_tokens at weight 1 on arrival', () => {
    const policy = createPolicy({ kind: 'bedrock', windowMs: 1000, tpm: 10_000 });
    admitted(policy.admit(0, call({ input: 1000, cacheRead: 3000, cacheWrite: 500, maxTokens: 4000 })));
    expect(policy.state(0)[0]?.remaining).toBe(1500);
  });

  it('settles at input + cache writes + 5 x output, releasing cache reads, dated at arrival', () => {
    const { events, sink } = recording();
    const policy = createPolicy({ kind: 'bedrock', windowMs: 1000, tpm: 10_000 }, sink);
    const t = admitted(policy.admit(0, call({ input: 1000, cacheRead: 3000, cacheWrite: 500, maxTokens: 4000 })));
    policy.complete(300, t, 200);
    expect(policy.state(300)[0]?.remaining).toBe(10_000 - 2500);
    expect(events.map((e) => [e.at, e.amount])).toEqual([
      [0, 8500],
      [0, -6000],
    ]);
  });

  it('charges more than it reserved when the output was long, and then refuses until it has left the window', () => {
    const policy = createPolicy({ kind: 'bedrock', windowMs: 1000, tpm: 10_000, burndownRate: 5 });
    const t = admitted(policy.admit(0, call({ input: 1000, maxTokens: 2000 })));
    policy.complete(100, t, 2000);
    expect(policy.state(100)[0]?.remaining).toBe(0);
    rejected(policy.admit(100, call({ input: 1, maxTokens: 1 })));
    admitted(policy.admit(1000, call({ input: 1, maxTokens: 1 })));
  });
});

describe('foreign consumers', () => {
  it('spend capacity through the same limits and are refused when it is gone', () => {
    const { events, sink } = recording();
    const policy = createPolicy({ kind: 'sliding-window', windowMs: 1000, tpm: 1000 }, sink);
    expect(policy.spend(0, { tokens: 600 })).toBe(true);
    expect(policy.spend(1, { tokens: 600 })).toBe(false);
    expect(events).toEqual([{ at: 0, dimension: 'tokens', amount: 600, source: 'foreign' }]);
    rejected(policy.admit(2, call({ input: 300, maxTokens: 200 })));
  });
});
