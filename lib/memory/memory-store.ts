import { BUCKETS, RING_CAPACITY, scaledLimit } from '../core/store.js';
import type {
  BackOffCommand,
  BackOffReply,
  Charge,
  ReconcileCommand,
  AcquireCommand,
  AcquireReply,
  AdjustCommand,
  AdjustReply,
  LimiterStore,
  ModelSettings,
  ModelStore,
  ReleaseCommand,
  ReleaseReply,
  StatusReply,
} from '../core/store.js';

type Figures = [tokens: number, input: number, output: number, requests: number];

/** One model's state: the same layout as the Redis scripts keep (see lua/includes/common.lua). */
class ModelState {
  base: number | undefined;
  tail = -Infinity;
  sums: Figures = [0, 0, 0, 0];
  readonly buckets = new Map<number, Figures>();
  /** Op id -> slot ms (acquire), minus release ms (tombstone) or apply ms (adjust key). */
  readonly ring = new Map<string, number>();
  /** 429 back-off and learned limits, as the 'p', 'f', 'fa' (-1: learned), 'fc', 'fg' fields of the scripts. */
  pausedUntil = 0;
  factor?: { value: number; at: number; cutAt: number };
  grewAt?: number;
  /** Token bucket: per figure, the epoch us at which its bucket would be full again. */
  readonly arrival: (number | undefined)[] = [undefined, undefined, undefined, undefined];
  /** Sliding window's pacing bucket, the same per figure (the 'q*' fields of acquire.lua). */
  readonly pace: (number | undefined)[] = [undefined, undefined, undefined, undefined];

  constructor(private readonly clock: () => number) {}

  acquire(c: AcquireCommand): AcquireReply {
    if (c.settings.algorithm === 'token-bucket') return this.acquireFromBucket(c);
    const now = this.clock();
    const W = c.settings.windowMs;
    const n = bucketOf(now, W);
    const seen = this.ring.get(c.opId);
    if (seen !== undefined) {
      if (seen < 0) return { status: 'released', slotMs: 0, waitMs: 0, queuePosition: 0, bucket: -1, nowMs: now };
      return { status: 'dup', slotMs: seen, waitMs: Math.max(0, seen - now), queuePosition: 0, bucket: bucketOf(seen, W), nowMs: now };
    }
    // The scripts drop a window hash whose every bucket has expired, and with it when growth of
    // learned limits was last counted.
    if (this.base !== undefined && this.base < n - BUCKETS && this.tail < n - BUCKETS) this.grewAt = undefined;
    this.advance(n - BUCKETS);
    const cost: Figures = [c.cost.tokens, c.cost.inputTokens, c.cost.outputTokens, c.cost.requests];
    const limit = this.scaledLimits(c.settings, now);
    let pause = this.pausedUntil;
    // Pacing, as acquire.lua: the earliest time every pacing bucket has room acts as a pause.
    const paced: ([number, number] | undefined)[] = [];
    if (c.settings.paceMs > 0) {
      const us = now * 1000;
      let start = us;
      for (let d = 0; d < 4; d++) {
        if (limit[d] === 0) continue;
        const inc = refillUs(cost[d], limit[d], W);
        paced[d] = [this.pace[d] ?? 0, inc];
        start = Math.max(start, Math.max(this.pace[d] ?? 0, us) + inc - Math.max(c.settings.paceMs * 1000, inc));
      }
      pause = Math.max(pause, Math.ceil(start / 1000));
    }
    const fits = (used: Figures) => used.every((u, d) => limit[d] === 0 || u + cost[d] <= limit[d]);

    let j: number;
    let slot: number;
    let position = 0;
    const pressing = !(this.tail <= n && pause <= now && fits(this.sums));
    if (!pressing) {
      j = n;
      slot = now;
    } else {
      // Slide from the queue's tail, dropping the window's oldest bucket per step (see acquire.lua).
      const first = Math.max(n, this.tail, bucketOf(pause, W));
      const used: Figures = [0, 0, 0, 0];
      for (let k = first - BUCKETS; k <= first; k++) addTo(used, this.buckets.get(k), 1);
      let step = 0;
      while (!fits(used) && step <= BUCKETS) {
        step++;
        addTo(used, this.buckets.get(first - BUCKETS + step - 1), -1);
      }
      j = first + step;
      slot = Math.max(now, pause, bucketStart(j, W));
      if (c.maxWaitMs >= 0 && slot - now > c.maxWaitMs) {
        return { status: 'wait', slotMs: slot, waitMs: slot - now, queuePosition: 0, bucket: j, nowMs: now };
      }
      for (const score of this.ring.values()) if (score > now) position++;
    }
    const bucket = this.buckets.get(j) ?? [0, 0, 0, 0];
    addTo(bucket, cost, 1);
    this.buckets.set(j, bucket);
    addTo(this.sums, cost, 1);
    this.tail = Math.max(this.tail, j);
    paced.forEach((p, d) => {
      if (p) this.pace[d] = Math.max(p[0], slot * 1000) + p[1];
    });
    this.ring.set(c.opId, slot);
    if (pause <= now) this.learn(c.settings, now, pressing);
    this.trim(now);
    return { status: 'ok', slotMs: slot, waitMs: slot - now, queuePosition: position, bucket: j, nowMs: now };
  }

