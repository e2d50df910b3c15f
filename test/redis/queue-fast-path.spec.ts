import fc from 'fast-check';
import type { Redis } from 'ioredis';
import type { ModelSettings } from '../../lib/core/store.js';
import { handBackArgs } from '../../lib/redis/handback-args.js';
import { loadScript } from '../../lib/redis/scripts.js';
import { closeClient, inspector, uniquePrefix } from '../support/redis.js';

// lua/queue.lua serves its common call (a sliding window without pacing, nothing waiting, acquires
// that fit and settles of admitted records) on a fast path of its own (lua/includes/fast.lua).
// That path must leave Redis exactly as the general path does: the same replies, and the same
// contents and TTLs of every key, byte for byte. Here the script runs beside a copy of itself with
// the fast path switched off, on the same random batches at the same clock readings.

type Command =
  | { kind: 'A'; cost: [number, number]; maxWaitMs: number; again: number | null }
  | { kind: 'S'; pick: number; mode: 'adjust' | 'release' | 'keep'; refunds: boolean; to: [number, number] }
  | { kind: 'C'; pick: number };

// After the queue's call, now and then one of the scripts that write the state by themselves (a
// 429's pause and cut, the provider's remaining figures, a local outage handed back): what they
// leave, the fast path must read as the general path does.
type Aside =
  | { kind: 'backoff'; pauseMs: number; cut: boolean }
  | { kind: 'reconcile'; remaining: number }
  | { kind: 'handback'; ageMs: number; cost: [number, number] };

type Step = { tickMs: number; commands: Command[]; aside: Aside | null };

const commandArb: fc.Arbitrary<Command> = fc.oneof(
  {
    weight: 5,
    arbitrary: fc.record({
      kind: fc.constant('A' as const),
      cost: fc.tuple(fc.nat(40), fc.nat(40)),
      maxWaitMs: fc.constantFrom(-1, -1, 0, 2000),
      // Now and then an acquire re-sent under an op id already used (its reply was lost).
      again: fc.option(fc.nat(30), { freq: 4 }),
    }),
  },
  {
    weight: 4,
    arbitrary: fc.record({
      kind: fc.constant('S' as const),
      pick: fc.nat(30),
      mode: fc.constantFrom('adjust' as const, 'adjust' as const, 'release' as const, 'keep' as const),
      refunds: fc.boolean(),
      to: fc.tuple(fc.nat(60), fc.nat(60)),
    }),
  },
  { weight: 1, arbitrary: fc.record({ kind: fc.constant('C' as const), pick: fc.nat(30) }) },
);

const asideArb: fc.Arbitrary<Aside> = fc.oneof(
  fc.record({ kind: fc.constant('backoff' as const), pauseMs: fc.constantFrom(0, 300, 30_000, 90_000), cut: fc.boolean() }),
  fc.record({ kind: fc.constant('reconcile' as const), remaining: fc.integer({ min: 150, max: 300 }) }),
  fc.record({ kind: fc.constant('handback' as const), ageMs: fc.nat(2000), cost: fc.tuple(fc.nat(40), fc.nat(40)) }),
);

const stepArb: fc.Arbitrary<Step> = fc.record({
  tickMs: fc.constantFrom(0, 0, 0, 1, 7, 95, 150, 400, 1100, 4000),
  commands: fc.array(commandArb, { minLength: 1, maxLength: 4 }),
  aside: fc.oneof({ weight: 6, arbitrary: fc.constant(null) }, { weight: 1, arbitrary: asideArb }),
});

/** The limits every call here has: combined 300, output 150, 10 requests. */
const LIMITS = [300, 0, 150, 10];

