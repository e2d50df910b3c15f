import type { Algorithm, EffectiveLimits, LearnSettings } from './config.js';

/**
 * Shape of the algorithm both stores run: a window is cut into BUCKETS buckets, every
 * reservation is charged to the bucket of its slot, and the limits hold over any BUCKETS + 1
 * consecutive buckets, so at most 1/(BUCKETS + 1) of capacity is lost to bucketing.
 */
export const BUCKETS = 100;

/**
 * Operations are remembered this long (ms) and up to RING_CAPACITY of them, so that a re-sent
 * acquire, adjust or cancel counts once. Retries of one call span about a second with the
 * default retry config; 256 operations cover that up to ~250 operations per second on one
 * model, and cost ~32 KB of Redis memory at most (each entry ~125 bytes in a sorted set).
 */
export const RING_HORIZON_MS = 30_000;
export const RING_CAPACITY = 256;

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

export interface AcquireCommand {
  readonly opId: string;
  readonly settings: ModelSettings;
  readonly cost: Charge;
  /** Longest acceptable wait in ms, or -1 for no bound. */
  readonly maxWaitMs: number;
}

export interface AcquireReply {
  readonly status: 'ok' | 'dup' | 'released' | 'wait';
  readonly slotMs: number;
  readonly waitMs: number;
  readonly queuePosition: number;
  readonly bucket: number;
  readonly nowMs: number;
}

export interface AdjustCommand {
  readonly opId: string;
  /** Names this change, so the same change sent twice applies once. */
  readonly adjustKey: string;
  readonly bucket: number;
  readonly settings: ModelSettings;
  /** Signed changes; `requests` is ignored. */
  readonly delta: Omit<Charge, 'requests'>;
}

export interface AdjustReply {
  readonly status: 'ok' | 'dup' | 'released' | 'expired';
  /** What really moved: a refund never takes a bucket below zero. */
  readonly applied: Omit<Charge, 'requests'>;
}

export interface ReleaseCommand {
  readonly opId: string;
  /** `release`: the acquire is known to have run. `cancel`: its reply never came. */
  readonly mode: 'release' | 'cancel';
  /** Bucket of the reservation, -1 when unknown. */
  readonly bucket: number;
  readonly settings: ModelSettings;
  readonly charged: Charge;
}

export interface ReleaseReply {
  readonly status: 'ok' | 'dup' | 'expired' | 'cancelled';
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
  adjust(command: AdjustCommand): Promise<AdjustReply>;
  release(command: ReleaseCommand): Promise<ReleaseReply>;
  status(settings: ModelSettings): Promise<StatusReply>;
  backOff(settings: ModelSettings, command: BackOffCommand): Promise<BackOffReply>;
  /** Charges now what the provider counts beyond this store's figures; resolves with what was charged. */
  reconcile(settings: ModelSettings, command: ReconcileCommand): Promise<Charge>;
  /** Announces a limiter instance for `ttlMs`; resolves with how many instances are live. */
  heartbeat(instanceId: string, ttlMs: number): Promise<number>;
}

/**
 * Where limiter state lives. `RedisStore` shares it between every process that uses the same
 * Redis; `MemoryStore` keeps it in one process.
 */
export interface LimiterStore {
  readonly kind: 'redis' | 'memory';
  /** The state of `model` under `keyPrefix`. Distinct (prefix, model) pairs never share state. */
  forModel(model: string, keyPrefix: string): ModelStore;
  /** Round-trip time of a trivial call, ms; rejects when the store cannot be reached. */
  ping(): Promise<number>;
}
