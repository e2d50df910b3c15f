import fc from 'fast-check';
import type { Redis } from 'ioredis';
import { DEFAULT_RETRY_CONFIG } from '../../lib/redis/retry.js';
import { type Charge, type LimiterStore, type ModelSettings, type ModelStore } from '../../lib/core/store.js';
import { MemoryStore } from '../../lib/memory/memory-store.js';
import { RedisExecutor } from '../../lib/redis/executor.js';
import { RedisStore } from '../../lib/redis/redis-store.js';
import { closeClient, inspector, uniquePrefix } from '../support/redis.js';

// The Lua scripts and the memory store are two implementations of one algorithm (see
// lib/core/store.ts): driven with the same random commands at the same clock readings, they must
// give the same replies and statuses. Both read the test's clock (Redis through the scripts'
// clock argument), which starts a day ahead of real time so that the keys' TTLs stay ahead too.

type Op =
  | { kind: 'acquire'; owner: number; cost: [number, number]; maxWaitMs: number; deadlineIn: number | null }
  | { kind: 'claim'; owner: number }
  | { kind: 'settle'; pick: number; mode: 'adjust' | 'release' | 'keep'; to: [number, number, number]; refunds: boolean }
  | { kind: 'backOff'; pauseMs: number }
  | { kind: 'reconcile'; remaining: number }
  | { kind: 'tick'; ms: number };

const OWNERS = ['owner-aaaaaaaaaa', 'owner-bbbbbbbbbb'];

const opArb: fc.Arbitrary<Op> = fc.oneof(
  {
    weight: 6,
    arbitrary: fc.record({
      kind: fc.constant('acquire' as const),
      owner: fc.nat(1),
      cost: fc.tuple(fc.nat(60), fc.nat(40)),
      maxWaitMs: fc.constantFrom(-1, -1, 0, 300, 2000),
      deadlineIn: fc.constantFrom(null, null, -1, 0, 5, -1000),
    }),
  },
  { weight: 2, arbitrary: fc.record({ kind: fc.constant('claim' as const), owner: fc.nat(1) }) },
  {
    weight: 4,
    arbitrary: fc.record({
      kind: fc.constant('settle' as const),
      pick: fc.nat(40),
      mode: fc.constantFrom('adjust' as const, 'release' as const, 'keep' as const),
      to: fc.tuple(fc.nat(80), fc.nat(50), fc.nat(30)),
      refunds: fc.boolean(),
    }),
  },
  { weight: 1, arbitrary: fc.record({ kind: fc.constant('backOff' as const), pauseMs: fc.constantFrom(0, 200, 900) }) },
  { weight: 1, arbitrary: fc.record({ kind: fc.constant('reconcile' as const), remaining: fc.nat(100) }) },
  { weight: 4, arbitrary: fc.record({ kind: fc.constant('tick' as const), ms: fc.constantFrom(1, 7, 10, 95, 400, 1100, 6000, 12_000) }) },
);

const SETTINGS: [string, ModelSettings][] = [
  [
    'sliding window',
    {
      windowMs: 1000,
      algorithm: 'sliding-window',
      bucketMs: 1000,
      paceMs: 0,
      limits: { tokens: 120, inputTokens: 0, outputTokens: 60, requests: 6 },
    },
  ],
  [
    'paced sliding window',
    {
      windowMs: 1000,
      algorithm: 'sliding-window',
      bucketMs: 1000,
      paceMs: 250,
      limits: { tokens: 120, inputTokens: 80, outputTokens: 0, requests: 0 },
    },
  ],
  [
    'token bucket',
    {
      windowMs: 1000,
      algorithm: 'token-bucket',
      bucketMs: 500,
      paceMs: 0,
      limits: { tokens: 100, inputTokens: 0, outputTokens: 50, requests: 5 },
    },
  ],
  [
    'learned limits',
    {
      windowMs: 1000,
      algorithm: 'sliding-window',
      bucketMs: 1000,
      paceMs: 0,
      limits: { tokens: 100, inputTokens: 0, outputTokens: 0, requests: 4 },
      learn: { maxFactor: 3, increasePerWindow: 0.5 },
    },
  ],
];

const chargeOf = ([input, output]: [number, number]): Charge => ({
  tokens: input + output,
  inputTokens: input,
  outputTokens: output,
  requests: 1,
});

/** Runs one command on one store; returns what it answered, for comparison. */
async function apply(store: ModelStore, settings: ModelSettings, op: Op, ids: string[], next: () => string, now: number): Promise<unknown> {
  switch (op.kind) {
    case 'acquire': {
      const opId = next();
      ids.push(opId);
      // The caller's deadline in store time, before, at or after the store's now (null: none).
      const deadlineMs = op.deadlineIn === null ? -1 : now + op.deadlineIn;
      return store.acquire({ opId, owner: OWNERS[op.owner], settings, cost: chargeOf(op.cost), maxWaitMs: op.maxWaitMs, deadlineMs });
    }
    case 'claim':
      return store.claim({ owner: OWNERS[op.owner], settings, opIds: ids.slice(-8) });
    case 'settle': {
      const opId = ids.length > 0 && op.pick < 36 ? ids[op.pick % ids.length] : 'unknown-aaaaaaaaa';
      const [input, output] = op.to;
      return store.settle({
        opId,
        settings,
        mode: op.mode,
        refunds: op.refunds,
        to: { tokens: input + output, inputTokens: input, outputTokens: output },
      });
    }
    case 'backOff':
      return store.backOff(settings, { pauseMs: op.pauseMs, cut: 0.75, floor: 0.05, settleMs: 1000 });
    case 'reconcile':
      return store.reconcile(settings, {
        remaining: { tokens: op.remaining },
        tolerance: { tokens: 1, inputTokens: 1, outputTokens: 1, requests: 1 },
      });
    case 'tick':
      return undefined;
  }
}

describe.each(SETTINGS)('the Redis and memory stores agree (%s)', (_name, settings) => {
  let client: Redis;
  beforeAll(() => {
    client = inspector();
  });
  afterAll(() => closeClient(client));

  it('give the same replies and statuses for the same random commands', async () => {
    await fc.assert(
      fc.asyncProperty(fc.array(opArb, { minLength: 5, maxLength: 60 }), async (ops) => {
        let now = Date.now() + 86_400_000;
        now -= now % 1000;
        const clock = () => now;
        const redisStore: LimiterStore = new RedisStore(
          new RedisExecutor(() => client, { retry: DEFAULT_RETRY_CONFIG, commandTimeoutMs: 5000 }),
          { clock },
        );
        const memoryStore: LimiterStore = new MemoryStore(clock);
        const prefix = uniquePrefix('diff');
        const stores = [memoryStore.forModel('m', prefix), redisStore.forModel('m', prefix)];
        const ids: string[][] = [[], []];
        let serial = 0;
        for (const [step, op] of ops.entries()) {
          if (op.kind === 'tick') {
            now += op.ms;
            continue;
          }
          serial++;
          const replies = [];
          for (let s = 0; s < 2; s++) {
            replies.push(await apply(stores[s], settings, op, ids[s], () => `op-${String(serial).padStart(13, '0')}`, now));
          }
          const statuses = await Promise.all(stores.map((store) => store.status(settings)));
          expect({ step, op, reply: replies[1], status: statuses[1] }).toEqual({ step, op, reply: replies[0], status: statuses[0] });
        }
      }),
      { numRuns: 40 },
    );
  });
});