  /** As learned_factor in lua/includes/common.lua, applied by the acquire scripts. */
  private learn(settings: ModelSettings, now: number, pressing: boolean): void {
    const learn = settings.learn;
    if (!learn || !pressing) return;
    const since = Math.min(settings.windowMs, Math.max(0, now - (this.grewAt ?? now)));
    const value = Math.min(learn.maxFactor, (this.factor?.value ?? 1) + (learn.increasePerWindow * since) / settings.windowMs);
    this.factor = { value, at: -1, cutAt: this.factor?.cutAt ?? 0 };
    this.grewAt = now;
  }

  adjust(c: AdjustCommand): AdjustReply {
    if (c.settings.algorithm === 'token-bucket') {
      const moved = this.settleBucket(c.opId, 'adjust', c.adjustKey, [c.delta.tokens, c.delta.inputTokens, c.delta.outputTokens, 0], c.settings);
      return { status: moved as AdjustReply['status'], applied: moved === 'ok' ? c.delta : { tokens: 0, inputTokens: 0, outputTokens: 0 } };
    }
    const now = this.clock();
    const none = { tokens: 0, inputTokens: 0, outputTokens: 0 };
    if (this.base === undefined || c.bucket < Math.max(this.base, bucketOf(now, c.settings.windowMs) - BUCKETS)) return { status: 'expired', applied: none };
    if ((this.ring.get(c.opId) ?? 0) < 0) return { status: 'released', applied: none };
    if (this.ring.has(c.adjustKey)) return { status: 'dup', applied: none };
    const bucket = this.buckets.get(c.bucket) ?? [0, 0, 0, 0];
    const delta = [c.delta.tokens, c.delta.inputTokens, c.delta.outputTokens];
    const applied = delta.map((d, x) => Math.max(0, bucket[x] + d) - bucket[x]);
    applied.forEach((a, x) => {
      bucket[x] += a;
      this.sums[x] += a;
    });
    this.buckets.set(c.bucket, bucket);
    this.movePace([applied[0], applied[1], applied[2], 0], c.settings, now);
    this.ring.set(c.adjustKey, now);
    this.trim(now);
    return { status: 'ok', applied: { tokens: applied[0], inputTokens: applied[1], outputTokens: applied[2] } };
  }

