import { AcquireTimeoutError, type RateLimiter } from '../../lib/index.js';
import { BACKENDS, type BackendUnderTest } from '../support/backends.js';

// A waiter is admitted when the bucket has refilled enough, by whichever call comes next: its
// admission (slotTime, store clock) is never earlier than the refill allows, and how much later
// depends on a busy machine, so only the lower bounds and the order are asserted.
describe.each(BACKENDS)("algorithm 'token-bucket' on the %s store", (_name, make) => {
  let backend: BackendUnderTest;
  beforeAll(() => {
    backend = make();
  });
  afterAll(() => backend.close());

  const bucket = (config: object) => backend.limiter('claude', { algorithm: 'token-bucket', ...config });

  it('admits a bucketful at once, then paces at the refill rate, in arrival order', async () => {
    // 10 requests per second, bucket of 0.2 s = 2 requests, one more every 100 ms
    const limiter = bucket({ rpm: 10, windowSeconds: 1, bucketSeconds: 0.2 });
    const results = await Promise.all([0, 1, 2, 3].map(() => limiter.acquire({ tokens: 0 })));
    const waits = results.map((r) => r.waitTime);
    expect(waits.slice(0, 2)).toEqual([0, 0]);
    expect(waits[2]).toBeGreaterThan(0);
    expect(results.map((r) => r.queuePosition)).toEqual([0, 0, 0, 1]);
    const slots = results.map((r) => r.slotTime - results[0].slotTime);
    expect(slots[2]).toBeGreaterThanOrEqual(100);
    expect(slots[3]).toBeGreaterThanOrEqual(200);
    expect(slots[3]).toBeGreaterThanOrEqual(slots[2]);
  });

  it('holds a whole window of the limit by default and refills it continuously', async () => {
    const limiter = bucket({ tpm: 1000, windowSeconds: 1 });
    const full = await limiter.acquire({ tokens: 1000 });
    expect(full.waitTime).toBe(0);
    // 100 tokens refill in 100 ms: admitted then, not after the whole window (maxWaitMs)
    const next = await limiter.acquire({ tokens: 100 }, { maxWaitMs: 1000 });
    expect(next.waitTime).toBeGreaterThan(0);
    expect(next.slotTime - full.slotTime).toBeGreaterThanOrEqual(100);
    expect(next.slotTime - full.slotTime).toBeLessThan(1000);
  });

  it('starts a request larger than the bucket once the bucket is full, instead of never', async () => {
    const limiter = bucket({ tpm: 1000, windowSeconds: 1, bucketSeconds: 0.1 });
    const big = await limiter.acquire({ tokens: 500 });
    expect(big.waitTime).toBe(0);
    const after = await limiter.acquire({ tokens: 50 }, { maxWaitMs: 2000 });
    // the 500-token debt (500 ms) minus the 100-token bucket, plus 50 tokens (50 ms)
    expect(after.waitTime).toBeGreaterThan(0);
    expect(after.slotTime - big.slotTime).toBeGreaterThanOrEqual(450);
  });

  it('gives capacity back on a downward adjust and on release, once each', async () => {
    const limiter = bucket({ tpm: 1000, windowSeconds: 10 });
    const r = await limiter.acquire({ inputTokens: 0, outputTokens: 1000 });
    await expect(limiter.acquire({ tokens: 500 }, { maxWaitMs: 0 })).rejects.toThrow(AcquireTimeoutError);
    await limiter.adjust(r.recordId, { actualOutput: 400 });
    await limiter.adjust(r.recordId, { actualOutput: 400 });
    const s = await limiter.acquire({ tokens: 500 }, { maxWaitMs: 0 });
    await limiter.release(s.recordId);
    await limiter.release(s.recordId);
    // 400 left owed, less what refilled meanwhile (0.1 token per ms)
    const owed = (await limiter.getStatus()).tokensUsed;
    expect(owed).toBeGreaterThanOrEqual(350);
    expect(owed).toBeLessThanOrEqual(400);
    await expect(limiter.acquire({ tokens: 600 }, { maxWaitMs: 0 })).resolves.toMatchObject({ waitTime: 0 });
  });

  it('reports what each bucket still has to refill, queued reservations included', async () => {
    const limiter: RateLimiter = bucket({ inputTpm: 600, outputTpm: 60, rpm: 6, windowSeconds: 60 });
    await limiter.acquire({ inputTokens: 300, outputTokens: 30 });
    const s = await limiter.getStatus();
    expect(s).toMatchObject({ inputTokensLimit: 600, outputTokensLimit: 60, requestsLimit: 6, queueDepth: 0 });
    expect([s.inputTokensUsed, s.outputTokensUsed, s.requestsUsed]).toEqual([300, 30, 1]);
  });

  it('keeps FIFO and reserves nothing past maxWaitMs', async () => {
    const limiter = bucket({ rpm: 2, windowSeconds: 1, bucketSeconds: 0.5 });
    await limiter.acquire({ tokens: 0 });
    await expect(limiter.acquire({ tokens: 0 }, { maxWaitMs: 100 })).rejects.toThrow(AcquireTimeoutError);
    expect((await limiter.getStatus()).requestsUsed).toBe(1);
  });
});
