import { randomBytes } from 'node:crypto';
import type { EffectiveLimits } from '../../lib/core/config.js';
import { MAX_ADMIT, OWNER_LEASE_MS, SETTLED_HORIZON_MS } from '../../lib/core/store.js';
import type { AcquireReply, AdmittedWaiter, LimiterStore, ModelSettings, ModelStore, SettleCommand } from '../../lib/core/store.js';
import { waitFor } from './redis.js';

/** A clock reading that starts a sliding-window bucket for every window used below. */
const T0 = 1_800_000_000_000;
const W = 60_000;
/** Width of a sliding-window bucket of W (BUCKETS = 100). */
const BUCKET = W / 100;

const NO_LIMITS: EffectiveLimits = { tokens: 0, inputTokens: 0, outputTokens: 0, requests: 0 };

function slidingWindow(limits: Partial<EffectiveLimits>, paceMs = 0): ModelSettings {
  return { windowMs: W, algorithm: 'sliding-window', bucketMs: W, paceMs, limits: { ...NO_LIMITS, ...limits } };
}

/** A bucket refilling `limits` per second, holding `bucketMs` of refill. */
function tokenBucket(limits: Partial<EffectiveLimits>, bucketMs: number): ModelSettings {
  return { windowMs: 1000, algorithm: 'token-bucket', bucketMs, paceMs: 0, limits: { ...NO_LIMITS, ...limits } };
}

const zeroCharge = { tokens: 0, inputTokens: 0, outputTokens: 0, requests: 0 };

let runs = 0;

export interface StoreQueueSpecOptions {
  /**
   * Resolves once the store hears admissions of these models of `prefix` (a Redis store
   * subscribes on a connection of its own); absent when listeners hear them at once.
   */
  readonly listening?: (prefix: string, models: readonly string[]) => Promise<void>;
  /** Run once after every case. */
  readonly close?: () => Promise<void>;
}

/**
 * The store port's live queue, driven directly with a manual clock. `makeStore` builds a store
 * reading that clock; every case uses its own key prefix, so one store may serve them all. The
 * clock starts at T0, ahead of real time: a Redis store sets its keys' PEXPIREAT from it.
 */
