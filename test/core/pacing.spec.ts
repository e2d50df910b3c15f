import { AcquireTimeoutError, RateLimitConfigError } from '../../lib/index.js';
import { BACKENDS, type BackendUnderTest } from '../support/backends.js';

// A waiter is admitted by whichever call comes once it fits: its admission (slotTime, store
// clock) is never earlier than the limits allow; how much later depends on a busy machine, so
// only lower bounds, order and status figures are asserted.
describe.each(BACKENDS)('quantumSeconds and deliveryMarginMs on the %s store', (_name, make) => {
  let backend: BackendUnderTest;
  beforeAll(() => {
    backend = make();
  });
  afterAll(() => backend.close());

  describe('a sliding window with a quantum', () => {
    it('paces admissions by the quantum while the window still holds its limit', async () => {
      // 10 per second over the window, 2 per 0.2 s quantum: a pair at once, then one per 100 ms,
      // and the 11th waits for the window, not the quantum
      const limiter = backend.limiter('gpt', { rpm: 10, windowSeconds: 1, quantumSeconds: 0.2 });
      const results = await Promise.all(Array.from({ length: 11 }, () => limiter.acquire({ tokens: 0 })));
      const waits = results.map((r) => r.waitTime);
      expect(waits.slice(0, 2)).toEqual([0, 0]);
      // admitted in arrival order, each no earlier than the pacing bucket allows
      const slots = results.map((r) => r.slotTime - results[0].slotTime);
      expect(slots).toEqual([...slots].sort((a, b) => a - b));
      for (let k = 2; k < 10; k++) expect(slots[k]).toBeGreaterThanOrEqual((k - 1) * 100);
      // the 11th waits for the first pair to leave the window
      expect(slots[10]).toBeGreaterThanOrEqual(1000);
      const positions = results.map((r) => r.queuePosition);
      expect(positions).toEqual([...positions].sort((a, b) => a - b));
    });

    it('gives a downward adjust and a release back to the pacing bucket, as to the window', async () => {
      // 100 tokens per 1 s quantum, 1000 per 10 s window
      const limiter = backend.limiter('gemini', { inputTpm: 1000, outputTpm: 1000, windowSeconds: 10, quantumSeconds: 1 });
      const first = await limiter.acquire({ inputTokens: 0, outputTokens: 100 });
      expect(first.waitTime).toBe(0);
      await expect(limiter.acquire({ inputTokens: 0, outputTokens: 100 }, { maxWaitMs: 0 })).rejects.toThrow(AcquireTimeoutError);
      await limiter.adjust(first.recordId, { actualOutput: 0 });
      const second = await limiter.acquire({ inputTokens: 0, outputTokens: 100 }, { maxWaitMs: 0 });
      await limiter.release(second.recordId);
      await expect(limiter.acquire({ inputTokens: 0, outputTokens: 100 }, { maxWaitMs: 0 })).resolves.toMatchObject({ waitTime: 0 });
    });

    it('paces only when a quantum is set, whatever the provider profile', async () => {
      // 60 per minute by a quantum of 1 s: one request per second; without a quantum, both at once
      const paced = backend.limiter('gpt', { provider: 'openai', rpm: 60, quantumSeconds: 1 });
      await paced.acquire({ inputTokens: 1, outputTokens: 1 });
      await expect(paced.acquire({ inputTokens: 1, outputTokens: 1 }, { maxWaitMs: 900 })).rejects.toThrow(AcquireTimeoutError);
      for (const provider of ['openai', 'vertex', 'bedrock', 'custom'] as const) {
        const limiter = backend.limiter('gpt', { provider, rpm: 60 });
        await limiter.acquire({ inputTokens: 1, outputTokens: 1 });
        await expect(limiter.acquire({ inputTokens: 1, outputTokens: 1 }, { maxWaitMs: 0 })).resolves.toMatchObject({ waitTime: 0 });
      }
    });
  });

  describe('a delivery margin', () => {
    it('keeps a sliding window charge counted that much longer than the window', async () => {
      const limiter = backend.limiter('m', { tpm: 100, windowSeconds: 1, deliveryMarginMs: 200 });
      const full = await limiter.acquire({ tokens: 100 });
      const next = await limiter.acquire({ tokens: 10 }, { maxWaitMs: 3000 });
      expect(next.waitTime).toBeGreaterThan(0);
      expect(next.slotTime - full.slotTime).toBeGreaterThanOrEqual(1200);
      expect((await limiter.getStatus()).windowSeconds).toBe(1);
    });

    it('keeps that much refill as headroom in a token bucket, refilling at the full rate', async () => {
      // 1000 tokens per second: the bucket holds 900, and 450 more take 450 ms (not 500 at 900
      // per second)
      const limiter = backend.limiter('claude', { algorithm: 'token-bucket', tpm: 1000, windowSeconds: 1, deliveryMarginMs: 100 });
      const full = await limiter.acquire({ tokens: 900 });
      expect(full.waitTime).toBe(0);
      const next = await limiter.acquire({ tokens: 450 }, { maxWaitMs: 3000 });
      expect(next.waitTime).toBeGreaterThan(0);
      expect(next.slotTime - full.slotTime).toBeGreaterThanOrEqual(450);
      expect((await limiter.getStatus()).tokensUsed).toBeLessThanOrEqual(900);
      // Full rate: whatever refilled since, 1 token per ms (the store and the test read one
      // clock), can be taken at once; at 900 per second it could not. The 450 left the bucket
      // empty at full + 900 ms, or at their admission if that came later (a full bucket refills
      // no further); 2 tokens cover rounding to the ms; at most a bucketful.
      const emptyAt = Math.max(full.slotTime + 900, next.slotTime) - 450;
      const refilled = Math.max(0, Math.min(900, Date.now() - emptyAt - 2));
      await expect(limiter.acquire({ tokens: refilled }, { maxWaitMs: 0 })).resolves.toMatchObject({ waitTime: 0 });
    });

    it("is 100 ms for the provider profiles, at most 5% of the window, and none for 'custom'", async () => {
      // token bucket of 2 s at 1 token per ms: 1900 at once with the default margin, 2000 without
      // (the rest of a whole bucket is admitted no earlier than the margin's refill allows)
      const anthropic = backend.limiter('claude', { provider: 'anthropic', tpm: 2000, windowSeconds: 2 });
      const first = await anthropic.acquire({ inputTokens: 1800, outputTokens: 0 });
      expect(first.waitTime).toBe(0);
      await expect(anthropic.acquire({ inputTokens: 100, outputTokens: 0 }, { maxWaitMs: 0 })).resolves.toMatchObject({ waitTime: 0 });
      const rest = await anthropic.acquire({ inputTokens: 100, outputTokens: 0 }, { maxWaitMs: 3000 });
      expect(rest.slotTime - first.slotTime).toBeGreaterThanOrEqual(100);
      const custom = backend.limiter('claude', { algorithm: 'token-bucket', tpm: 2000, windowSeconds: 2 });
      await custom.acquire({ tokens: 1900 });
      await expect(custom.acquire({ tokens: 100 }, { maxWaitMs: 0 })).resolves.toMatchObject({ waitTime: 0 });
      // 5% of a 1 s window is 50 ms: 950 at once, and the last 50 after 50 ms of refill
      const short = backend.limiter('claude', { provider: 'anthropic', tpm: 1000, windowSeconds: 1 });
      const most = await short.acquire({ inputTokens: 900, outputTokens: 0 });
      expect(most.waitTime).toBe(0);
      await expect(short.acquire({ inputTokens: 50, outputTokens: 0 }, { maxWaitMs: 0 })).resolves.toMatchObject({ waitTime: 0 });
      const last = await short.acquire({ inputTokens: 50, outputTokens: 0 }, { maxWaitMs: 3000 });
      expect(last.slotTime - most.slotTime).toBeGreaterThanOrEqual(50);
    });
  });

  it('rejects a quantum or margin that cannot apply, saying what to set', () => {
    const bad = (config: object) => () => backend.limiter('m', { tpm: 10, ...config });
    expect(bad({ algorithm: 'token-bucket', quantumSeconds: 1 })).toThrow(
      /quantumSeconds applies to algorithm 'sliding-window' only.*bucketSeconds/,
    );
    expect(bad({ windowSeconds: 10, quantumSeconds: 11 })).toThrow(/quantumSeconds must be .* to windowSeconds \(10\).*got 11/);
    expect(bad({ quantumSeconds: 0.0005 })).toThrow(RateLimitConfigError);
    expect(bad({ deliveryMarginMs: -1 })).toThrow(/deliveryMarginMs must be a whole number of ms/);
    expect(bad({ deliveryMarginMs: 2.5 })).toThrow(RateLimitConfigError);
    expect(bad({ windowSeconds: 1, deliveryMarginMs: 1000 })).toThrow(/less than windowSeconds \(1000 ms\)/);
    expect(bad({ quantumSeconds: 0.5, deliveryMarginMs: 500 })).toThrow(/less than quantumSeconds \(500 ms\)/);
    expect(bad({ algorithm: 'token-bucket', bucketSeconds: 0.2, deliveryMarginMs: 200 })).toThrow(/less than bucketSeconds \(200 ms\)/);
    expect(bad({ deliveryMarginMs: '50' })).toThrow(/got "50"/);
  });
});
