import { MAX_ADMIT, OWNER_LEASE_MS, SETTLED_HORIZON_MS } from '../core/store.js';
import type {
  AcquireCommand,
  AcquireReply,
  AdmittedWaiter,
  BackOffCommand,
  BackOffReply,
  Charge,
  ClaimCommand,
  ClaimReply,
  ModelSettings,
  QueueNews,
  ReconcileCommand,
  RecordState,
  SettleCommand,
  SettleReply,
  StatusReply,
} from '../core/store.js';
import type { Capacity } from './capacity.js';
import { ExpiryHeap } from './expiry-heap.js';
import { addTo, chargeOf, figuresOf, zero } from './figures.js';
import type { Figures } from './figures.js';
import { LimitFactor } from './limit-factor.js';
import type { EndedState, OpRecord, WaitingRecord } from './records.js';
import { SlidingWindow } from './sliding-window.js';
import { TokenBucket } from './token-bucket.js';

/** One acquire, claim or settle call: its clock reading and what its admit steps did. */
interface Call {
  readonly now: number;
  readonly settings: ModelSettings;
  readonly capacity: Capacity;
  readonly admitted: AdmittedWaiter[];
  /** The last admit step stopped at MAX_ADMIT with waiters left. */
  ranOut: boolean;
}

interface SettleOutcome {
  readonly status: SettleReply['status'];
  readonly applied: Charge;
  readonly charged: Charge;
}

const NOTHING: Charge = chargeOf(zero());

/**
 * One model's live queue (see the port in lib/core/store.ts). Every acquire, claim and settle
 * call runs the same steps as the Redis script (lua/queue.lua and its includes), down to the
 * rounding, so that both stores give the same replies at the same clock readings: advance the
 * window, forget what is due, admit, the command, admit again, then say what was admitted and
 * when the head could next be.
 */
export class ModelState {
  private readonly window = new SlidingWindow();
  private readonly bucket = new TokenBucket();
  /** Waiting op ids in order of arrival (a Map keeps insertion order). */
  private readonly queue = new Map<string, WaitingRecord>();
  /** Sums of the waiting costs, for the estimate of a 'timeout'. */
  private readonly waitingSums: Figures = zero();
  private readonly records = new Map<string, OpRecord>();
  /** Owner -> lease end, epoch ms. */
  private readonly owners = new Map<string, number>();
  private readonly expiry = new ExpiryHeap();
  private readonly listeners = new Set<(admitted: readonly AdmittedWaiter[]) => void>();
  private readonly limits = new LimitFactor();
  /** The live instance count heartbeats published: 1 once this process's first beat came. */
  instances = 0;

  constructor(private readonly clock: () => number) {}

  acquire(c: AcquireCommand): AcquireReply {
    const call = this.begin(c.settings);
    const estimate = this.records.has(c.opId) ? undefined : this.place(call, c);
    const news = this.finish(call);
    if (estimate !== undefined) return { ...news, state: 'timeout', slotMs: 0, position: 0, estimateMs: estimate };
    // Described after the last admit step: a waiter it admitted replies 'admitted'.
    return { ...news, ...this.describe(c.opId), estimateMs: 0 };
  }

  claim(c: ClaimCommand): ClaimReply {
    const call = this.begin(c.settings);
    this.owners.set(c.owner, call.now + OWNER_LEASE_MS);
    const news = this.finish(call);
    return { ...news, records: c.opIds.map((id) => this.describe(id, false)) };
  }

  settle(c: SettleCommand): SettleReply {
    const call = this.begin(c.settings);
    const outcome = this.settleOne(call, c);
    return { ...this.finish(call), ...outcome };
  }

  status(settings: ModelSettings): StatusReply {
    const now = this.clock();
    const used = this.capacityOf(settings).used(settings, this.limits.scaled(settings, now), now);
    return {
      nowMs: now,
      used: chargeOf(used),
      queueDepth: this.queue.size,
      pausedUntil: this.limits.pausedUntil > now ? this.limits.pausedUntil : 0,
      limitFactor: this.limits.at(now, settings.windowMs),
    };
  }

  backOff(settings: ModelSettings, c: BackOffCommand): BackOffReply {
    return this.limits.backOff(settings, c, this.clock());
  }

  /** As reconcile.lua: charge now what the provider reports beyond our own figures. */
  reconcile(settings: ModelSettings, c: ReconcileCommand): Charge {
    const now = this.clock();
    const r = c.remaining;
    const remaining = [r.tokens, r.inputTokens, r.outputTokens, r.requests];
    const limit = this.limits.scaled(settings, now);
    return chargeOf(this.capacityOf(settings).reconcile(settings, remaining, figuresOf(c.tolerance), limit, now));
  }

  onAdmitted(listener: (admitted: readonly AdmittedWaiter[]) => void): () => void {
    // A wrapper per registration, so that one function registered twice is two registrations.
    const registered = (admitted: readonly AdmittedWaiter[]) => listener(admitted);
    this.listeners.add(registered);
    return () => {
      this.listeners.delete(registered);
    };
  }