/** The arguments of the aside's script after its keys, as lib/redis/redis-store.ts sends them. */
function asideArgs(aside: Aside, windowMs: number, now: number): (string | number)[] {
  switch (aside.kind) {
    case 'backoff':
      return [aside.pauseMs, windowMs, aside.cut ? 0.5 : 1, 0.1, 0, 0, now];
    case 'reconcile':
      return ['sliding-window', windowMs, 100, aside.remaining, -1, -1, -1, ...LIMITS, 0, 0, 0, 0, now];
    case 'handback': {
      const [input, output] = aside.cost;
      const [tokens, inputTokens, outputTokens, requests] = LIMITS;
      const settings: ModelSettings = {
        windowMs,
        algorithm: 'sliding-window',
        bucketMs: 0,
        paceMs: 0,
        limits: { tokens, inputTokens, outputTokens, requests },
      };
      return handBackArgs(
        settings,
        [{ ageMs: aside.ageMs, cost: { tokens: input + output, inputTokens: input, outputTokens: output, requests: 1 } }],
        now,
      );
    }
  }
}

const WINDOWS = [
  ['a 1 s window (10 ms buckets, 100 ms chunks)', 1000],
  ['a 20 s window (200 ms buckets, 2 s chunks)', 20_000],
] as const;

const FAST_CALL = "if algorithm == 'w' and tau_ms == 0 then";

