import { randomInt } from 'node:crypto';
import { EmulatorWorkers } from '../support/emulator-workers.js';
import { uniquePrefix } from '../support/redis.js';
import { OwnRedisServer } from '../support/redis-server.js';
import type { LaneCall } from '../../emulator/calling-lane.js';
import { ProviderEmulator } from '../../emulator/provider-emulator.js';

/**
 * A Redis outage under load with failureMode 'local': three processes keep calling the emulated
 * provider while their Redis is killed and restarted (empty, as a server without persistence
 * comes back). Each process limits itself to its share meanwhile, and hands back to Redis when
 * it answers again.
 */
const WINDOW_MS = 1000;
const windowSeconds = (WINDOW_MS * 1.15) / 1000;
const LIMITS = { rpm: 150, tpm: 75_000 };
const WORKERS = 3;
const LANES = 6;
// Down for three windows: a fallback starts from what the shared window held when it last read
// it (full, under this load), so it admits only once that has left its window (about one
// window after the outage was noticed); two windows left some process no time to, under load.
const DOWN_AT = 1500;
const UP_AT = 4500;
const STOP_AT = 7500;

/** The most a sliding window of `windowMs` holds of `pick` over `calls`, by slot time. */
function fullestWindow(calls: readonly LaneCall[], windowMs: number, pick: (c: LaneCall) => number): number {
  const sorted = [...calls].sort((a, b) => a.slotTime - b.slotTime);
  let most = 0;
  let sum = 0;
  let first = 0;
  for (const call of sorted) {
    sum += pick(call);
    while (sorted[first].slotTime <= call.slotTime - windowMs) sum -= pick(sorted[first++]);
    most = Math.max(most, sum);
  }
  return most;
}

describe("a Redis outage under load with failureMode 'local'", () => {
  const workers = new EmulatorWorkers();
  let server: OwnRedisServer | undefined;
  afterEach(async () => {
    workers.stop();
    await server?.stop();
  });

  it('keeps 429s near zero, each process within its share while Redis is down, and hands back to Redis', async () => {
    server = await OwnRedisServer.start();
    const emulator = await ProviderEmulator.start({
      policy: { kind: 'sliding-window', windowMs: WINDOW_MS, rpm: LIMITS.rpm, tpm: LIMITS.tpm },
      latency: { fixedMs: 30, perOutputTokenMs: 0.05 },
      outputFraction: { min: 0.2, max: 0.9 },
      seed: 9,
    });
    try {
      const seed = randomInt(1, 2 ** 31);
      const keyPrefix = uniquePrefix('outage');
      await workers.startAll(WORKERS, (worker) => ({
        worker,
        redisUrl: server!.url,
        keyPrefix,
        model: 'shared-model',
        config: { provider: 'vertex', tpm: LIMITS.tpm, rpm: LIMITS.rpm, windowSeconds },
        options: { failureMode: 'local', expectedInstances: WORKERS },
        emulatorUrl: emulator.url,
        protocol: 'openai',
        observe: true,
        lanes: LANES,
        input: [100, 600],
        maxTokens: [128, 256],
        seed,
      }));
      const startedAt = Date.now();
      const logs = workers.run(startedAt + STOP_AT);
      await new Promise((resolve) => setTimeout(resolve, DOWN_AT));
      const killAt = Date.now();
      await server.kill();
      const downAt = Date.now();
      await new Promise((resolve) => setTimeout(resolve, UP_AT - DOWN_AT));
      await server.startAgain();
      const upAt = Date.now();
      const done = await logs;
      const calls = done.flatMap((l) => l.calls);
      const refusals = emulator.recorder.calls
        .filter((c) => c.status === 429)
        .map((c) => `+${c.arrivedAt - startedAt} ms ${c.dimension}: ${Math.round(c.used ?? 0)} + ${c.requested} > ${c.limit}`);
      const summary = {
        seed,
        down: downAt - startedAt,
        up: upAt - startedAt,
        served: emulator.recorder.count(200),
        degraded: calls.filter((c) => c.degraded).length,
        refusals,
        events: done.map((l) => l.events.map((e) => `${Number(e.split(' ')[0]) - startedAt} ${e.split(' ')[1]}`)),
      };
      expect({ errors: done.flatMap((l) => l.errors), summary }).toEqual({ errors: [], summary });

      for (let w = 0; w < WORKERS; w++) {
        const mine = calls.filter((c) => c.worker === w);
        const local = mine.filter((c) => c.degraded);
        // Limited locally while Redis was down...
        expect({ w, local: local.length > 0 }).toEqual({ w, local: true });
        // (admitted while Redis was down: from the kill to the probe that saw it back, 500 ms
        // apart; a caller that waited in Redis's queue at the kill is queued again in the
        // fallback, so it may have been placed before the kill, never admitted before it)
        const placedAt = (c: LaneCall) => c.slotTime - c.waitTime;
        expect({ w, before: local.filter((c) => c.slotTime < killAt).length }).toEqual({ w, before: 0 });
        // ...to its share of every limit over any window (tokens as settled: an adjust below the
        // reservation frees room for later calls)...
        const share = {
          tokens: fullestWindow(local, windowSeconds * 1000, (c) => c.settledTokens),
          requests: fullestWindow(local, windowSeconds * 1000, () => 1),
        };
        const allowed = { tokens: Math.floor(LIMITS.tpm / WORKERS), requests: Math.floor(LIMITS.rpm / WORKERS) };
        expect({ w, within: share.tokens <= allowed.tokens && share.requests <= allowed.requests, share, allowed }).toEqual({
          w,
          within: true,
          share,
          allowed,
        });
        // ...and back on Redis once it answered: recovered, and no call placed in the fallback
        // after that (its callers kept calling). The first acquire on Redis carries what the
        // fallbacks admitted in the last window, so the first calls may wait about a window.
        const recovered = Math.max(...done[w].events.filter((e) => e.endsWith('recovered')).map((e) => Number(e.split(' ')[0])));
        expect({ w, recovered: recovered >= upAt }).toEqual({ w, recovered: true });
        expect({ w, localAfter: local.filter((c) => placedAt(c) > recovered + 1).length }).toEqual({ w, localAfter: 0 });
      }
      expect(calls.some((c) => !c.degraded && c.slotTime > upAt)).toBe(true);
      // Near zero: each process's fallback starts from what it had itself reserved in the window,
      // and the first acquire on Redis again charges what the fallbacks admitted meanwhile, so
      // neither handover sends a share into a provider window that is already full. What is left
      // are the boundary effects of normal running (zero-429.spec.ts): at most one per caller.
      // Measured: 0 in every run (5 to 8, all just after the switch, before the handovers
      // carried reservations).
      expect({ refused: refusals.length <= WORKERS * LANES, summary }).toEqual({ refused: true, summary });
    } finally {
      await emulator.close();
    }
  }, 40_000);
});
