// One process calling the emulated provider through a limiter shared in Redis, for the emulator
// specs (listen, redis-outage). Started with
// `node --import ./test/support/ts-register.mjs emulator-worker.ts <setup as JSON>`: it connects,
// says it is ready, runs `lanes` callers from the parent's start until its stop time, and sends
// every call it made to its parent.
import { setMaxListeners } from 'node:events';
import { RateLimiter, RedisConnectionManager, type RateLimitConfig, type RateLimiterOptions } from '../../lib/index.js';
import { type LaneCall, runLanes } from '../../emulator/calling-lane.js';
import type { Protocol } from '../../emulator/protocols.js';
import { tellParent, type WorkerStart } from './child-workers.js';

/** What the parent passes on the command line. */
export interface EmulatorWorkerSetup {
  readonly worker: number;
  readonly redisUrl: string;
  readonly keyPrefix: string;
  readonly model: string;
  readonly config: RateLimitConfig;
  readonly options: Pick<RateLimiterOptions, 'failureMode' | 'expectedInstances'>;
  readonly emulatorUrl: string;
  readonly protocol: Protocol;
  readonly observe: boolean;
  readonly lanes: number;
  readonly input: readonly [number, number];
  readonly maxTokens: readonly number[];
  readonly seed: number;
}

export type EmulatorWorkerMessage =
  { readonly type: 'ready' } | { readonly type: 'done'; readonly calls: LaneCall[]; readonly errors: string[]; readonly events: string[] };

const send = (message: EmulatorWorkerMessage) => tellParent(message);

const setup = JSON.parse(process.argv[2]) as EmulatorWorkerSetup;
const manager = new RedisConnectionManager({ url: setup.redisUrl });
const events: string[] = [];
const quiet = { log: () => undefined, warn: () => undefined, error: (m: string) => events.push(`error: ${m}`) };
const limiter = new RateLimiter(manager, setup.model, setup.config, {
  keyPrefix: setup.keyPrefix,
  ...setup.options,
  logger: quiet,
  onEvent: (e) => {
    if (e.type === 'degraded' || e.type === 'recovered') events.push(`${Date.now()} ${e.type}`);
  },
});

process.once('message', (start: WorkerStart) => {
  const stop = AbortSignal.timeout(Math.max(0, start.stopAt - Date.now()));
  setMaxListeners(setup.lanes + 10, stop);
  const calls: LaneCall[] = [];
  const errors: string[] = [];
  const { emulatorUrl, protocol, model, observe, input, maxTokens } = setup;
  const lanes = runLanes(
    [limiter],
    setup.lanes,
    setup.seed * 1000,
    { emulatorUrl, protocol, model, observe, signal: stop, input, maxTokens, calls, errors },
    setup.worker,
  );
  lanes
    .catch((error: unknown) => {
      errors.push(`worker ${setup.worker}: ${String(error)}`);
    })
    .then(async () => {
      await manager.close();
      await send({ type: 'done', calls, errors, events });
      process.disconnect();
    })
    .catch((error: unknown) => {
      // The parent sees the exit without a 'done' and fails the test.
      console.error(`worker ${setup.worker} could not report: ${String(error)}`);
      process.exit(1);
    });
});
// Connected (and the fetch client loaded) before the start, so every worker's callers begin together.
await limiter.ping();
await fetch(`${setup.emulatorUrl}/warm-up`).then((r) => r.arrayBuffer());
await send({ type: 'ready' });