describe.each(WINDOWS)('the fast path of lua/queue.lua leaves Redis as the general path does (%s)', (_name, windowMs) => {
  let client: Redis;
  let fastSha: string;
  let generalSha: string;
  const asideShas: Record<Aside['kind'], string> = { backoff: '', reconcile: '', handback: '' };
  beforeAll(async () => {
    client = inspector();
    const source = loadScript('queue');
    expect(source).toContain(FAST_CALL);
    fastSha = (await client.script('LOAD', source)) as string;
    generalSha = (await client.script('LOAD', source.replace(FAST_CALL, 'if false then'))) as string;
    for (const name of ['backoff', 'reconcile', 'handback'] as const)
      asideShas[name] = (await client.script('LOAD', loadScript(name))) as string;
  });
  afterAll(() => closeClient(client));

  /** Every key of one copy, read back, with the epoch ms its TTL runs to (PEXPIRETIME). */
  async function dump(keys: string[]): Promise<unknown[]> {
    const out: unknown[] = [];
    for (const [k, key] of keys.entries()) {
      const content = k === 0 || k === 2 ? await client.hgetall(key) : await client.zrange(key, '0', '-1', 'WITHSCORES');
      out.push(content, await client.call('PEXPIRETIME', key));
    }
    return out;
  }

  /**
   * One model twice, the fast copy and the general copy: `run` sends one call (`count` commands)
   * to both at `now`, checks that they answer alike and leave Redis alike, and returns the reply.
   */
  function twoCopies(name: string) {
    const prefix = uniquePrefix(name);
    const copies = [fastSha, generalSha].map((sha, k) => ({ sha, keys: ['w', 'q', 'r', 'x', 'o'].map((x) => `{${prefix}:${k}}:${x}`) }));
    const run = async (now: number, args: (string | number)[], count = 1) => {
      const head = [['w', windowMs, 100, 0, ...LIMITS, 0, 0, 10_000, 5000, 256, now].join('|'), '', count];
      const replies = [];
      for (const copy of copies) replies.push(await client.evalsha(copy.sha, 5, ...copy.keys, ...head, ...args));
      expect(replies[0]).toEqual(replies[1]);
      expect(await dump(copies[0].keys)).toEqual(await dump(copies[1].keys));
      return replies[0] as string;
    };
    return { copies, run, drop: () => client.del(...copies.flatMap((c) => c.keys)) };
  }

  it('gives the same replies and the same keys for the same random batches', async () => {
    await fc.assert(
      fc.asyncProperty(fc.array(stepArb, { minLength: 4, maxLength: 40 }), async (steps) => {
        // A clock of the test's own, a day ahead, so the TTLs the script sets are in the future.
        let now = Date.now() + 86_400_000;
        now -= now % 1000;
        const prefix = uniquePrefix('fast');
        const keysOf = (copy: string) => ['w', 'q', 'r', 'x', 'o'].map((k) => `{${prefix}:${copy}}:${k}`);
        const copies = [
          { sha: fastSha, keys: keysOf('fast') },
          { sha: generalSha, keys: keysOf('general') },
        ];
        const ops: string[] = [];
        for (const [at, step] of steps.entries()) {
          now += step.tickMs;
          const args: (string | number)[] = [];
          for (const c of step.commands) {
            if (c.kind === 'A') {
              const op = c.again !== null && ops.length > 0 ? ops[c.again % ops.length] : `op-${String(ops.length).padStart(9, '0')}`;
              if (!ops.includes(op)) ops.push(op);
              const [input, output] = c.cost;
              args.push('A', op, 'owner-a', input + output, input, output, 1, c.maxWaitMs, -1);
            } else if (c.kind === 'S') {
              const op = ops.length > 0 ? ops[c.pick % ops.length] : 'op-unknown';
              const [input, output] = c.to;
              args.push('S', op, c.mode, c.refunds ? 1 : 0, input + output, input, output);
            } else {
              args.push('C', 'owner-a', -1, 1, ops.length > 0 ? ops[c.pick % ops.length] : 'op-unknown');
            }
          }
          const head = [['w', windowMs, 100, 0, ...LIMITS, 0, 0, 10_000, 5000, 256, now].join('|'), '', step.commands.length];
          const replies = [];
          const states = [];
          for (const copy of copies) {
            const reply = [await client.evalsha(copy.sha, 5, ...copy.keys, ...head, ...args)];
            if (step.aside)
              reply.push(await client.evalsha(asideShas[step.aside.kind], 1, copy.keys[0], ...asideArgs(step.aside, windowMs, now)));
            replies.push(reply);
            states.push(await dump(copy.keys));
          }
          expect({ at, step, reply: replies[0], keys: states[0] }).toEqual({ at, step, reply: replies[1], keys: states[1] });
        }
        await client.del(...copies.flatMap((c) => c.keys));
      }),
      { numRuns: 60 },
    );
  });

  it.each([1, 2])('admits within limits a back-off cut, as the general path does (%i acquires in the call)', async (count) => {
    let now = Date.now() + 86_400_000;
    now -= now % 1000;
    const { copies, run, drop } = twoCopies('fast-cut');
    const acquire = (op: string) => ['A', op, 'owner-a', 3, 1, 2, 1, -1, -1];
    // Six of the ten requests a window allows, then a 429 cuts the limits to half (five).
    for (let k = 0; k < 6; k++) await run(now, acquire(`op-${k}`));
    for (const copy of copies)
      await client.evalsha(asideShas.backoff, 1, copy.keys[0], ...asideArgs({ kind: 'backoff', pauseMs: 0, cut: true }, windowMs, now));
    now += 1;
    const reply = await run(now, Array.from({ length: count }, (_, k) => acquire(`op-${6 + k}`)).flat(), count);
    // The first command's state (after now, next check, the head's owner, admitted waiters 0).
    expect(reply.split('|')[4]).toBe('waiting');
    await drop();
  });

  it('reads a chunk stored with fewer entries as ending in empty ones, as the general path does', async () => {
    let now = Date.now() + 86_400_000;
    now -= now % windowMs; // the first bucket of a chunk
    const { copies, run, drop } = twoCopies('fast-short');
    await run(now, ['A', 'op-1', 'owner-a', 30, 10, 20, 1, -1, -1]);
    // Five buckets on, a claim (the general path) moves the window's base to this bucket, so the
    // next acquire here takes the fast path.
    now += (windowMs / 100) * 5;
    await run(now, ['C', 'owner-a', -1, 1, 'op-1']);
    // The chunk cut after its one entry (no trailing empty entries): the acquire's bucket lies
    // beyond what it holds.
    for (const copy of copies) {
      const state = await client.hgetall(copy.keys[0]);
      const chunk = Object.keys(state).find((field) => /^\d+$/.test(field))!;
      expect(state[chunk]).toMatch(/^30:10:20:1,+$/);
      await client.hset(copy.keys[0], chunk, '30:10:20:1');
    }
    await run(now, ['A', 'op-2', 'owner-a', 7, 3, 4, 1, -1, -1]);
    await run(now, ['S', 'op-1', 'adjust', 1, 12, 10, 2]);
    await drop();
  });
});
