/**
 * One worker process of the provider benchmark: `concurrency` lanes, each making calls one after
 * another through its limiter to the emulator until the run's deadline. Driven over IPC by run.ts.
 */
import { setMaxListeners } from 'node:events';
import { buildRequest, readUsage, retryAfterMs } from '../../emulator/provider-requests.js';
import type { PlannedCall } from './counting.js';
import { type ClientLimiter, createLimiter, type LimiterSetup } from './limiters.js';
import type { BenchSettings } from './scenarios.js';
import { Workload } from './workload.js';

export interface WorkerInit {
  readonly type: 'init';
  readonly index: number;
  readonly setup: LimiterSetup;
  readonly settings: BenchSettings;
  readonly emulatorUrl: string;
}

export interface WorkerStart {
  readonly type: 'start';
  /** Epoch ms: when every worker starts calling, and when they stop starting calls. */
  readonly startAt: number;
  readonly deadline: number;
}

/**
 * How a call ended: served; unfinished (still waiting for its limiter or a retry when the run
 * ended); failed (a 5xx, or the limiter threw); gave up (too many 429s in a row).
 */
export const Outcome = { Served: 0, Unfinished: 1, Failed: 2, GaveUp: 3 } as const;
export type Outcome = (typeof Outcome)[keyof typeof Outcome];

/** [startedAt, sentAt of the attempt that got through (0 if none), outcome, 429s, ms in acquire] */
export type CallRow = [number, number, Outcome, number, number];

export interface WorkerResult {
  readonly type: 'result';
  readonly index: number;
  readonly rows: CallRow[];
  readonly degraded: number;
  readonly errors: string[];
}

const MAX_ATTEMPTS = 8;
const HTTP_TIMEOUT_MS = 15_000;

const sleep = (ms: number) => new Promise((r) => setTimeout(r, Math.max(0, ms)));

async function run(init: WorkerInit, start: WorkerStart, limiter: ClientLimiter): Promise<WorkerResult> {
  const { setup, settings } = init;
  const scenario = setup.scenario;
  const workload = new Workload(settings.seed, init.index);
  const answered = new Set<number>();
  const rows: CallRow[] = [];
  const errors: string[] = [];
  const deadline = start.deadline;
  let started = 0;
  const stop = AbortSignal.timeout(Math.max(1, deadline - Date.now()));
  // Every lane waits on this one signal.
  setMaxListeners(settings.concurrency * 4 + 16, stop);

  const oneCall = async () => {
    const call = workload.next();
    const planned: PlannedCall = {
      prefixEstimate: call.prefixEstimate,
      textEstimate: call.textEstimate,
      maxTokens: call.maxTokens,
      expectCacheRead: call.prefixIndex >= 0 && answered.has(call.prefixIndex),
    };
    const { path, body } = buildRequest(scenario.protocol, {
      model: 'bench-model',
      prefix: call.prefix,
      text: call.text,
      maxTokens: call.maxTokens,
    });
    const payload = JSON.stringify(body);
    const startedAt = Date.now();
    let refusals = 0;
    let acquireMs = 0;
    for (let attempt = 0; attempt < MAX_ATTEMPTS; attempt++) {
      if (Date.now() >= deadline) return rows.push([startedAt, 0, Outcome.Unfinished, refusals, acquireMs]);
      const before = Date.now();
      let lease;
      try {
        lease = await limiter.acquire(planned, stop);
      } catch (error) {
        if (stop.aborted) return rows.push([startedAt, 0, Outcome.Unfinished, refusals, acquireMs + Date.now() - before]);
        errors.push(`acquire: ${String(error)}`);
        return rows.push([startedAt, 0, Outcome.Failed, refusals, acquireMs + Date.now() - before]);
      }
      const sentAt = Date.now();
      // The delay from the limiter's slot (when it has one) to the provider's clock is what a window must absorb.
      const slotAt = lease.slotAt;
      acquireMs += sentAt - before;
      let res: Response;
      try {
        res = await fetch(init.emulatorUrl + path, {
          method: 'POST',
          headers: { 'content-type': 'application/json', 'x-client-sent-at': String(slotAt ?? sentAt) },
          body: payload,
          signal: AbortSignal.timeout(HTTP_TIMEOUT_MS),
        });
      } catch (error) {
        errors.push(`http: ${String(error)}`);
        await limiter.refused(lease).catch(() => undefined);
        return rows.push([startedAt, 0, Outcome.Failed, refusals, acquireMs]);
      }
      if (res.status === 429) {
        refusals++;
        await res.arrayBuffer();
        await limiter.refused(lease);
        // As the providers' SDKs do: the advised wait, else exponential backoff from 0.5 s.
        const wait = retryAfterMs(res.headers) ?? 500 * 2 ** attempt;
        await sleep(Math.min(wait, deadline - Date.now()));
        continue;
      }
      const json = (await res.json()) as Record<string, unknown>;
      if (res.status !== 200) {
        await limiter.refused(lease);
        return rows.push([startedAt, sentAt, Outcome.Failed, refusals, acquireMs]);
      }
      if (call.prefixIndex >= 0) answered.add(call.prefixIndex);
      try {
        await limiter.settle(lease, readUsage(scenario.protocol, json));
      } catch (error) {
        errors.push(`settle: ${String(error)}`);
      }
      return rows.push([startedAt, sentAt, Outcome.Served, refusals, acquireMs]);
    }
    return rows.push([startedAt, 0, Outcome.GaveUp, refusals, acquireMs]);
  };

  const lane = async () => {
    while (Date.now() < deadline && started < settings.maxCallsPerWorker) {
      started++;
      await oneCall();
    }
  };
  await sleep(start.startAt - Date.now());
  await Promise.all(Array.from({ length: settings.concurrency }, lane));
  return { type: 'result', index: init.index, rows, degraded: limiter.degraded, errors: errors.slice(0, 20) };
}

let init: WorkerInit | undefined;
let limiter: ClientLimiter | undefined;

// One worker serves run after run: init, start, result; 'exit' ends it.
process.on('message', (message: WorkerInit | WorkerStart | { type: 'exit' }) => {
  if (message.type === 'exit') process.exit(0);
  if (message.type === 'init') {
    init = message;
    createLimiter(message.setup)
      .then(async (created) => {
        // Warm up what a long-running service has warm: fetch's first use loads its HTTP client
        // (tens of ms) and opens one socket per concurrent call. The emulator records none of these.
        await Promise.all(
          Array.from({ length: message.settings.concurrency }, () => fetch(`${message.emulatorUrl}/warm-up`).then((r) => r.arrayBuffer())),
        );
        return created;
      })
      .then(
        (created) => {
          limiter = created;
          process.send!({ type: 'ready', index: message.index });
        },
        (error) => {
          console.error(`worker ${message.index}: could not set up ${message.setup.kind}: ${String(error)}`);
          process.exit(2);
        },
      );
    return;
  }
  if (message.type === 'start' && init && limiter) {
    const current = limiter;
    const hardStop = setTimeout(() => process.exit(3), message.deadline - Date.now() + 30_000);
    hardStop.unref();
    run(init, message, current)
      .then(async (result) => {
        clearTimeout(hardStop);
        await current.close().catch(() => undefined);
        init = undefined;
        limiter = undefined;
        process.send!(result);
      })
      .catch((error) => {
        console.error(`worker ${init!.index}: ${String(error)}`);
        process.exit(4);
      });
  }
});