  release(c: ReleaseCommand): ReleaseReply {
    if (c.settings.algorithm === 'token-bucket') {
      const refund = [c.charged.tokens, c.charged.inputTokens, c.charged.outputTokens, c.charged.requests].map((x) => -x) as Figures;
      return { status: this.settleBucket(c.opId, c.mode, '', refund, c.settings) as ReleaseReply['status'] };
    }
    const now = this.clock();
    const seen = this.ring.get(c.opId);
    if (seen !== undefined && seen < 0) return { status: 'dup' };
    const tombstone = () => {
      this.ring.delete(c.opId);
      this.ring.set(c.opId, -now);
      this.trim(now);
    };
    let j: number | undefined = c.bucket;
    if (c.mode === 'cancel') j = seen === undefined ? undefined : bucketOf(seen, c.settings.windowMs);
    if (j === undefined) {
      tombstone();
      return { status: 'cancelled' };
    }
    if (this.base === undefined || j < Math.max(this.base, bucketOf(now, c.settings.windowMs) - BUCKETS)) {
      tombstone();
      return { status: 'expired' };
    }
    const bucket = this.buckets.get(j);
    if (bucket) {
      const charged: Figures = [c.charged.tokens, c.charged.inputTokens, c.charged.outputTokens, c.charged.requests];
      const back: Figures = [0, 0, 0, 0];
      charged.forEach((amount, x) => {
        const taken = Math.min(bucket[x], amount);
        bucket[x] -= taken;
        this.sums[x] -= taken;
        back[x] = -taken;
      });
      this.movePace(back, c.settings, now);
      if (bucket.every((v) => v === 0)) this.buckets.delete(j);
    }
    tombstone();
    return { status: 'ok' };
  }

  status(settings: ModelSettings): StatusReply {
    const now = this.clock();
    const used: Figures = [0, 0, 0, 0];
    if (settings.algorithm === 'token-bucket') {
      const limit = this.scaledLimits(settings, now);
      for (let d = 0; d < 4; d++) {
        const tat = this.arrival[d];
        if (limit[d] > 0 && tat !== undefined) used[d] = Math.ceil((Math.max(0, tat - now * 1000) * limit[d]) / (settings.windowMs * 1000));
      }
    } else {
      const n = bucketOf(now, settings.windowMs);
      for (let k = n - BUCKETS; k <= n; k++) addTo(used, this.buckets.get(k), 1);
    }
    let queueDepth = 0;
    for (const score of this.ring.values()) if (score > now) queueDepth++;
    return {
      nowMs: now,
      used: { tokens: used[0], inputTokens: used[1], outputTokens: used[2], requests: used[3] },
      queueDepth,
      pausedUntil: this.pausedUntil > now ? this.pausedUntil : 0,
      limitFactor: this.limitFactor(now, settings.windowMs),
    };
  }

  backOff(settings: ModelSettings, c: BackOffCommand): BackOffReply {
    const now = this.clock();
    this.pausedUntil = Math.max(this.pausedUntil, now + c.pauseMs);
    let value = this.limitFactor(now, settings.windowMs);
    let cutAt = this.factor?.cutAt ?? 0;
    if (c.cut < 1 && now - cutAt >= c.settleMs) {
      value = Math.max(c.floor, value * c.cut);
      cutAt = now;
    }
    // Learned limits do not recover by time (at -1); their growth counts from the pause's end.
    this.factor = { value, at: settings.learn ? -1 : now, cutAt };
    if (settings.learn) this.grewAt = this.pausedUntil;
    return { pausedUntil: this.pausedUntil, limitFactor: value };
  }

  /** As reconcile.lua: charge now what the provider reports beyond our own figures. */
  reconcile(settings: ModelSettings, c: ReconcileCommand): Charge {
    const now = this.clock();
    const limit = this.scaledLimits(settings, now);
    const remaining = [c.remaining.tokens, c.remaining.inputTokens, c.remaining.outputTokens, c.remaining.requests];
    const tolerance = [c.tolerance.tokens, c.tolerance.inputTokens, c.tolerance.outputTokens, c.tolerance.requests];
    const excess: Figures = [0, 0, 0, 0];
    if (settings.algorithm === 'token-bucket') {
      const us = now * 1000;
      for (let d = 0; d < 4; d++) {
        const left = remaining[d];
        if (limit[d] === 0 || left === undefined) continue;
        const base = Math.max(this.arrival[d] ?? 0, us);
        const room = (limit[d] * settings.bucketMs) / settings.windowMs - ((base - us) * limit[d]) / (settings.windowMs * 1000);
        excess[d] = Math.max(0, Math.floor(room - left - tolerance[d]));
        if (excess[d] > 0) this.arrival[d] = base + refillUs(excess[d], limit[d], settings.windowMs);
      }
    } else {
      const used = this.status(settings).used;
      const usedFigures = [used.tokens, used.inputTokens, used.outputTokens, used.requests];
      for (let d = 0; d < 4; d++) {
        const left = remaining[d];
        if (limit[d] === 0 || left === undefined) continue;
        excess[d] = Math.max(0, Math.floor(limit[d] - usedFigures[d] - left - tolerance[d]));
      }
      if (excess.some((x) => x > 0)) {
        const n = bucketOf(now, settings.windowMs);
        if (this.base === undefined) this.base = n - BUCKETS;
        const bucket = this.buckets.get(n) ?? [0, 0, 0, 0];
        addTo(bucket, excess, 1);
        this.buckets.set(n, bucket);
        addTo(this.sums, excess, 1);
      }
    }
    return { tokens: excess[0], inputTokens: excess[1], outputTokens: excess[2], requests: excess[3] };
  }

