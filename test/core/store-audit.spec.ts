import fc from 'fast-check';
import { type Charge, type ModelSettings, type QueueNews } from '../../lib/core/store.js';
import { MemoryStore } from '../../lib/memory/memory-store.js';
import { bucketOverdraft, fullestWindows, type LoggedRequest } from '../support/window-audit.js';

// The memory store (which mirrors the Lua scripts command by command, see
// store-differential.spec.ts) driven with random acquires, adjusts up and down, releases and
// time steps on an exact clock, then audited from its admission log alone
// (test/support/window-audit.ts): no sliding window over a limit at any ms, no token bucket
// overdrawn. For the token bucket, a process test under load once saw
// a 6-token overdraft (test/core/multi-process.spec.ts). Searching here found the cause in the
// audit, not the store: within one ms it queued an adjust's extra charge behind a later
// admission, so a refund of that admission could give back less than the store rightly did.
// FIRST_FOUND is that sequence, run every time. The same process test later saw 7 tokens over
// (and, before its log was kept, 91 and 128): again the audit's, which read the log's order
// (by process) as the order of admissions within one ms. So the log is audited here in a
// random order, which found every way that went wrong (the audits of multi-process.spec.ts).

type Op =
  | { kind: 'acquire'; cost: [number, number] }
  | { kind: 'claim' }
  | { kind: 'settle'; pick: number; mode: 'adjust' | 'release' | 'keep'; to: [number, number] }
  | { kind: 'tick'; ms: number };

const opArb: fc.Arbitrary<Op> = fc.oneof(
  { weight: 6, arbitrary: fc.record({ kind: fc.constant('acquire' as const), cost: fc.tuple(fc.nat(40), fc.nat(40)) }) },
  { weight: 2, arbitrary: fc.record({ kind: fc.constant('claim' as const) }) },
  {
    weight: 5,
    arbitrary: fc.record({
      kind: fc.constant('settle' as const),
      pick: fc.nat(30),
      mode: fc.constantFrom('adjust' as const, 'adjust' as const, 'release' as const, 'keep' as const),
      to: fc.tuple(fc.nat(60), fc.nat(60)),
    }),
  },
  { weight: 5, arbitrary: fc.record({ kind: fc.constant('tick' as const), ms: fc.constantFrom(1, 3, 10, 37, 120, 400, 900) }) },
);

const SETTINGS: [string, ModelSettings][] = [
  [
    'sliding window',
    {
      windowMs: 1000,
      algorithm: 'sliding-window',
      bucketMs: 1000,
      paceMs: 0,
      limits: { tokens: 100, inputTokens: 0, outputTokens: 0, requests: 5 },
    },
  ],
  [
    'paced sliding window',
    {
      windowMs: 1000,
      algorithm: 'sliding-window',
      bucketMs: 1000,
      paceMs: 250,
      limits: { tokens: 90, inputTokens: 0, outputTokens: 0, requests: 0 },
    },
  ],
  [
    'token bucket',
    {
      windowMs: 1000,
      algorithm: 'token-bucket',
      bucketMs: 500,
      paceMs: 0,
      limits: { tokens: 100, inputTokens: 0, outputTokens: 0, requests: 5 },
    },
  ],
  [
    'token bucket, tokens only',
    {
      windowMs: 1000,
      algorithm: 'token-bucket',
      bucketMs: 300,
      paceMs: 0,
      limits: { tokens: 90, inputTokens: 0, outputTokens: 0, requests: 0 },
    },
  ],
];

const OWNER = 'owner-aaaaaaaaaa';

const FIRST_FOUND: [Op[], boolean, number] = [
  [
    { kind: 'acquire', cost: [0, 0] },
    { kind: 'settle', pick: 0, mode: 'adjust', to: [0, 1] },
    { kind: 'acquire', cost: [0, 3] },
    { kind: 'tick', ms: 37 },
    { kind: 'settle', pick: 3, mode: 'adjust', to: [0, 0] },
    { kind: 'acquire', cost: [0, 27] },
  ],
  true,
  0,
];

/** `items` in an order drawn from `seed` (a small seeded generator, so a failing run replays). */
function shuffled<T>(items: readonly T[], seed: number): T[] {
  const out = [...items];
  let state = seed >>> 0;
  for (let k = out.length - 1; k > 0; k--) {
    state = (Math.imul(state, 1664525) + 1013904223) >>> 0;
    const pick = state % (k + 1);
    [out[k], out[pick]] = [out[pick], out[k]];
  }
  return out;
}