  /** Steps 1 to 3 of every queue call: advance the window, forget what is due, admit. */
  private begin(settings: ModelSettings): Call {
    const now = this.clock();
    const capacity = this.capacityOf(settings);
    capacity.advance(settings, now);
    this.trim(now);
    const call: Call = { now, settings, capacity, admitted: [], ranOut: false };
    this.admitStep(call);
    return call;
  }

  /** Steps 5 and 6: admit again, then tell every listener of this model what was admitted. */
  private finish(call: Call): QueueNews {
    this.admitStep(call);
    const [head] = this.queue.values();
    const { now, settings } = call;
    const used = chargeOf(call.capacity.used(settings, this.limits.scaled(settings, now), now));
    const news = {
      nowMs: now,
      admitted: call.admitted,
      nextCheckMs: this.nextCheck(call),
      headOwner: head ? head.owner : '',
      window: { used, instances: this.instances },
    };
    if (call.admitted.length > 0) {
      for (const listener of this.listeners) {
        // The call's state change is done: a failing listener must not turn it into an error
        // for the caller, whose reply says what happened.
        try {
          listener(call.admitted);
        } catch {
          // The listener's own failure; nothing here can repair it.
        }
      }
    }
    return news;
  }

  /** Enqueues or admits a new reservation; returns the estimate when it is refused ('timeout'). */
  private place(call: Call, c: AcquireCommand): number | undefined {
    const { now, settings } = call;
    const cost = figuresOf(c.cost);
    // Its caller gave up before it arrived: nothing is reserved.
    if (c.deadlineMs !== undefined && c.deadlineMs >= 0 && now > c.deadlineMs) return this.estimate(call, cost);
    if (this.queue.size === 0 && this.fits(call, cost)) {
      this.admit(call, c.opId, c.owner, cost);
      return undefined;
    }
    if (c.maxWaitMs === 0 || (c.maxWaitMs > 0 && this.limits.pausedUntil > now + c.maxWaitMs)) return this.estimate(call, cost);
    // Only a waiter needs its owner's lease: one admitted at once is not dropped for it. Its
    // caller's deadline ends it at most (as lease_end in lua/queue.lua).
    const gaveUp = c.deadlineMs ?? -1;
    this.owners.set(c.owner, gaveUp >= 0 ? Math.min(now + OWNER_LEASE_MS, gaveUp) : now + OWNER_LEASE_MS);
    const waiting: WaitingRecord = { state: 'waiting', owner: c.owner, cost, deadline: c.maxWaitMs > 0 ? now + c.maxWaitMs : -1 };
    this.queue.set(c.opId, waiting);
    this.records.set(c.opId, waiting);
    addTo(this.waitingSums, cost, 1);
    if (settings.learn && this.limits.pausedUntil <= now) this.limits.learn(settings, now);
    return undefined;
  }

  private settleOne(call: Call, c: SettleCommand): SettleOutcome {
    const record = this.records.get(c.opId);
    if (!record) {
      // A release may overtake its own acquire (sent when the acquire's reply was lost): the
      // tombstone makes the acquire, should it arrive later, change nothing.
      if (c.mode === 'release') this.end(c.opId, 'released', call.now);
      return { status: 'unknown', applied: NOTHING, charged: NOTHING };
    }
    if (record.state !== 'waiting' && record.state !== 'admitted') return { status: record.state, applied: NOTHING, charged: NOTHING };
    const charged = chargeOf(record.cost);
    if (record.state === 'waiting') {
      if (c.mode !== 'release') return { status: 'waiting', applied: NOTHING, charged };
      this.leaveQueue(c.opId, record);
      this.end(c.opId, 'released', call.now);
      return { status: 'ok', applied: NOTHING, charged };
    }
    this.end(c.opId, c.mode === 'release' ? 'released' : 'settled', call.now);
    if (c.mode === 'keep') return { status: 'ok', applied: NOTHING, charged };
    const delta = c.mode === 'release' ? (record.cost.map((x) => 0 - x) as Figures) : adjustment(record.cost, c);
    const limit = this.limits.scaled(call.settings, call.now);
    const moved = call.capacity.move(call.settings, record.place, delta, limit, call.now);
    if (moved === 'expired') return { status: 'expired', applied: NOTHING, charged };
    return { status: 'ok', applied: chargeOf(moved), charged };
  }

