import type { Algorithm, EffectiveLimits, LearnSettings } from './config.js';

/**
 * Shape of the algorithm both stores run: a window is cut into BUCKETS buckets, every
 * reservation is charged to the bucket of its slot, and the limits hold over any BUCKETS + 1
 * consecutive buckets, so at most 1/(BUCKETS + 1) of capacity is lost to bucketing.
 */
export const BUCKETS = 100;

/**
 * A settled, released or dropped reservation's id is remembered this long (ms) after it left,
 * so that a command re-sent after a lost reply (the executor retries for about 3 s with the
 * default retry config) finds it and changes nothing. Trimmed by time, never by count.
 */
export const SETTLED_HORIZON_MS = 10_000;
/**
 * A process that has not claimed (or acquired) for this long is taken for dead: its waiting
 * reservations are dropped when they reach the head of the queue. Processes with waiters claim
 * at least every CLAIM_INTERVAL_MS, so a crashed process stops holding the queue within
 * OWNER_LEASE_MS + CLAIM_INTERVAL_MS. A call that carries its caller's deadline (`deadlineMs`,
 * or the Redis store's own) renews the lease to that deadline at most: once the caller has
 * given up, none of its waiters can be admitted.
 */
export const OWNER_LEASE_MS = 5_000;
export const CLAIM_INTERVAL_MS = 1_000;
/** The shortest a call's renewal holds its owner's lease: two claims may be late before it lapses. */
export const MIN_LEASE_HOLD_MS = 2 * CLAIM_INTERVAL_MS;
/**
 * At the head's next check only the head's owner claims (its claim admits whoever fits and
 * announces it); the other processes with waiters claim this much later, in case that owner
 * is gone, so that one admission by time costs one script call, not one per process.
 */
export const CLAIM_GRACE_MS = 250;
/** Most waiting reservations one admit step admits or drops; the rest go in the next call. */
export const MAX_ADMIT = 256;
/**
 * Largest count of any one figure in one request. A limited figure's sums stay within its limit
 * (at most 10^15 with the burst multiplier); a figure that is off (counted for status only)
 * stays below 2^53, exact in a double and in Lua, while a window holds fewer than 2^21
 * reservations (two million).
 */
export const MAX_COUNT = 2 ** 32 - 1;

/**
 * One limit as it is in force under a limit factor (after 429 cuts, or as learned): at least 1
 * while the limit is on, 0 when it is off. As scale_limits in lua/includes/common.lua.
 */
export function scaledLimit(limit: number, factor: number): number {
  return factor === 1 || limit === 0 ? limit : Math.max(1, Math.floor(limit * factor));
}

/** One request's charge, or a change of one. */
export interface Charge {
  readonly tokens: number;
  readonly inputTokens: number;
  readonly outputTokens: number;
  readonly requests: number;
}

/** What a store needs to know of a limiter's config on every call. */
export interface ModelSettings {
  /** How long a charge counts (sliding window) or a limit takes to refill (token bucket), ms. */
  readonly windowMs: number;
  readonly algorithm: Algorithm;
  /** Token bucket size, ms of refill. */
  readonly bucketMs: number;
  /**
   * Sliding window only: size of a pacing bucket, ms of refill at limit / windowMs, that every
   * admission must also fit (0 = none). Kept in the window hash as the 'q*' fields.
   */
  readonly paceMs: number;
  /** Starting figures when the limits are learned. */
  readonly limits: EffectiveLimits;
  /** Set when the limits are learned (unknown capacity): the factor grows under pressing demand. */
  readonly learn?: LearnSettings;
}

/**
 * The live queue, as both stores keep it (lua/queue.lua and lua/tb-queue.lua for Redis,
 * lib/memory/memory-store.ts in process):
 *
 * - Every reservation not yet settled is a record: owner, cost, state (waiting or admitted) and,
 *   once admitted, where its charge sits (sliding-window bucket, and for the token bucket and
 *   pacing, how much of its refill is still ahead). Waiting ones also stand in a FIFO queue in
 *   order of arrival at the store.
 * - A reservation enters the window (or the bucket) when it is admitted, charged at that moment;
 *   a waiting one counts nowhere but in `queueDepth`.
 * - The admit step runs in every acquire, claim and settle call, before and after its commands:
 *   while the head fits every limit now (window sums, pacing, token bucket, back-off pause), it
 *   is admitted; a head whose deadline (maxWaitMs) passed, or whose owner's lease ran out, is
 *   dropped. Every reply says which waiters were admitted, and when the head could next fit from
 *   time alone (`nextCheckMs`); a Redis store also publishes admissions to the other processes.
 * - Settling (adjust, release, keep) ends a record: its id is then remembered as settled or
 *   released for SETTLED_HORIZON_MS, so a repeat changes nothing and says why.
 */