interface Entry {
  readonly opId: string;
  readonly cost: Charge;
  admittedAt?: number;
  change?: { tokens: number; requests: number; at: number };
}

describe.each(SETTINGS)('the %s, replayed from its admission log', (_name, settings) => {
  it('never goes over a limit for any order of acquires, adjusts, releases and time steps', async () => {
    await fc.assert(
      fc.asyncProperty(fc.array(opArb, { minLength: 5, maxLength: 80 }), fc.boolean(), fc.nat(), async (ops, refunds, order) => {
        let now = Date.now();
        const store = new MemoryStore(() => now).forModel('m', 'audit');
        const entries: Entry[] = [];
        const byId = new Map<string, Entry>();
        const heard = (news: QueueNews) => {
          for (const { opId, slotMs } of news.admitted) byId.get(opId)!.admittedAt ??= slotMs;
        };
        for (const [serial, op] of ops.entries()) {
          if (op.kind === 'tick') {
            now += op.ms;
          } else if (op.kind === 'acquire') {
            const [input, output] = op.cost;
            const entry: Entry = {
              opId: `op-${serial}`,
              cost: { tokens: input + output, inputTokens: input, outputTokens: output, requests: 1 },
            };
            entries.push(entry);
            byId.set(entry.opId, entry);
            const reply = await store.acquire({ opId: entry.opId, owner: OWNER, settings, cost: entry.cost, maxWaitMs: -1 });
            heard(reply);
            if (reply.state === 'admitted') entry.admittedAt ??= reply.slotMs;
          } else if (op.kind === 'claim') {
            heard(await store.claim({ owner: OWNER, settings, opIds: [] }));
          } else if (entries.length > 0) {
            const entry = entries[op.pick % entries.length];
            const [input, output] = op.to;
            const reply = await store.settle({
              opId: entry.opId,
              settings,
              mode: op.mode,
              refunds,
              to: { tokens: input + output, inputTokens: input, outputTokens: output },
            });
            heard(reply);
            // What the caller asked for, as the provider counts it; how much of it the bucket
            // can still give back is the audit's to work out.
            const target = op.mode === 'release' ? { tokens: 0, requests: 0 } : { tokens: input + output, requests: 1 };
            const changes = op.mode === 'release' || (op.mode === 'adjust' && (refunds || target.tokens > entry.cost.tokens));
            if (reply.status === 'ok' && changes && (target.tokens !== entry.cost.tokens || target.requests !== 1)) {
              expect(entry.change).toBeUndefined();
              entry.change = { ...target, at: now };
            }
          }
        }
        // In any order: a log gathered from several processes is in none in particular (the
        // process test's is grouped by process), and the audit must not read one into it.
        const log: LoggedRequest[] = shuffled(entries, order)
          .filter((e) => e.admittedAt !== undefined)
          .map((e) => ({
            admittedAt: e.admittedAt!,
            tokens: e.cost.tokens,
            requests: 1,
            ...(e.change && { change: { tokens: e.change.tokens, requests: e.change.requests, from: e.change.at, to: e.change.at } }),
          }));
        const limits = { tokens: settings.limits.tokens, requests: settings.limits.requests };
        if (settings.algorithm === 'token-bucket') {
          const overdraft = bucketOverdraft(log, { windowMs: settings.windowMs, bucketMs: settings.bucketMs, limits });
          expect({ tokens: overdraft.tokens.excess <= 1e-6, requests: overdraft.requests.excess <= 1e-6, overdraft, log }).toEqual({
            tokens: true,
            requests: true,
            overdraft,
            log,
          });
        } else {
          const fullest = fullestWindows(log, settings.windowMs);
          const within = (used: number, limit: number) => limit === 0 || used <= limit;
          expect({
            tokens: within(fullest.byTokens.tokens, limits.tokens),
            requests: within(fullest.byRequests.requests, limits.requests),
            fullest,
            log,
          }).toEqual({
            tokens: true,
            requests: true,
            fullest,
            log,
          });
        }
      }),
      { numRuns: Number(process.env.AUDIT_RUNS ?? 300), examples: [FIRST_FOUND] },
    );
  });
});