  private limitFactor(now: number, windowMs: number): number {
    if (!this.factor) return 1;
    if (this.factor.at < 0) return this.factor.value;
    return Math.min(1, this.factor.value + (BACKOFF_RECOVERY * (now - this.factor.at)) / windowMs);
  }

  private scaledLimits(settings: ModelSettings, now: number): Figures {
    const limit = limitsOf(settings);
    const factor = this.limitFactor(now, settings.windowMs);
    return factor === 1 ? limit : (limit.map((l) => scaledLimit(l, factor)) as Figures);
  }

  /** Token bucket (GCRA), as tb-acquire.lua. */
  private acquireFromBucket(c: AcquireCommand): AcquireReply {
    const now = this.clock();
    const us = now * 1000;
    const seen = this.ring.get(c.opId);
    if (seen !== undefined) {
      if (seen < 0) return { status: 'released', slotMs: 0, waitMs: 0, queuePosition: 0, bucket: -1, nowMs: now };
      return { status: 'dup', slotMs: seen, waitMs: Math.max(0, seen - now), queuePosition: 0, bucket: 0, nowMs: now };
    }
    const { windowMs, bucketMs } = c.settings;
    const limit = this.scaledLimits(c.settings, now);
    const cost: Figures = [c.cost.tokens, c.cost.inputTokens, c.cost.outputTokens, c.cost.requests];
    const tau = bucketMs * 1000;
    const after: (number | undefined)[] = [undefined, undefined, undefined, undefined];
    const pause = this.pausedUntil;
    let start = Math.max(us, pause * 1000);
    for (let d = 0; d < 4; d++) {
      if (limit[d] === 0) continue;
      const inc = refillUs(cost[d], limit[d], windowMs);
      after[d] = Math.max(this.arrival[d] ?? 0, us) + inc;
      start = Math.max(start, after[d]! - Math.max(tau, inc));
    }
    const slot = Math.max(now, Math.ceil(start / 1000));
    if (c.maxWaitMs >= 0 && slot - now > c.maxWaitMs) {
      return { status: 'wait', slotMs: slot, waitMs: slot - now, queuePosition: 0, bucket: 0, nowMs: now };
    }
    let position = 0;
    if (slot > now) for (const score of this.ring.values()) if (score > now) position++;
    after.forEach((tat, d) => {
      if (tat !== undefined) this.arrival[d] = tat;
    });
    this.ring.set(c.opId, slot);
    if (pause <= now) this.learn(c.settings, now, slot > now);
    this.trim(now);
    return { status: 'ok', slotMs: slot, waitMs: slot - now, queuePosition: position, bucket: 0, nowMs: now };
  }

  /** Token bucket adjust, release and cancel, as tb-settle.lua. */
  private settleBucket(opId: string, mode: 'adjust' | 'release' | 'cancel', key: string, delta: Figures, settings: ModelSettings): string {
    const now = this.clock();
    const us = now * 1000;
    const seen = this.ring.get(opId);
    const released = seen !== undefined && seen < 0;
    if (mode === 'adjust') {
      if (released) return 'released';
      if (this.ring.has(key)) return 'dup';
    } else if (released) {
      return 'dup';
    }
    if (mode === 'cancel' && seen === undefined) {
      this.ring.set(opId, -now);
      this.trim(now);
      return 'cancelled';
    }
    const limit = this.scaledLimits(settings, now);
    for (let d = 0; d < 4; d++) {
      const tat = this.arrival[d];
      if (limit[d] === 0 || delta[d] === 0 || tat === undefined) continue;
      this.arrival[d] = moveArrival(tat, refillUs(delta[d], limit[d], settings.windowMs), us);
    }
    if (mode === 'adjust') {
      this.ring.set(key, now);
    } else {
      this.ring.delete(opId);
      this.ring.set(opId, -now);
    }
    this.trim(now);
    return 'ok';
  }

