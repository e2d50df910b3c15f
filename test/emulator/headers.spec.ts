import { anthropicHeaders, formatOpenAiDuration, openAiHeaders, parseOpenAiDuration, retryAfterHeaders } from '../../emulator/headers.js';

describe('rate-limit headers', () => {
  it.each([
    [12, '12ms'],
    [0.4, '1ms'],
    [1000, '1s'],
    [1500, '1.5s'],
    [59_999, '59.999s'],
    [360_000, '6m0s'],
    [61_500, '1m1.5s'],
    [3_723_000, '1h2m3s'],
  ])('writes %d ms as OpenAI does: %s', (ms, text) => {
    expect(formatOpenAiDuration(ms)).toBe(text);
    expect(parseOpenAiDuration(text)).toBeCloseTo(Math.max(1, ms), 0);
  });

  it('refuses what is not a duration', () => {
    expect(parseOpenAiDuration('soon')).toBeNaN();
    expect(parseOpenAiDuration('')).toBeNaN();
  });

  it('gives OpenAI limits, remaining and reset durations for requests and tokens', () => {
    expect(
      openAiHeaders([
        { dimension: 'requests', limit: 500, remaining: 499, resetMs: 120 },
        { dimension: 'tokens', limit: 30_000, remaining: 25_000.7, resetMs: 360_000 },
      ]),
    ).toEqual({
      'x-ratelimit-limit-requests': '500',
      'x-ratelimit-remaining-requests': '499',
      'x-ratelimit-reset-requests': '120ms',
      'x-ratelimit-limit-tokens': '30000',
      'x-ratelimit-remaining-tokens': '25000',
      'x-ratelimit-reset-tokens': '6m0s',
    });
  });

  it('gives Anthropic figures with token remainders rounded to thousands and RFC 3339 resets', () => {
    const now = Date.parse('2026-11-29T10:00:00.000Z');
    const h = anthropicHeaders(
      [
        { dimension: 'requests', limit: 50, remaining: 49, resetMs: 1200 },
        { dimension: 'inputTokens', limit: 40_000, remaining: 38_499, resetMs: 2000 },
        { dimension: 'outputTokens', limit: 8000, remaining: 1600, resetMs: 48_000 },
      ],
      now,
    );
    expect(h).toMatchObject({
      'anthropic-ratelimit-requests-remaining': '49',
      'anthropic-ratelimit-requests-reset': '2026-11-29T10:00:01.200Z',
      'anthropic-ratelimit-input-tokens-remaining': '38000',
      'anthropic-ratelimit-output-tokens-remaining': '2000',
      'anthropic-ratelimit-output-tokens-reset': '2026-11-29T10:00:48.000Z',
      // the most restrictive token limit in force: output, at 20% left
      'anthropic-ratelimit-tokens-limit': '8000',
    });
  });

  it('advises retry-after in whole seconds, rounded up, and exactly in retry-after-ms', () => {
    expect(retryAfterHeaders(1234.2)).toEqual({ 'retry-after': '2', 'retry-after-ms': '1235' });
    expect(retryAfterHeaders(0)).toEqual({ 'retry-after': '1', 'retry-after-ms': '1' });
  });
});