export interface AcquireCommand {
  readonly opId: string;
  /** The process (limiter instance) that waits for it; its lease is renewed by this call. */
  readonly owner: string;
  readonly settings: ModelSettings;
  readonly cost: Charge;
  /** Longest acceptable wait in ms, or -1 for no bound. 0: admit now or not at all. */
  readonly maxWaitMs: number;
  /**
   * Store epoch ms after which the caller no longer waits for this call's reply (-1 or absent:
   * none). A new acquire that reaches the store later reserves nothing, neither admitted nor
   * queued, and answers 'timeout': a command that sat in a stalled connection or server must
   * not charge for a caller that has already failed over. A Redis store sets it from its own
   * deadline when the caller does not.
   */
  readonly deadlineMs?: number;
}

/** Where a reservation stands, as an acquire or a claim finds it. */
export type RecordState =
  /** Admitted at `slotMs`: its charge is in the window. */
  | 'admitted'
  /** Waiting in the queue, `position` reservations ahead of it. */
  | 'waiting'
  /** Adjusted, or released after reaching a provider that keeps the charge. */
  | 'settled'
  | 'released'
  /** Not admitted within its maxWaitMs: nothing was charged. */
  | 'timeout'
  /** Dropped from the queue because its owner stopped claiming (taken for dead). */
  | 'lost'
  /** No record and nothing remembered. */
  | 'unknown';

export interface AdmittedWaiter {
  readonly opId: string;
  readonly slotMs: number;
}

/** Said by every acquire, claim and settle reply: what the admit steps of that call did. */
export interface QueueNews {
  /** Store time of the reply, epoch ms. */
  readonly nowMs: number;
  /** Waiting reservations (of any owner) admitted by this call. */
  readonly admitted: readonly AdmittedWaiter[];
  /**
   * When the queue's head could be admitted (or dropped) from time passing alone, store epoch
   * ms; 0 when nothing waits.
   */
  readonly nextCheckMs: number;
  /** The owner of the queue's head after this call ('' when nothing waits). */
  readonly headOwner: string;
  /**
   * Set only by a wrapper that answered without the shared store while it was unavailable
   * (lib/core/failover-store.ts): `'open'` let through unlimited, nothing recorded; `'local'`
   * answered by this process's in-memory fallback. Stores themselves never set it.
   */
  readonly degraded?: 'open' | 'local';
  /** What the store held once the call was done (the same object for every reply of one call). */
  readonly window?: WindowReading;
}

/** What a queue call read of the model's state, for failureMode 'local' (lib/core/local-fallback.ts). */
export interface WindowReading {
  /** What counts against the limits: the window's sums, or the token bucket's tokens still to refill. */
  readonly used: Charge;
  /** The largest live instance count a heartbeat published lately (0: none). */
  readonly instances: number;
}

export interface AcquireReply extends QueueNews {
  /** A repeated op id answers with the state of its record instead of acquiring again. */
  readonly state: RecordState;
  /** Admission time, store epoch ms (state 'admitted'). */
  readonly slotMs: number;
  /** Reservations ahead in the queue (state 'waiting'; 0 otherwise). */
  readonly position: number;
  /**
   * State 'timeout': when a request sent now could be admitted, ms from now, estimated from
   * what the window and the queue hold.
   */
  readonly estimateMs: number;
}

/** A process asks after its own waiters; renews its lease. */
export interface ClaimCommand {
  readonly owner: string;
  readonly settings: ModelSettings;
  readonly opIds: readonly string[];
}

export interface ClaimReply extends QueueNews {
  /** One per op id asked about, in order; `position` is not computed for claims (0). */
  readonly records: readonly { readonly state: RecordState; readonly slotMs: number; readonly position: number }[];
}

/**
 * Ends a record. `adjust`: its charge becomes `to` (a provider that keeps what it reserved,
 * `refunds: false`, is only charged more, never refunded); `release`: the whole charge is given
 * back (a waiting record leaves the queue); `keep`: settled as charged.
 */
export interface SettleCommand {
  readonly opId: string;
  readonly settings: ModelSettings;
  readonly mode: 'adjust' | 'release' | 'keep';
  readonly to?: Omit<Charge, 'requests'>;
  readonly refunds: boolean;
}