export function storeQueueSpec(name: string, makeStore: (clock: () => number) => LimiterStore, options: StoreQueueSpecOptions = {}): void {
  describe(`live queue of the ${name} store`, () => {
    let now = T0;
    let store: LimiterStore;
    let prefix: string;
    let m: ModelStore;
    let settings: ModelSettings;

    beforeAll(() => {
      store = makeStore(() => now);
    });
    afterAll(async () => {
      await options.close?.();
    });
    beforeEach(() => {
      now = T0;
      prefix = `sq${++runs}-${randomBytes(6).toString('hex')}`;
      m = store.forModel('m', prefix);
      settings = slidingWindow({ tokens: 1000 });
    });

    const at = (ms: number) => {
      now = T0 + ms;
    };
    const acquire = (
      opId: string,
      tokens: number,
      options: { owner?: string; maxWaitMs?: number; on?: ModelStore } = {},
    ): Promise<AcquireReply> =>
      (options.on ?? m).acquire({
        opId,
        owner: options.owner ?? 'o1',
        settings,
        cost: { tokens, inputTokens: 0, outputTokens: 0, requests: 1 },
        maxWaitMs: options.maxWaitMs ?? -1,
      });
    const settle = (opId: string, mode: SettleCommand['mode'], to?: number, refunds = true, on: ModelStore = m) =>
      on.settle({ opId, settings, mode, refunds, ...(to === undefined ? {} : { to: { tokens: to, inputTokens: 0, outputTokens: 0 } }) });
    const claim = (opIds: string[], owner = 'o1') => m.claim({ owner, settings, opIds });
    const states = async (opIds: string[]) => (await claim(opIds)).records.map((r) => r.state);
    /** Moves the clock to `ms` after T0, claiming for o1 at least every 4 s so its lease holds. */
    const walk = async (ms: number) => {
      while (now < T0 + ms) {
        at(Math.min(now - T0 + 4000, ms));
        await claim([]);
      }
    };
    const used = async () => (await m.status(settings)).used.tokens;
    const admittedIds = (admitted: readonly AdmittedWaiter[]) => admitted.map((a) => a.opId);

    it('admits at once while it fits, charged at the moment of admission', async () => {
      const a = await acquire('a', 400);
      expect(a).toMatchObject({ state: 'admitted', slotMs: T0, position: 0, nowMs: T0, admitted: [], nextCheckMs: 0 });
      at(1000);
      expect(await acquire('b', 600)).toMatchObject({ state: 'admitted', slotMs: T0 + 1000, position: 0 });
      expect(await used()).toBe(1000);
      expect(await acquire('c', 1)).toMatchObject({ state: 'waiting', position: 0 });
    });

    it('a repeated acquire answers with the record and charges nothing again', async () => {
      await acquire('a', 600);
      await acquire('b', 600);
      at(10);
      expect(await acquire('a', 600)).toMatchObject({ state: 'admitted', slotMs: T0 });
      expect(await acquire('b', 600)).toMatchObject({ state: 'waiting', position: 0 });
      expect(await used()).toBe(600);
      expect((await m.status(settings)).queueDepth).toBe(1);
    });

    it('serves in arrival order: a large head blocks a smaller waiter that would fit', async () => {
      await acquire('a', 600);
      expect(await acquire('b', 500)).toMatchObject({ state: 'waiting', position: 0 });
      expect(await acquire('c', 100)).toMatchObject({ state: 'waiting', position: 1 });
      const reply = await settle('a', 'adjust', 500);
      expect(admittedIds(reply.admitted)).toEqual(['b']);
      expect(await states(['b', 'c'])).toEqual(['admitted', 'waiting']);
      expect((await claim(['c'])).records[0].position).toBe(0);
    });

    it('admits the head when the window frees room, not later, and says when in nextCheckMs', async () => {
      await acquire('a', 1000);
      // Until then, the owner's lease is the sooner check.
      expect((await acquire('b', 1000)).nextCheckMs).toBe(T0 + OWNER_LEASE_MS + 1);
      await walk(101 * BUCKET - 1);
      const before = await claim(['b']);
      expect(before.records[0].state).toBe('waiting');
      // Bucket 0 leaves the window when bucket 101 starts.
      expect(before.nextCheckMs).toBe(T0 + 101 * BUCKET);
      at(101 * BUCKET);
      const reply = await claim(['b']);
      expect(reply.admitted).toEqual([{ opId: 'b', slotMs: T0 + 101 * BUCKET }]);
      expect(reply.records[0]).toMatchObject({ state: 'admitted', slotMs: T0 + 101 * BUCKET });
      expect(reply.nextCheckMs).toBe(0);
    });

    it('nextCheckMs slides the window bucket by bucket to the first that leaves room', async () => {
      await acquire('a', 400);
      at(10 * BUCKET);
      await acquire('b', 600);
      await walk(56_000);
      expect((await acquire('c', 300)).nextCheckMs).toBe(T0 + 101 * BUCKET);
      await settle('c', 'release');
      await walk(62_000);
      expect((await acquire('d', 500)).nextCheckMs).toBe(T0 + 111 * BUCKET);
    });

    it('nextCheckMs follows the pacing bucket', async () => {
      // 1000 tokens a minute: a pacing bucket of 600 ms holds 10 tokens.
      settings = slidingWindow({ tokens: 1000 }, 600);
      expect((await acquire('a', 10)).state).toBe('admitted');
      expect(await acquire('b', 5)).toMatchObject({ state: 'waiting', nextCheckMs: T0 + 300 });
      at(299);
      expect(await states(['b'])).toEqual(['waiting']);
      at(300);
      expect(admittedIds((await claim(['b'])).admitted)).toEqual(['b']);
      expect(await acquire('c', 10)).toMatchObject({ state: 'waiting', nextCheckMs: T0 + 900 });
    });

    it('nextCheckMs follows the token bucket', async () => {
      settings = tokenBucket({ tokens: 1000 }, 1000);
      expect((await acquire('a', 1000)).state).toBe('admitted');
      expect(await acquire('b', 500)).toMatchObject({ state: 'waiting', nextCheckMs: T0 + 500 });
      at(500);
      expect(admittedIds((await claim(['b'])).admitted)).toEqual(['b']);
    });

    it('nextCheckMs is the back-off pause end when that comes last', async () => {
      await m.backOff(settings, { pauseMs: 2000, cut: 1, floor: 0.05, settleMs: 0 });
      expect(await acquire('a', 1)).toMatchObject({ state: 'waiting', nextCheckMs: T0 + 2000 });
      at(2000);
      expect(admittedIds((await claim(['a'])).admitted)).toEqual(['a']);
    });

    it('a release of an admitted reservation admits the waiting head in the same call', async () => {
      await acquire('a', 1000);
      await acquire('b', 700);
      at(5);
      const reply = await settle('a', 'release');
      expect(reply).toMatchObject({ status: 'ok', admitted: [{ opId: 'b', slotMs: T0 + 5 }], nextCheckMs: 0 });
      expect(reply.applied).toEqual({ tokens: -1000, inputTokens: 0, outputTokens: 0, requests: -1 });
      expect(reply.charged).toEqual({ tokens: 1000, inputTokens: 0, outputTokens: 0, requests: 1 });
      expect(await used()).toBe(700);
    });

    it('without refunds a downward adjust gives nothing back; an adjust or keep of a waiting record changes nothing', async () => {
      await acquire('a', 1000);
      await acquire('b', 300);
      expect(await settle('b', 'adjust', 100)).toMatchObject({ status: 'waiting', applied: zeroCharge, charged: { tokens: 300 } });
      expect(await settle('b', 'keep')).toMatchObject({ status: 'waiting' });
      const kept = await settle('a', 'adjust', 600, false);
      expect(kept).toMatchObject({ status: 'ok', applied: zeroCharge, admitted: [] });
      expect(await used()).toBe(1000);
      expect(await states(['a', 'b'])).toEqual(['settled', 'waiting']);
    });

    it('a refund admits the waiting head at once', async () => {
      await acquire('a', 1000);
      await acquire('b', 300);
      const reply = await settle('a', 'adjust', 700);
      expect(reply.applied.tokens).toBe(-300);
      expect(admittedIds(reply.admitted)).toEqual(['b']);
      expect(await used()).toBe(1000);
    });

    it('a charge upward moves the window: more is used', async () => {
      await acquire('a', 500);
      expect((await settle('a', 'adjust', 900, false)).applied.tokens).toBe(400);
      expect(await used()).toBe(900);
    });

    it('a released waiting record leaves the queue and charges nothing', async () => {
      await acquire('a', 1000);
      await acquire('b', 300);
      await acquire('c', 200);
      const reply = await settle('b', 'release');
      expect(reply).toMatchObject({ status: 'ok', applied: zeroCharge, charged: { tokens: 300 } });
      expect((await claim(['c'])).records[0]).toMatchObject({ state: 'waiting', position: 0 });
      expect((await m.status(settings)).queueDepth).toBe(1);
      expect(await acquire('b', 300)).toMatchObject({ state: 'released' });
    });

    it('a repeated settle says how the record ended and changes nothing', async () => {
      await acquire('a', 400);
      await acquire('b', 400);
      expect((await settle('a', 'release')).status).toBe('ok');
      expect(await settle('a', 'release')).toMatchObject({ status: 'released', applied: zeroCharge, charged: zeroCharge });
      expect((await settle('a', 'adjust', 0)).status).toBe('released');
      expect((await settle('b', 'adjust', 100)).status).toBe('ok');
      expect((await settle('b', 'adjust', 0)).status).toBe('settled');
      expect((await settle('b', 'release')).status).toBe('settled');
      expect((await settle('b', 'keep')).status).toBe('settled');
      expect(await used()).toBe(100);
    });

    it('keep settles as charged', async () => {
      await acquire('a', 400);
      expect(await settle('a', 'keep')).toMatchObject({ status: 'ok', applied: zeroCharge, charged: { tokens: 400 } });
      expect(await used()).toBe(400);
      expect(await states(['a'])).toEqual(['settled']);
    });

    it('an unknown or crafted id is unknown and changes nothing', async () => {
      await acquire('a', 1000);
      await acquire('b', 10);
      for (const id of ['nope', '', 'a ', '__proto__', 'constructor']) {
        expect(await settle(id, 'release')).toMatchObject({ status: 'unknown', applied: zeroCharge, charged: zeroCharge });
        expect(await settle(id, 'adjust')).toMatchObject({ applied: zeroCharge, charged: zeroCharge });
      }
      expect(await states(['never', '__proto__'])).toEqual(['unknown', 'released']);
      expect(await used()).toBe(1000);
      expect((await m.status(settings)).queueDepth).toBe(1);
    });

    it('remembers a release of an id it does not know, so the acquire it overtook changes nothing', async () => {
      expect(await settle('late', 'release')).toMatchObject({ status: 'unknown' });
      expect(await acquire('late', 10)).toMatchObject({ state: 'released' });
      expect(await used()).toBe(0);
      expect((await m.status(settings)).queueDepth).toBe(0);
    });

    it("another model's or prefix's store does not know the id", async () => {
      await acquire('a', 1000);
      await acquire('b', 10);
      const other = store.forModel('other', prefix);
      const elsewhere = store.forModel('m', `${prefix}-x`);
      expect((await settle('a', 'release', undefined, true, other)).status).toBe('unknown');
      expect((await settle('a', 'release', undefined, true, elsewhere)).status).toBe('unknown');
      expect(await used()).toBe(1000);
      expect(await states(['b'])).toEqual(['waiting']);
    });

    it("drops a waiter past its deadline ('timeout'), checked at deadline + 1", async () => {
      await acquire('a', 1000);
      expect((await acquire('b', 10, { maxWaitMs: 3000 })).nextCheckMs).toBe(T0 + 3001);
      at(3000);
      expect(await states(['b'])).toEqual(['waiting']);
      at(3001);
      expect(await states(['b'])).toEqual(['timeout']);
      expect(await acquire('b', 10, { maxWaitMs: 3000 })).toMatchObject({ state: 'timeout' });
      expect((await settle('b', 'release')).status).toBe('timeout');
      expect((await m.status(settings)).queueDepth).toBe(0);
    });

    it("drops a waiter whose owner stopped claiming ('lost'); a claim renews the lease", async () => {
      await acquire('a', 1000);
      expect((await acquire('b', 10, { owner: 'o2' })).nextCheckMs).toBe(T0 + OWNER_LEASE_MS + 1);
      await acquire('c', 10, { owner: 'o3' });
      at(4000);
      await m.claim({ owner: 'o3', settings, opIds: ['c'] });
      at(OWNER_LEASE_MS);
      expect(await states(['b', 'c'])).toEqual(['waiting', 'waiting']);
      at(OWNER_LEASE_MS + 1);
      const reply = await claim(['b', 'c']);
      expect(reply.records.map((r) => r.state)).toEqual(['lost', 'waiting']);
      // o3's lease, renewed at 4000, is now the head's.
      expect(reply.nextCheckMs).toBe(T0 + 4000 + OWNER_LEASE_MS + 1);
      expect((await settle('b', 'release')).status).toBe('lost');
    });

    it('forgets tombstones SETTLED_HORIZON_MS after they ended, and admitted records a window after that', async () => {
      await acquire('a', 100);
      await acquire('b', 100);
      at(1000);
      await settle('a', 'release');
      at(1000 + SETTLED_HORIZON_MS - 1);
      expect((await settle('a', 'release')).status).toBe('released');
      at(1000 + SETTLED_HORIZON_MS);
      expect((await settle('a', 'release')).status).toBe('unknown');
      at(W + SETTLED_HORIZON_MS - 1);
      expect(await states(['b'])).toEqual(['admitted']);
      at(W + SETTLED_HORIZON_MS);
      expect(await states(['b'])).toEqual(['unknown']);
    });

    it("settles a charge that left the window as 'expired', moving nothing", async () => {
      await acquire('a', 1000);
      await walk(101 * BUCKET);
      await acquire('b', 1000);
      expect(await settle('a', 'release')).toMatchObject({ status: 'expired', applied: zeroCharge, charged: { tokens: 1000 } });
      expect(await used()).toBe(1000);
      expect((await settle('a', 'release')).status).toBe('released');
    });

    it("maxWaitMs 0 answers 'timeout' with an estimate and stores nothing", async () => {
      expect((await acquire('a', 1000, { maxWaitMs: 0 })).state).toBe('admitted');
      const reply = await acquire('b', 1, { maxWaitMs: 0 });
      // One token over a limit of 1000 per minute: 60 ms of refill.
      expect(reply).toMatchObject({ state: 'timeout', estimateMs: 60, nextCheckMs: 0 });
      expect((await m.status(settings)).queueDepth).toBe(0);
      expect(await states(['b'])).toEqual(['unknown']);
    });

    it("a pause longer than maxWaitMs answers 'timeout' at once", async () => {
      await m.backOff(settings, { pauseMs: 10_000, cut: 1, floor: 0.05, settleMs: 0 });
      expect(await acquire('a', 1, { maxWaitMs: 5000 })).toMatchObject({ state: 'timeout', estimateMs: 10_000 });
      expect(await acquire('b', 1, { maxWaitMs: 10_000 })).toMatchObject({ state: 'waiting' });
    });

    it('token bucket: a refund gives back only the refill still ahead', async () => {
      settings = tokenBucket({ tokens: 1000 }, 1000);
      await acquire('x', 1000);
      at(1000);
      expect((await acquire('y', 1000)).state).toBe('admitted');
      // x's refill is over: releasing it must not make room beside y's 1000 in this second.
      expect((await settle('x', 'release')).applied.tokens).toBe(-1000);
      expect(await acquire('z', 1)).toMatchObject({ state: 'waiting' });
      expect(await used()).toBe(1000);
      at(1500);
      // Half of y's refill is ahead: that half comes back, the bucket is full again.
      await settle('y', 'release');
      expect(await states(['z'])).toEqual(['admitted']);
      expect(await acquire('w', 999)).toMatchObject({ state: 'admitted' });
      expect(await acquire('v', 1)).toMatchObject({ state: 'waiting' });
    });

    it('token bucket: what stays charged never passes a bucketful plus the refill, whatever is released', async () => {
      settings = tokenBucket({ tokens: 1000 }, 1000);
      const slots = new Map<string, number>();
      const released = new Set<string>();
      const note = (reply: { admitted: readonly AdmittedWaiter[] }, id?: string, first?: AcquireReply) => {
        if (id && first?.state === 'admitted') slots.set(id, first.slotMs);
        for (const a of reply.admitted) slots.set(a.opId, a.slotMs);
      };
      for (let k = 0; k < 80; k++) {
        at(k * 200);
        const reply = await acquire(`r${k}`, 300);
        note(reply, `r${k}`, reply);
        // Reservations r0, r3, r6... are released, from 0.2 s to 2.6 s after they were asked for.
        const old = k - 1 - ((k * 7) % 13);
        if (old >= 0 && old % 3 === 0 && !released.has(`r${old}`)) {
          released.add(`r${old}`);
          note(await settle(`r${old}`, 'release'));
        }
      }
      const kept = [...slots].filter(([id]) => !released.has(id)).map(([, slot]) => slot);
      kept.sort((x, y) => x - y);
      // 1 token per ms: over [t_i, t_j] at most 1000 + (t_j - t_i) tokens.
      for (let i = 0; i < kept.length; i++) {
        for (let j = i; j < kept.length; j++) expect((j - i + 1) * 300).toBeLessThanOrEqual(1000 + kept[j] - kept[i]);
      }
      expect(kept.length).toBeGreaterThan(40);
    });

    it('learned limits grow when an acquire has to wait, and the grown limits admit in the same call', async () => {
      settings = { ...slidingWindow({ tokens: 1000 }), learn: { maxFactor: 2, increasePerWindow: 0.5 } };
      await acquire('a', 1000);
      // Growth counts from the first pressing acquire: none yet.
      expect(await acquire('b', 100)).toMatchObject({ state: 'waiting' });
      expect((await m.status(settings)).limitFactor).toBe(1);
      await walk(W / 2);
      expect((await m.status(settings)).limitFactor).toBe(1);
      // Half a window of pressing demand: 1.25, so 1250 tokens, room for b and c.
      const c = await acquire('c', 100);
      expect(c).toMatchObject({ state: 'admitted', slotMs: T0 + W / 2, position: 0 });
      expect(admittedIds(c.admitted)).toEqual(['b', 'c']);
      expect((await m.status(settings)).limitFactor).toBe(1.25);
    });

    it('does not learn while paused', async () => {
      settings = { ...slidingWindow({ tokens: 1000 }), learn: { maxFactor: 2, increasePerWindow: 0.5 } };
      await acquire('a', 1000);
      await acquire('b', 100);
      await m.backOff(settings, { pauseMs: W, cut: 1, floor: 0.05, settleMs: 0 });
      await walk(W / 2);
      expect(await acquire('c', 100)).toMatchObject({ state: 'waiting', position: 1 });
      expect((await m.status(settings)).limitFactor).toBe(1);
    });

    it('status counts waiting records in queueDepth', async () => {
      await acquire('a', 1000);
      await acquire('b', 1);
      await acquire('c', 1);
      expect(await m.status(settings)).toMatchObject({ nowMs: T0, queueDepth: 2, used: { tokens: 1000, requests: 1 } });
    });

    it('admits at most MAX_ADMIT waiters per admit step, and then asks to be called again now', async () => {
      await acquire('a', 1000);
      await acquire('head', 1);
      const more = MAX_ADMIT + 10;
      for (let k = 0; k < more; k++) await acquire(`w${k}`, 0);
      at(1);
      const reply = await settle('a', 'release');
      expect(reply.admitted).toHaveLength(MAX_ADMIT);
      expect(reply.admitted[0].opId).toBe('head');
      expect(reply.nextCheckMs).toBe(T0 + 1);
      const rest = await claim([]);
      expect(rest.admitted).toHaveLength(more + 1 - MAX_ADMIT);
      expect(rest.nextCheckMs).toBe(0);
    });

    it('tells onAdmitted listeners of admissions made through another handle of the same model', async () => {
      const heard: string[] = [];
      const otherHeard: string[] = [];
      // Stays listening after `stop`: once it heard 'd', 'd' would have reached `heard` too.
      const probe: string[] = [];
      const handle = store.forModel('m', prefix);
      const stop = m.onAdmitted((admitted) => heard.push(...admittedIds(admitted)));
      const stopProbe = m.onAdmitted((admitted) => probe.push(...admittedIds(admitted)));
      const stopOther = store.forModel('other', prefix).onAdmitted((admitted) => otherHeard.push(...admittedIds(admitted)));
      await options.listening?.(prefix, ['m', 'other']);
      await acquire('a', 1000, { on: handle, owner: 'o2' });
      await acquire('b', 10);
      await settle('a', 'release', undefined, true, handle);
      await waitFor(() => heard.length > 0, 10_000, 'the admission of b');
      expect(heard).toEqual(['b']);
      stop();
      await acquire('c', 1000, { on: handle, owner: 'o2' });
      await acquire('d', 10);
      await settle('c', 'release', undefined, true, handle);
      await waitFor(() => probe.includes('d'), 10_000, 'the admission of d');
      expect(heard).toEqual(['b']);
      expect(probe).toEqual(['b', 'd']);
      expect(otherHeard).toEqual([]);
      stopProbe();
      stopOther();
    });
  });
}
