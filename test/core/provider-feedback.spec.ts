import { AcquireTimeoutError, parseDurationMs, readProviderHeaders, type RateLimitConfig } from '../../lib/index.js';
import { BACKENDS, type BackendUnderTest, sharingPair } from '../support/backends.js';
import { waitFor } from '../support/redis.js';

describe('provider headers', () => {
  it('reads durations as OpenAI writes them', () => {
    expect(parseDurationMs('6m0s')).toBe(360_000);
    expect(parseDurationMs('1s')).toBe(1000);
    expect(parseDurationMs('12ms')).toBe(12);
    expect(parseDurationMs('1h2m3.5s')).toBe(3_723_500);
    expect(parseDurationMs('soon')).toBeUndefined();
    expect(parseDurationMs('')).toBeUndefined();
  });

  it('reads OpenAI headers, ignoring -1 and garbage', () => {
    const report = readProviderHeaders(
      new Headers({
        'x-ratelimit-limit-tokens': '30000',
        'x-ratelimit-remaining-tokens': '0',
        'x-ratelimit-reset-tokens': '1m30s',
        'x-ratelimit-limit-requests': '-1',
        'x-ratelimit-remaining-requests': 'n/a',
      }),
    );
    expect(report).toEqual({
      remaining: { tokens: 0, requests: undefined },
      limit: { tokens: 30000, requests: undefined },
      retryAfterMs: undefined,
      exhaustedResetMs: 90_000,
      tokenPrecision: 1,
    });
  });

  it('reads Anthropic headers from a plain object, with RFC 3339 resets and retry-after as an HTTP date', () => {
    const now = Date.parse('2026-11-28T12:00:00Z');
    const report = readProviderHeaders(
      {
        'Anthropic-RateLimit-Input-Tokens-Remaining': '0',
        'anthropic-ratelimit-input-tokens-reset': '2026-11-28T12:00:20Z',
        'anthropic-ratelimit-output-tokens-remaining': ['8000'],
        'anthropic-ratelimit-requests-remaining': '49',
        'anthropic-ratelimit-tokens-remaining': '0',
        'retry-after': 'Sat, 28 Nov 2026 12:00:05 GMT',
      },
      now,
    );
    expect(report.remaining).toEqual({ requests: 49, inputTokens: 0, outputTokens: 8000, tokens: undefined });
    expect(report.retryAfterMs).toBe(5000);
    expect(report.exhaustedResetMs).toBe(20_000);
    expect(report.tokenPrecision).toBe(1000);
    expect(readProviderHeaders({ 'retry-after-ms': '250', 'retry-after': '9' }).retryAfterMs).toBe(250);
  });
});

describe.each(BACKENDS)('listening to the provider on the %s store', (_name, make) => {
  let backend: BackendUnderTest;
  beforeAll(() => {
    backend = make();
  });
  afterAll(() => backend.close());

  const pair = (config: RateLimitConfig) => sharingPair(backend, 'gpt-4o', config);

  it.each(['sliding-window', 'token-bucket'] as const)('pauses every process after a 429 with retry-after (%s)', async (algorithm) => {
    const [a, b] = pair({ tpm: 100_000, algorithm });
    const result = await a.observe(new Headers({ 'retry-after': '0.3' }), { status: 429 });
    expect(result.pausedUntil).toBeGreaterThan(Date.now() + 100);
    const s = await b.getStatus();
    expect(s.pausedUntil).toBe(result.pausedUntil);
    expect(s.limitFactor).toBeCloseTo(0.75, 2);
    // Admitted no earlier than the pause ends (store clock), and then by the pause's end alone:
    // the window (60 s) has all the room it needs.
    const admitted = await b.acquire({ tokens: 10 });
    expect(admitted.slotTime).toBeGreaterThanOrEqual(result.pausedUntil!);
    expect(admitted.waitTime).toBeGreaterThan(0);
    expect(admitted.slotTime - result.pausedUntil!).toBeLessThan(5000);
    await expect(b.acquire({ tokens: 10 }, { maxWaitMs: 0 })).resolves.toMatchObject({ waitTime: 0 });
  });

  it('cuts the limits once for a burst of 429s, and lets them recover over the window', async () => {
    const [a, b] = pair({ tpm: 1000, windowSeconds: 1 });
    await Promise.all([a.backOff({ retryAfterMs: 0 }), b.backOff({ retryAfterMs: 0 }), a.backOff({ retryAfterMs: 0 })]);
    expect((await a.getStatus()).limitFactor).toBeCloseTo(0.75, 1);
    await a.acquire({ tokens: 700 });
    // 700 + 100 > 75% of 1000
    await expect(b.acquire({ tokens: 100 }, { maxWaitMs: 0 })).rejects.toThrow(AcquireTimeoutError);
    await waitFor(async () => (await b.getStatus()).limitFactor >= 0.8, 5000, 'the limit factor to recover');
  });

  it('charges quota the provider reports as spent by others, once', async () => {
    const [a, b] = pair({ tpm: 10_000, rpm: 100 });
    await a.acquire({ tokens: 1000 });
    const headers = { 'x-ratelimit-remaining-tokens': '5000', 'x-ratelimit-remaining-requests': '99' };
    // ours leave 9000 tokens; the provider 5000: 4000 spent elsewhere, less 1% of tolerance
    await expect(b.observe(headers)).resolves.toEqual({ foreign: { tokens: 3900, inputTokens: 0, outputTokens: 0, requests: 0 } });
    expect((await a.getStatus()).tokensUsed).toBe(4900);
    await expect(a.observe(headers)).resolves.toMatchObject({ foreign: { tokens: 0 } });
    // a provider reporting more room than we count changes nothing
    await a.observe({ 'x-ratelimit-remaining-tokens': '9999' });
    expect((await a.getStatus()).tokensUsed).toBe(4900);
  });

  it("keeps quota spent by others counted when it was the model's first charge", async () => {
    const [a, b] = pair({ tpm: 10_000, windowSeconds: 1 });
    // Nothing of ours in the window: all of the gap is foreign.
    await expect(a.observe({ 'x-ratelimit-remaining-tokens': '4000' })).resolves.toMatchObject({ foreign: { tokens: 5900 } });
    // A later bucket: the charge still counts for the next acquire, and holds it back.
    await new Promise((r) => setTimeout(r, 50));
    await expect(b.acquire({ tokens: 5000 }, { maxWaitMs: 0 })).rejects.toThrow(AcquireTimeoutError);
    expect((await b.getStatus()).tokensUsed).toBe(5900);
  });

  it('reconciles split figures from Anthropic headers, on a token bucket', async () => {
    const [a] = pair({ provider: 'anthropic', inputTpm: 100_000, outputTpm: 20_000, windowSeconds: 60 });
    await a.observe({ 'anthropic-ratelimit-input-tokens-remaining': '40000', 'anthropic-ratelimit-output-tokens-remaining': '20000' });
    const s = await a.getStatus();
    // 100k room, 40k reported, 1k tolerance (1% of the limit): 59k charged; output untouched
    expect(s.inputTokensUsed).toBeGreaterThanOrEqual(58_900);
    expect(s.inputTokensUsed).toBeLessThanOrEqual(59_000);
    expect(s.outputTokensUsed).toBe(0);
  });

  it('rejects bad arguments with typed errors', async () => {
    const [a] = pair({ tpm: 100 });
    await expect(a.observe(null as never)).rejects.toThrow(/observe needs the response headers/);
    await expect(a.backOff({ retryAfterMs: -5 })).rejects.toThrow(/retryAfterMs/);
  });
});
