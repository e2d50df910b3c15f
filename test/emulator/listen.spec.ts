import { setMaxListeners } from 'node:events';
import { randomInt } from 'node:crypto';
import { RateLimiter, RedisConnectionManager } from '../../lib/index.js';
import { EmulatorWorkers } from '../support/emulator-workers.js';
import { redisUrl, uniquePrefix } from '../support/redis.js';
import { type LaneCall, runLanes } from '../../emulator/calling-lane.js';
import { ProviderEmulator } from '../../emulator/provider-emulator.js';

/**
 * Listening to the provider against the emulator: quota spent by someone else, and a pause that
 * one process hears and every process keeps.
 */
const WINDOW_MS = 1000;
// A delivery margin, as in zero-429.spec.ts: the provider dates a call when it arrives.
const windowSeconds = (WINDOW_MS * 1.15) / 1000;
const LIMITS = { rpm: 200, tpm: 100_000 };

describe('a foreign consumer spends part of the quota', () => {
  const INSTANCES = 3;
  const LANES = 8;
  const RUN_MS = 3 * WINDOW_MS;
  const FOREIGN_SHARE = 0.3;

  // Three limiter instances (each with its own connections) share one key with a consumer the
  // limiter knows nothing of; with observe, every response's headers tell it what was spent.
  async function run(observe: boolean) {
    const emulator = await ProviderEmulator.start({
      policy: { kind: 'sliding-window', windowMs: WINDOW_MS, rpm: LIMITS.rpm, tpm: LIMITS.tpm },
      latency: { fixedMs: 30, perOutputTokenMs: 0.05 },
      outputFraction: { min: 0.2, max: 0.9 },
      foreign: { share: FOREIGN_SHARE },
      seed: 5,
    });
    const managers = Array.from({ length: INSTANCES }, () => new RedisConnectionManager({ url: redisUrl() }));
    try {
      const keyPrefix = uniquePrefix('foreign');
      const config = { provider: 'vertex' as const, tpm: LIMITS.tpm, rpm: LIMITS.rpm, windowSeconds };
      const limiters = managers.map((m) => new RateLimiter(m, 'shared-model', config, { keyPrefix }));
      await Promise.all(limiters.map((l) => l.ping()));
      await Promise.all(Array.from({ length: LANES }, () => fetch(`${emulator.url}/warm-up`).then((r) => r.arrayBuffer())));
      const signal = AbortSignal.timeout(RUN_MS);
      setMaxListeners(INSTANCES * LANES + 10, signal);
      const calls: LaneCall[] = [];
      const errors: string[] = [];
      const seed = randomInt(1, 2 ** 31);
      await runLanes(limiters, LANES, seed, {
        emulatorUrl: emulator.url,
        protocol: 'openai',
        model: 'shared-model',
        observe,
        signal,
        input: [100, 600],
        maxTokens: [128, 256],
        calls,
        errors,
      });
      return { calls, errors, seed, refused: emulator.recorder.count(429), served: emulator.recorder.count(200) };
    } finally {
      await emulator.close();
      await Promise.all(managers.map((m) => m.close()));
    }
  }

  it('keeps 429s near zero when observe() is fed the headers, where the same load without it draws many', async () => {
    // The control needs the load to press the limit; on a machine busy with other work the
    // lanes can fall short of it (once: 208 served, 0 refused), so the pair runs again, at most
    // three times, until the blind run shows the pressure it is the control for.
    let blind = await run(false);
    let listening = await run(true);
    for (let attempt = 1; attempt < 3 && blind.refused < 20; attempt++) {
      blind = await run(false);
      listening = await run(true);
    }
    const report = {
      blind: { refused: blind.refused, served: blind.served },
      listening: { refused: listening.refused, served: listening.served, seed: listening.seed },
    };
    expect({ errors: [...blind.errors, ...listening.errors], report }).toEqual({ errors: [], report });
    // The control: the limiter alone admits the whole limit while 30% of it goes elsewhere.
    expect({ blindRefusedMany: blind.refused >= 20, report }).toEqual({ blindRefusedMany: true, report });
    // Near zero, and why not zero: reconciliation learns what the other consumer spent only as
    // responses report it, and a queued caller's slot is fixed when it is granted, so what is
    // spent between the grant and the slot can take that call over the limit. That happens where
    // a window turns over and the queue goes out at once: at most once per caller over the run
    // (24), and a fifth of the blind run's 429s. Measured here: 8 to 17, against 208 to 314.
    expect({ few: listening.refused <= INSTANCES * LANES && listening.refused * 5 <= blind.refused, report }).toEqual({
      few: true,
      report,
    });
    // And the quota left is used: at least half the calls the blind run served.
    expect(listening.served).toBeGreaterThan(0.5 * blind.served);
  }, 75_000);
});

