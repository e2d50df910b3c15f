import { AcquireAbortedError, InvalidRecordIdError, InvalidTokenCountError, RequestTooLargeError } from '../../lib/core/errors.js';
import { costOf } from '../../lib/core/charges.js';
import { resolveConfig } from '../../lib/core/config.js';
import { formatRecordId, newOpId, parseRecordId } from '../../lib/core/record-id.js';
import { storeSettingsOf } from '../../lib/core/feedback.js';
import { CLAIM_INTERVAL_MS, MAX_COUNT } from '../../lib/core/store.js';
import { longTimeout, MAX_TIMER_MS, type Timers } from '../../lib/core/long-timeout.js';
import { Waiters } from '../../lib/core/waiters.js';
import { MemoryStore } from '../../lib/memory/memory-store.js';
import { uniquePrefix } from '../support/redis.js';

/** Timers that run nothing by themselves: the test fires what is due, in order. */
function manualTimers() {
  const pending: { callback: () => void; ms: number; cleared: boolean }[] = [];
  const timers: Timers = {
    setTimeout: (callback, ms) => {
      const entry = { callback, ms, cleared: false };
      pending.push(entry);
      return entry;
    },
    clearTimeout: (handle) => {
      if (handle) (handle as { cleared: boolean }).cleared = true;
    },
  };
  const fireNext = () => {
    const entry = pending.shift();
    if (entry && !entry.cleared) entry.callback();
    return entry?.ms;
  };
  return { timers, pending, fireNext };
}

const DAY_MS = 24 * 60 * 60 * 1000;

describe('longTimeout', () => {
  it('chains a 25-day wait from timers Node can hold, and fires only after all of them', () => {
    const { timers, pending, fireNext } = manualTimers();
    let fired = 0;
    longTimeout(25 * DAY_MS, () => fired++, timers);
    const steps: number[] = [];
    while (pending.length > 0) {
      expect(fired).toBe(0);
      steps.push(fireNext()!);
    }
    expect(fired).toBe(1);
    expect(steps.every((ms) => ms <= MAX_TIMER_MS)).toBe(true);
    expect(steps.reduce((a, b) => a + b, 0)).toBe(25 * DAY_MS);
    expect(steps).toHaveLength(2);
  });

  it('is cancelled at any step of the chain', () => {
    const { timers, pending, fireNext } = manualTimers();
    let fired = 0;
    const cancel = longTimeout(25 * DAY_MS, () => fired++, timers);
    fireNext();
    cancel();
    while (pending.length > 0) fireNext();
    expect(fired).toBe(0);
  });

  it('fires a short wait from one timer', () => {
    const { timers, pending, fireNext } = manualTimers();
    let fired = 0;
    longTimeout(250, () => fired++, timers);
    expect(pending.map((p) => p.ms)).toEqual([250]);
    fireNext();
    expect(fired).toBe(1);
  });
});

describe('costOf', () => {
  const config = resolveConfig({ tpm: 1e12 });

  it.each([[{ tokens: 10n }], [{ inputTokens: 5n, outputTokens: 1 }], [{ inputTokens: 5, outputTokens: 1, cacheReadTokens: 2n }]])(
    'rejects BigInt counts %p with InvalidTokenCountError, not a TypeError',
    (request) => {
      let error: unknown;
      try {
        costOf(config, 'm', request);
      } catch (e) {
        error = e;
      }
      expect(error).toBeInstanceOf(InvalidTokenCountError);
      expect((error as Error).message).toMatch(/bigint/);
    },
  );

  it('rejects counts above MAX_COUNT, and charges that exceed it', () => {
    expect(() => costOf(config, 'm', { tokens: MAX_COUNT + 1 })).toThrow(InvalidTokenCountError);
    expect(() => costOf(config, 'm', { tokens: MAX_COUNT + 1 })).toThrow(/at most 4294967295/);
    expect(() => costOf(config, 'm', { inputTokens: MAX_COUNT, outputTokens: MAX_COUNT })).toThrow(InvalidTokenCountError);
    expect(costOf(config, 'm', { tokens: MAX_COUNT }).cost.tokens).toBe(MAX_COUNT);
  });

  it('rejects a request above its limit with RequestTooLargeError', () => {
    expect(() => costOf(resolveConfig({ tpm: 10 }), 'm', { tokens: 11 })).toThrow(RequestTooLargeError);
  });
});

describe('record ids', () => {
  it('parses every id it formats, up to MAX_COUNT in every figure', () => {
    const opId = newOpId();
    for (const local of [false, true]) {
      const record = { opId, local, input: MAX_COUNT, output: 0, cacheRead: 7, cacheWrite: MAX_COUNT };
      expect(parseRecordId(formatRecordId(record))).toEqual({ ...record, degraded: false });
    }
  });

  it.each([
    'AAAAAAAAAAAA.1z141z4.0.0.0',
    'AAAAAAAAAAAA.10000000.0.0.0',
    'AAAAAAAAAAAA.0.0.0',
    'AAAAAAAAAAAAAAA.0.0.0.0',
    'AAAAAAAAAAAA.A.0.0.0',
    'l.x.AAAAAAAAAAAAAAAA',
  ])('rejects %s', (id) => {
    expect(() => parseRecordId(id)).toThrow(InvalidRecordIdError);
  });
});

describe('Waiters', () => {
  it('arms the claim timer for when the head could fit, not a whole claim interval away', async () => {
    const { timers, pending } = manualTimers();
    const store = new MemoryStore().forModel('m', uniquePrefix('waiters'));
    const settings = storeSettingsOf(resolveConfig({ algorithm: 'token-bucket', tpm: 1000, windowSeconds: 1 }));
    const logger = { log: () => undefined, warn: () => undefined, error: () => undefined };
    const waiters = new Waiters({
      store,
      owner: newOpId(),
      settings,
      model: 'm',
      logger,
      timers,
      release: (opId) => store.settle({ opId, settings, mode: 'release', refunds: true }),
    });
    const cost = (tokens: number) => ({ tokens, inputTokens: tokens, outputTokens: 0, requests: 1 });
    const request = (tokens: number, signal?: AbortSignal) => ({
      cost: cost(tokens),
      maxWaitMs: -1,
      signal,
      recordIdOf: (opId: string) => opId,
    });
    await expect(waiters.admit(request(1000))).resolves.toMatchObject({ waitedMs: 0 });
    // the bucket is empty: 100 tokens refill in 100 ms
    const controller = new AbortController();
    const waiting = waiters.admit(request(100, controller.signal));
    while (waiters.size === 0) await new Promise((resolve) => setImmediate(resolve));
    const armed = pending.filter((entry) => !entry.cleared);
    expect(armed).toHaveLength(1);
    expect(armed[0].ms).toBeLessThanOrEqual(100);
    expect(CLAIM_INTERVAL_MS).toBeGreaterThan(100);
    controller.abort();
    await expect(waiting).rejects.toThrow(AcquireAbortedError);
    expect(waiters.size).toBe(0);
  });
});
