import { RateLimitConfigError, type RateLimitConfig, type RateLimiter } from '../../lib/index.js';
import { BACKENDS, type BackendUnderTest, sharingPair } from '../support/backends.js';
import { waitFor } from '../support/redis.js';

// Unknown capacity (learnLimits): the configured limits are where learning starts; the factor on
// them grows while demand presses against them, is cut by 429s for every process, and stays
// below the ceiling. Time passing is the input here, so some tests let it pass.
const pass = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

describe.each(BACKENDS)('learned limits on the %s store', (_name, make) => {
  let backend: BackendUnderTest;
  beforeAll(() => {
    backend = make();
  });
  afterAll(() => backend.close());

  const pair = (config: RateLimitConfig) => sharingPair(backend, 'gemini', config);

  // Asks for more than there is room for now: the acquire waits in the queue (pressing). The
  // growth it causes may admit a waiter ahead of it in the same call, so it shows as one more
  // waiting, or as the same number waiting with one more admitted (requests count in a sliding
  // window even with no rpm).
  async function pressFor(limiter: RateLimiter, tokens: number): Promise<void> {
    const before = await limiter.getStatus();
    void limiter.acquire({ tokens }).catch(() => undefined);
    await waitFor(
      async () => {
        const now = await limiter.getStatus();
        return now.queueDepth > before.queueDepth || (now.queueDepth >= 1 && now.requestsUsed > before.requestsUsed);
      },
      5000,
      'the pressing acquire to be placed',
    );
  }

  // Fills the limit, then presses against it (with a fifth more: a token bucket's slot for it is
  // a fifth of a window away, long enough to be seen queued).
  async function press(limiter: RateLimiter, fill: number): Promise<void> {
    await limiter.acquire({ tokens: fill }, { maxWaitMs: 0 });
    await pressFor(limiter, Math.ceil(fill / 5));
  }

  it.each(['sliding-window', 'token-bucket'] as const)(
    'grows the limits by increasePerWindow per window while demand presses against them (%s)',
    async (algorithm) => {
      const [a, b] = pair({ tpm: 100, windowSeconds: 1, algorithm, learnLimits: { increasePerWindow: 1 } });
      const started = Date.now();
      await press(a, 100);
      await pass(300);
      // Another process presses 300 ms later: 0.3 window of pressing counted, for both.
      await pressFor(b, 50);
      const elapsed = Date.now() - started;
      const status = await a.getStatus();
      expect(status.learning).toBe(true);
      expect(status.tokensLimit).toBe(100);
      expect(status.limitFactor).toBeGreaterThanOrEqual(1.29);
      expect(status.limitFactor).toBeLessThanOrEqual(1 + (elapsed + 2) / 1000);
      expect(status.limitsInForce.tokens).toBe(Math.floor(100 * status.limitFactor));
      expect((await b.getStatus()).limitFactor).toBe(status.limitFactor);
    },
  );

  it('does not grow while demand stays below the limits', async () => {
    const [a] = pair({ tpm: 1000, rpm: 100, windowSeconds: 1, learnLimits: { increasePerWindow: 1 } });
    for (let i = 0; i < 4; i++) {
      await a.acquire({ tokens: 10 });
      await pass(100);
    }
    const status = await a.getStatus();
    expect(status).toMatchObject({ learning: true, limitFactor: 1, limitsInForce: { tokens: 1000, requests: 100 } });
  });

  it('cuts the learned limits on a 429 for every process, and they stay cut until demand presses again', async () => {
    const [a, b] = pair({ tpm: 1000, windowSeconds: 1, learnLimits: true });
    await a.backOff({ retryAfterMs: 100 });
    await pass(300);
    // Fixed limits would have recovered 3% of the limit by now; learned ones do not recover by time.
    const status = await b.getStatus();
    expect(status.limitFactor).toBe(0.75);
    expect(status.limitsInForce.tokens).toBe(750);
    await a.acquire({ tokens: 700 });
    await expect(b.acquire({ tokens: 100 }, { maxWaitMs: 0 })).rejects.toThrow(/maxWaitMs/);
  });

  it('counts growth after a 429 from the end of its pause, not from the cut', async () => {
    const [a] = pair({ tpm: 100, windowSeconds: 1, learnLimits: { increasePerWindow: 1 } });
    const cut = await a.backOff({ retryAfterMs: 200 });
    expect(cut.limitFactor).toBe(0.75);
    await pass(250);
    // The first pressing acquire after the pause counts from its end: at most ~50 ms of growth.
    await press(a, 75);
    const factor = (await a.getStatus()).limitFactor;
    expect(factor).toBeGreaterThanOrEqual(0.75);
    expect(factor).toBeLessThan(0.75 + (Date.now() - cut.pausedUntil + 2) / 1000);
  });

  it('never grows past the ceiling, and the first ceiling reached holds every limit', async () => {
    const [a] = pair({ tpm: 100, rpm: 10, windowSeconds: 1, learnLimits: { ceiling: { tpm: 120 }, increasePerWindow: 10 } });
    await press(a, 100);
    await pass(200);
    await pressFor(a, 20);
    const status = await a.getStatus();
    expect(status.limitFactor).toBeCloseTo(1.2, 10);
    expect(status.limitsInForce).toEqual({ tokens: 120, inputTokens: 0, outputTokens: 0, requests: 12 });
  });

  it('reports fixed limits as not learning, with the limits in force after a cut', async () => {
    const [a] = pair({ tpm: 1000, rpm: 10 });
    await a.backOff({ retryAfterMs: 0 });
    const status = await a.getStatus();
    expect(status.learning).toBe(false);
    expect(status.limitsInForce.tokens).toBe(Math.floor(1000 * status.limitFactor));
    expect(status.limitsInForce.tokens).toBeLessThan(1000);
  });

  it('counts token-bucket charges and refunds at the rate in force after a cut', async () => {
    const [a] = pair({ tpm: 1000, algorithm: 'token-bucket' });
    await a.backOff({ retryAfterMs: 0 });
    const { recordId } = await a.acquire({ tokens: 600 });
    // 600 of the 750 in force: the bucket owes 600 tokens' worth of refill at 750 per window.
    expect((await a.getStatus()).tokensUsed).toBe(600);
    await a.release(recordId);
    expect((await a.getStatus()).tokensUsed).toBe(0);
  });

  it('rejects bad learning settings with typed errors that name the field', () => {
    const bad = (learnLimits: unknown) => () => backend.limiter('m', { tpm: 100, rpm: 10, learnLimits } as RateLimitConfig);
    expect(bad('yes')).toThrow(RateLimitConfigError);
    expect(bad('yes')).toThrow(/learnLimits must be true, false or an object/);
    expect(bad({ step: 1 })).toThrow(/learnLimits.step is not a learning setting/);
    expect(bad({ increasePerWindow: 0 })).toThrow(/learnLimits.increasePerWindow must be .* got 0/);
    expect(bad({ increasePerWindow: Number.NaN })).toThrow(/increasePerWindow/);
    expect(bad({ ceiling: { tpm: 50 } })).toThrow(/learnLimits.ceiling.tpm must be an integer from the starting tpm \(100\)/);
    expect(bad({ ceiling: { inputTpm: 500 } })).toThrow(/ceiling.inputTpm is set but inputTpm is off/);
    expect(bad({ ceiling: { tokens: 500 } })).toThrow(/ceiling.tokens is not a limit/);
    expect(bad({ ceiling: 5 })).toThrow(/ceiling must be an object/);
    expect(() => backend.limiter('m', { tpm: 100, learnLimits: true })).not.toThrow();
    expect(() => backend.limiter('m', { tpm: 100, learnLimits: false })).not.toThrow();
  });
});