export interface SettleReply extends QueueNews {
  /**
   * `'ok'` done; `'expired'` admitted, but its charge had left the window (settled, nothing
   * moved); `'waiting'` an adjust or keep of a record not admitted yet (nothing changed);
   * `'settled'` / `'released'` / `'timeout'` / `'lost'` it had already ended that way;
   * `'unknown'` no such reservation of this model (another model's, crafted, or older than
   * the horizon).
   */
  readonly status: 'ok' | 'expired' | 'waiting' | 'settled' | 'released' | 'timeout' | 'lost' | 'unknown';
  /** What moved: positive charged, negative given back. */
  readonly applied: Charge;
  /** The record's charge before this call (zero when there was no record). */
  readonly charged: Charge;
}

export interface StatusReply {
  readonly nowMs: number;
  readonly used: Charge;
  readonly queueDepth: number;
  /** Admissions are paused until this epoch ms (0 = not paused). */
  readonly pausedUntil: number;
  /**
   * Fraction of the configured limits in force after 429 back-off (1 = all); with learned limits,
   * the learned limits over the starting figures (above 1 once they grew).
   */
  readonly limitFactor: number;
}

/** After a 429: pause every process, and cut the limits (AIMD). */
export interface BackOffCommand {
  readonly pauseMs: number;
  /** Multiply the limit factor by this (1 = no cut). */
  readonly cut: number;
  /** Smallest factor. */
  readonly floor: number;
  /** After a cut, further 429s within this many ms do not cut again. */
  readonly settleMs: number;
}

export interface BackOffReply {
  readonly pausedUntil: number;
  readonly limitFactor: number;
}

/** The provider's view of the room left, to charge what others spent. */
export interface ReconcileCommand {
  /** Per figure; undefined = not reported. */
  readonly remaining: Partial<Charge>;
  /** Per figure, differences this small are noise. */
  readonly tolerance: Charge;
}

/** Backoff's and reconcile's fixed settings: the AIMD shape. */
export const BACKOFF_CUT = 0.75;
export const BACKOFF_FLOOR = 0.05;

/** The state of one model in a store. */
export interface ModelStore {
  acquire(command: AcquireCommand): Promise<AcquireReply>;
  claim(command: ClaimCommand): Promise<ClaimReply>;
  settle(command: SettleCommand): Promise<SettleReply>;
  status(settings: ModelSettings): Promise<StatusReply>;
  backOff(settings: ModelSettings, command: BackOffCommand): Promise<BackOffReply>;
  /** Charges now what the provider counts beyond this store's figures; resolves with what was charged. */
  reconcile(settings: ModelSettings, command: ReconcileCommand): Promise<Charge>;
  /**
   * Charges what this process admitted on its own during an outage (failureMode 'local'), each
   * admission where it was made, `ageMs` before now; no figure beyond its limit. Resolves with
   * what was charged. Only a shared store has it (a memory store is never unavailable).
   */
  handBack?(settings: ModelSettings, admissions: readonly { readonly ageMs: number; readonly cost: Charge }[]): Promise<Charge>;
  /**
   * Announces a limiter instance for `ttlMs`; resolves with how many instances are live. The
   * largest count is kept for `ttlMs` after it was last seen, and every queue reply carries it
   * (`window.instances`).
   */
  heartbeat(instanceId: string, ttlMs: number, settings: ModelSettings): Promise<number>;
  /**
   * Calls `listener` with waiters admitted by other processes' calls (at most once each, maybe
   * never: a lost notice is made up for by claiming at `nextCheckMs`). `heard`, when given, is
   * called each time notices start to reach the listener (subscribed, or subscribed again after a
   * reconnect): what was admitted before then was not heard, so the caller claims. Returns the
   * unsubscribe.
   */
  onAdmitted(listener: (admitted: readonly AdmittedWaiter[]) => void, heard?: () => void): () => void;
}

/**
 * Where limiter state lives. `RedisStore` shares it between every process that uses the same
 * Redis; `MemoryStore` keeps it in one process.
 */
export interface LimiterStore {
  readonly kind: 'redis' | 'memory';
  /** The state of `model` under `keyPrefix`. Distinct (prefix, model) pairs never share state. */
  forModel(model: string, keyPrefix: string): ModelStore;
  /**
   * How long after it is sent an acquire or claim may keep its owner's lease, ms: its waiters
   * cannot be admitted once that has passed (the Redis store's deadline per operation, at
   * least two claim intervals); absent for a store whose calls never wait on anything.
   */
  readonly leaseHoldMs?: number;
  /** Round-trip time of a trivial call, ms; rejects when the store cannot be reached. */
  ping(): Promise<number>;
}