describe('a 429 with retry-after heard by one process', () => {
  const WORKERS = 3;
  const LANES = 4;
  const workers = new EmulatorWorkers();
  afterEach(() => workers.stop());

  it('pauses admissions in every process until the retry-after has passed', async () => {
    // Limits far above the load: nothing queues, so any admission is placed when it is asked for.
    const emulator = await ProviderEmulator.start({
      policy: { kind: 'sliding-window', windowMs: WINDOW_MS, rpm: 1_000_000, tpm: 1_000_000_000 },
      latency: { fixedMs: 20 },
      seed: 7,
    });
    try {
      const seed = randomInt(1, 2 ** 31);
      const keyPrefix = uniquePrefix('pause');
      await workers.startAll(WORKERS, (worker) => ({
        worker,
        redisUrl: redisUrl(),
        keyPrefix,
        model: 'shared-model',
        config: { provider: 'openai', tpm: 100_000_000, rpm: 1_000_000, windowSeconds },
        options: {},
        emulatorUrl: emulator.url,
        protocol: 'openai',
        observe: true,
        lanes: LANES,
        input: [50, 200],
        maxTokens: [64],
        seed,
      }));
      const startedAt = Date.now();
      const logs = workers.run(startedAt + 2700);
      await new Promise((resolve) => setTimeout(resolve, 700));
      emulator.refuseFor(1200);
      const calls = (await logs).flatMap((l) => l.calls);
      expect({ errors: (await logs).flatMap((l) => l.errors), seed }).toEqual({ errors: [], seed });

      const pauses = calls.filter((c) => c.pausedUntil !== undefined).sort((a, b) => a.observedAt! - b.observedAt!);
      expect(pauses.length).toBeGreaterThan(0);
      // From the moment the first observe returned, the pause was in force for every process:
      // every acquire placed after it gets a slot at or after its end. (Local and Redis clocks are
      // one clock here; 1 ms covers whole-ms rounding.)
      const first = pauses[0];
      const from = first.observedAt! + 1;
      const until = first.pausedUntil!;
      const inside = calls.filter((c) => c.slotTime >= from && c.slotTime < until);
      const byWorker = (w: number) => calls.filter((c) => c.worker === w);
      const summary = {
        pause: { from: from - startedAt, until: until - startedAt },
        observers: new Set(pauses.map((c) => c.worker)).size,
        inside: inside.map((c) => ({ worker: c.worker, slot: c.slotTime - startedAt })),
        seed,
      };
      expect(summary).toEqual({ ...summary, inside: [] });
      expect(until - from).toBeGreaterThan(800);
      for (let w = 0; w < WORKERS; w++) {
        // Every process was calling before, was held by the pause, and called again after it.
        expect({ w, before: byWorker(w).some((c) => c.slotTime < from) }).toEqual({ w, before: true });
        expect({ w, held: byWorker(w).some((c) => c.slotTime >= until && c.waitTime > 0) }).toEqual({ w, held: true });
        expect({ w, after: byWorker(w).filter((c) => c.slotTime >= until && c.status === 200).length > 0 }).toEqual({ w, after: true });
      }
      // Only calls already on their way when the pause began were refused: at most one per lane.
      expect(emulator.recorder.count(429)).toBeLessThanOrEqual(WORKERS * LANES);
    } finally {
      await emulator.close();
    }
  }, 30_000);
});
