// One process of the local-mode outage test (test/faults/local-outage.spec.ts), started by
// ChildWorkers. Its callers acquire one request each and keep it, in a loop, until the stop; each
// admission is logged with its slot time (the Redis server's clock on Redis, this machine's in the
// fallback: one machine, one clock). An idle worker makes one acquire before it says it is ready
// (so it has reached Redis and announced itself), then waits for the parent's `go` to start its
// callers.
import { RateLimiter, RedisConnectionManager, type RateLimitConfig, type RateLimiterEvent } from '../../lib/limiter.js';
import { tellParent, type WorkerStart } from './child-workers.js';

export interface OutageWorkerSetup {
  readonly worker: number;
  readonly redisUrl: string;
  readonly keyPrefix: string;
  readonly model: string;
  readonly config: RateLimitConfig;
  readonly callers: number;
  /** Waits for `{ type: 'go' }` before its callers start. */
  readonly idle: boolean;
}

export interface OutageAdmission {
  readonly worker: number;
  /** Slot time, epoch ms. */
  readonly at: number;
  readonly degraded: boolean;
}

export interface OutageDone {
  readonly type: 'done';
  readonly admissions: OutageAdmission[];
  /** Acquires that failed (RedisUnavailableError while the share is unknown, timeouts), by message start. */
  readonly failures: Record<string, number>;
  /** Limiter events, as "epoch-ms type". */
  readonly events: string[];
}

const setup = JSON.parse(process.argv[2]) as OutageWorkerSetup;
const events: string[] = [];
const manager = new RedisConnectionManager({ url: setup.redisUrl });
const quiet = { log: () => undefined, warn: () => undefined, error: (m: string) => console.error(m) };
const limiter = new RateLimiter(manager, setup.model, setup.config, {
  keyPrefix: setup.keyPrefix,
  failureMode: 'local',
  logger: quiet,
  onEvent: (e: RateLimiterEvent) => events.push(`${Date.now()} ${e.type}`),
});
const admissions: OutageAdmission[] = [];
const failures: Record<string, number> = {};
let stopAt = Infinity;
let go: () => void = () => undefined;
const going = new Promise<void>((resolve) => (go = resolve));

async function caller(): Promise<void> {
  await going;
  while (Date.now() < stopAt) {
    try {
      // Admitted now or refused: every caller asks again and again, so every process reads the
      // shared window many times a second, as under real load.
      const r = await limiter.acquire({ tokens: 1 }, { maxWaitMs: 0 });
      admissions.push({ worker: setup.worker, at: r.slotTime, degraded: r.degraded });
    } catch (error) {
      const key = String(error).slice(0, 40);
      failures[key] = (failures[key] ?? 0) + 1;
      await new Promise((resolve) => setTimeout(resolve, 25));
    }
  }
}

process.on('message', (message: WorkerStart | { type: 'go' }) => {
  if (message.type === 'go') {
    go();
    return;
  }
  stopAt = message.stopAt;
  if (!setup.idle) go();
  // An idle worker never told to go still stops.
  setTimeout(go, Math.max(0, stopAt - Date.now())).unref();
  void Promise.all(Array.from({ length: setup.callers }, () => caller()))
    .then(async () => {
      go();
      const done: OutageDone = { type: 'done', admissions, failures, events };
      await manager.close().catch(() => undefined);
      await tellParent(done);
      process.disconnect();
    })
    .catch((error: unknown) => console.error(error));
});
if (setup.idle) {
  const r = await limiter.acquire({ tokens: 1 });
  admissions.push({ worker: setup.worker, at: r.slotTime, degraded: r.degraded });
} else {
  await limiter.ping();
}
await tellParent({ type: 'ready' });