  /** As pace_move in lua/includes/bucket.lua: what an adjust or release moved moves the pacing bucket. */
  private movePace(amounts: Figures, settings: ModelSettings, now: number): void {
    if (settings.paceMs <= 0) return;
    const limit = limitsOf(settings);
    for (let d = 0; d < 4; d++) {
      const tat = this.pace[d];
      if (limit[d] === 0 || amounts[d] === 0 || tat === undefined) continue;
      this.pace[d] = moveArrival(tat, refillUs(amounts[d], limit[d], settings.windowMs), now * 1000);
    }
  }

  private advance(oldest: number): void {
    if (this.base !== undefined && this.base >= oldest) return;
    for (const [k, figures] of this.buckets) {
      if (k < oldest) {
        addTo(this.sums, figures, -1);
        this.buckets.delete(k);
      }
    }
    this.base = oldest;
  }

  /** As ring_trim in lua/includes/common.lua: keep the newest RING_CAPACITY operations. */
  private trim(_now: number): void {
    for (const id of this.ring.keys()) {
      if (this.ring.size <= RING_CAPACITY) break;
      this.ring.delete(id);
    }
  }

}

/** Fraction of the limit the factor regains per window, as RECOVERY in lua/includes/common.lua. */
const BACKOFF_RECOVERY = 0.1;

function limitsOf(settings: ModelSettings): Figures {
  const l = settings.limits;
  return [l.tokens, l.inputTokens, l.outputTokens, l.requests];
}

/** Microseconds of refill `amount` tokens take, rounded away from zero, as in lua/includes/bucket.lua. */
function refillUs(amount: number, limit: number, windowMs: number): number {
  const us = (amount * windowMs * 1000) / limit;
  return us >= 0 ? Math.ceil(us) : -Math.floor(-us);
}

/** An arrival time moved by `change` us of refill, as move_arrival in lua/includes/bucket.lua. */
function moveArrival(tat: number, change: number, us: number): number {
  return change > 0 ? Math.max(tat, us) + change : Math.max(tat + change, us);
}

function bucketOf(ms: number, windowMs: number): number {
  return Math.floor((ms * BUCKETS) / windowMs);
}

function bucketStart(j: number, windowMs: number): number {
  return Math.ceil((j * windowMs) / BUCKETS);
}

function addTo(target: Figures, figures: Figures | undefined, sign: 1 | -1): void {
  if (!figures) return;
  for (let d = 0; d < 4; d++) target[d] += sign * figures[d];
}

/**
 * Limiter state in this process only: the same algorithm and answers as Redis, for a single
 * instance, tests and the sample app. Limits are then per process: N replicas admit N times the
 * limit between them.
 *
 * @example
 * const limiter = new RateLimiter(new MemoryStore(), 'gpt-4o', { tpm: 30_000 });
 */
export class MemoryStore implements LimiterStore {
  readonly kind = 'memory' as const;
  private readonly models = new Map<string, ModelState>();

  /** `clock` returns epoch ms (default `Date.now`). */
  constructor(private readonly clock: () => number = Date.now) {}

  forModel(model: string, keyPrefix: string): ModelStore {
    const key = JSON.stringify([keyPrefix, model]);
    let state = this.models.get(key);
    if (!state) {
      state = new ModelState(this.clock);
      this.models.set(key, state);
    }
    const s = state;
    return {
      acquire: async (c) => s.acquire(c),
      adjust: async (c) => s.adjust(c),
      release: async (c) => s.release(c),
      status: async (settings) => s.status(settings),
      backOff: async (settings, c) => s.backOff(settings, c),
      reconcile: async (settings, c) => s.reconcile(settings, c),
      // One process: one instance.
      heartbeat: async () => 1,
    };
  }

  async ping(): Promise<number> {
    return 0;
  }
}