  /**
   * Admits the queue's head while it fits; drops a head past its deadline or whose owner's lease
   * ran out. At most MAX_ADMIT of either per step, so one call's work stays bounded.
   */
  private admitStep(call: Call): void {
    const { now } = call;
    let done = 0;
    call.ranOut = false;
    // Deleting the entry being visited is safe while iterating a Map.
    for (const [id, head] of this.queue) {
      if (done === MAX_ADMIT) {
        call.ranOut = true;
        return;
      }
      const drop = head.deadline >= 0 && now > head.deadline ? 'timeout' : this.leaseOf(head.owner) < now ? 'lost' : undefined;
      if (drop) {
        this.leaveQueue(id, head);
        this.end(id, drop, now);
      } else if (this.fits(call, head.cost)) {
        this.leaveQueue(id, head);
        this.admit(call, id, head.owner, head.cost);
        call.admitted.push({ opId: id, slotMs: now });
      } else {
        return;
      }
      done++;
    }
  }

  /** When the head could be admitted or dropped from time passing alone (0: nothing waits). */
  private nextCheck(call: Call): number {
    const first = this.queue.values().next();
    if (first.done) return 0;
    const { now, settings } = call;
    if (call.ranOut) return now;
    const head = first.value;
    const limit = this.limits.scaled(settings, now);
    let at = Math.max(this.limits.pausedUntil, call.capacity.fitTime(settings, head.cost, limit, now));
    if (head.deadline >= 0) at = Math.min(at, head.deadline + 1);
    at = Math.min(at, this.leaseOf(head.owner) + 1);
    return Math.max(at, now + 1);
  }

  private fits(call: Call, cost: Figures): boolean {
    if (this.limits.pausedUntil > call.now) return false;
    return call.capacity.fits(call.settings, cost, this.limits.scaled(call.settings, call.now), call.now);
  }

  private admit(call: Call, id: string, owner: string, cost: Figures): void {
    const { now, settings } = call;
    const place = call.capacity.admit(settings, cost, this.limits.scaled(settings, now), now);
    // Kept while its charge can still be settled, and a horizon longer for repeated settles.
    const expiresAt = now + settings.windowMs + SETTLED_HORIZON_MS;
    this.records.set(id, { state: 'admitted', owner, cost, slot: now, place, expiresAt });
    this.expiry.push(expiresAt, id);
  }

  private end(id: string, state: EndedState, now: number): void {
    const expiresAt = now + SETTLED_HORIZON_MS;
    this.records.set(id, { state, expiresAt });
    this.expiry.push(expiresAt, id);
  }

  private leaveQueue(id: string, record: WaitingRecord): void {
    this.queue.delete(id);
    addTo(this.waitingSums, record.cost, -1);
  }

  /** Forgets records due by `now`, and owners whose lease ran out (as good as missing). */
  private trim(now: number): void {
    for (let due = this.expiry.popDue(now); due; due = this.expiry.popDue(now)) {
      const record = this.records.get(due.id);
      // An entry left behind when the record changed (admitted, then ended) is not its expiry.
      if (record && record.state !== 'waiting' && record.expiresAt === due.at) this.records.delete(due.id);
    }
    for (const [owner, lease] of this.owners) if (lease < now) this.owners.delete(owner);
  }

  /** Where a record stands; its position in the queue only when `ranked` (claims do not need it). */
  private describe(id: string, ranked = true): { state: RecordState; slotMs: number; position: number } {
    const record = this.records.get(id);
    if (!record) return { state: 'unknown', slotMs: 0, position: 0 };
    if (record.state === 'admitted') return { state: 'admitted', slotMs: record.slot, position: 0 };
    if (record.state !== 'waiting') return { state: record.state, slotMs: 0, position: 0 };
    if (!ranked) return { state: 'waiting', slotMs: 0, position: 0 };
    let position = 0;
    for (const ahead of this.queue.keys()) {
      if (ahead === id) break;
      position++;
    }
    return { state: 'waiting', slotMs: 0, position };
  }

  /** When a request refused now could be admitted, ms from now, from the window and the queue. */
  private estimate(call: Call, cost: Figures): number {
    const { now, settings } = call;
    const limit = this.limits.scaled(settings, now);
    const used = call.capacity.used(settings, limit, now);
    let ms = this.limits.pausedUntil - now;
    for (let d = 0; d < 4; d++) {
      if (limit[d] === 0) continue;
      const over = used[d] + this.waitingSums[d] + cost[d] - limit[d];
      ms = Math.max(ms, Math.ceil((over * settings.windowMs) / limit[d]));
    }
    return Math.max(0, ms);
  }

  private leaseOf(owner: string): number {
    return this.owners.get(owner) ?? -Infinity;
  }

  private capacityOf(settings: ModelSettings): Capacity {
    return settings.algorithm === 'token-bucket' ? this.bucket : this.window;
  }
}

/** An adjust's change per figure: to `to` (only upward without refunds); requests unchanged. */
function adjustment(cost: Figures, c: SettleCommand): Figures {
  const to = c.to ? [c.to.tokens, c.to.inputTokens, c.to.outputTokens] : cost.slice(0, 3);
  const target = to.map((x, d) => (c.refunds ? x : Math.max(cost[d], x)));
  return [target[0] - cost[0], target[1] - cost[1], target[2] - cost[2], 0];
}
