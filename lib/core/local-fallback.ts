import { RedisUnavailableError } from './errors.js';
import type { LimiterLogger } from './events.js';
import { newOpId } from './record-id.js';
import { type Charge, type ModelSettings, type ModelStore, SETTLED_HORIZON_MS, type WindowReading } from './store.js';

/** An admission this fallback made, for a replay into a fresh fallback and the hand-back. */
interface Admission {
  readonly at: number;
  readonly cost: Charge;
}

/**
 * How much older than the call that found Redis gone the last reading of the shared state may
 * be and still count as the state at the outage. An older one says nothing of what the other
 * processes admitted since: the window is then taken as full when that call was sent.
 */
export const FRESH_READ_MS = 200;

/** An instance that has not announced itself for this long no longer counts. */
const HEARTBEAT_TTL_MS = 15_000;
/**
 * How often an instance announces itself, and so how old its count of live instances can be when
 * Redis fails: a process that makes no calls learns of the others only from its own beats.
 */
const HEARTBEAT_INTERVAL_MS = 1000;

export interface LocalFallbackOptions {
  /** The settings the limiter sends; the fallback gets this process's share of them. */
  readonly settings: ModelSettings;
  /** The configured window (without delivery margin): how far back the replay and hand-back reach. */
  readonly windowMs: number;
  readonly expectedInstances?: number;
  readonly instanceId: string;
  /** Makes the in-process store, reading time from `clock`. */
  readonly makeStore: (clock: () => number) => ModelStore;
}

/**
 * The in-process limiter of `failureMode: 'local'`: this process's share of every limit, started
 * as full as the shared state was when this process last read it, and what it admitted, to hand
 * back once Redis answers again.
 *
 * The share is limit / instances, where instances is the largest of `expectedInstances`, the
 * largest live count any process published lately (every queue reply carries it) and this
 * process's own last heartbeat. A process that knows none of them (it never reached Redis, or no
 * heartbeat has been heard yet, and expectedInstances is not set) has no share at all.
 *
 * At the start of an outage the fallback holds, charged when it was read, this process's share
 * of what the shared window held at its last reading (`read`), so its room is its share of what
 * was left; its own admissions since then come on top. Those charges leave one window after the
 * reading, which is no earlier than they would have left the shared window. A reading older than
 * FRESH_READ_MS before the failing call counts as a full window at that call.
 */
export class LocalFallback {
  private local?: { store: ModelStore; settings: ModelSettings; instances: number };
  /** What this fallback admitted in the last window, by admission. */
  private readonly admissions: Admission[] = [];
  /** While the fallback is seeded: the time its clock reads. */
  private replayAt?: number;
  /** Op ids placed in the fallback, by when last seen: their settles and claims stay local. */
  private readonly ops = new Map<string, number>();
  private lastBeat = 0;
  private lastRead?: { readonly at: number; readonly reading: WindowReading };
  private heartbeatTimer?: NodeJS.Timeout;
  /** What is to be handed back to Redis once it answers again. */
  private handBackList?: readonly Admission[];

  constructor(private readonly options: LocalFallbackOptions) {}

  /** What a reply of the shared store said of its state, read now. */
  read(reading: WindowReading | undefined): void {
    if (reading) this.lastRead = { at: Date.now(), reading };
  }

  /** Live instances at this process's last heartbeat (0 before the first). */
  get beatCount(): number {
    return this.lastBeat;
  }

  /** Instances the share is taken for; undefined when this process cannot know. */
  get instances(): number | undefined {
    const count = Math.max(this.options.expectedInstances ?? 0, this.lastRead?.reading.instances ?? 0, this.lastBeat);
    return count > 0 ? count : undefined;
  }

  /**
   * Announces this instance every second while `up()`, to learn how many share the limits
   * (and publish it to the others); idempotent.
   */
  startHeartbeat(beat: (ttlMs: number) => Promise<number>, up: () => boolean, logger: LimiterLogger, model: string): void {
    if (this.heartbeatTimer) return;
    const once = () => {
      if (!up()) return;
      beat(HEARTBEAT_TTL_MS).then(
        (count) => (this.lastBeat = count),
        (error: unknown) => logger.warn(`${model}: heartbeat failed: ${String(error)}`),
      );
    };
    once();
    this.heartbeatTimer = setInterval(once, HEARTBEAT_INTERVAL_MS);
    this.heartbeatTimer.unref();
  }

  /** The fallback store and its settings; undefined while the share is unknown (see the class). */
  current(): { store: ModelStore; settings: ModelSettings } | undefined {
    const instances = this.instances;
    if (instances === undefined) return undefined;
    if (!this.local || this.local.instances !== instances) {
      const share = (limit: number) => (limit > 0 ? Math.max(1, Math.floor(limit / instances)) : 0);
      const l = this.options.settings.limits;
      const limits = {
        tokens: share(l.tokens),
        inputTokens: share(l.inputTokens),
        outputTokens: share(l.outputTokens),
        requests: share(l.requests),
      };
      // Learned limits are not learned further in the fallback: no 429 reaches it.
      const { windowMs, algorithm, bucketMs, paceMs } = this.options.settings;
      const settings: ModelSettings = { windowMs, algorithm, bucketMs, paceMs, limits };
      this.local = { store: this.local?.store ?? this.options.makeStore(() => this.replayAt ?? Date.now()), settings, instances };
    }
    return this.local;
  }

  /**
   * The fallback, or `outage` thrown: a process that cannot know how many share the limits (it
   * never reached Redis, and expectedInstances is not set) admits nothing.
   */
  require(outage: RedisUnavailableError): { store: ModelStore; settings: ModelSettings } {
    const fallback = this.current();
    if (fallback) return fallback;
    throw new RedisUnavailableError(
      `${outage.message}; failureMode 'local' admits nothing until Redis has been reached once: how many instances share the limits is unknown (set expectedInstances to limit locally from the start)`,
      { cause: outage.cause },
    );
  }

  has(opId: string): boolean {
    return this.ops.has(opId);
  }

  touch(opId: string): void {
    const now = Date.now();
    this.ops.delete(opId);
    this.ops.set(opId, now);
    // The fallback forgets an admitted record a window and the horizon after its admission;
    // waiting ones are touched by every claim.
    const before = now - this.options.settings.windowMs - SETTLED_HORIZON_MS;
    for (const [id, at] of this.ops) {
      if (at > before) break;
      this.ops.delete(id);
    }
  }

  /** An admission of the fallback, now. */
  admitted(cost: Charge): void {
    const now = Date.now();
    this.admissions.push({ at: now, cost });
    while (this.admissions.length > 0 && this.admissions[0].at <= now - this.options.windowMs) this.admissions.shift();
  }

  /**
   * A fresh fallback for an outage found by a call sent at `sentAt` (local ms), seeded as the
   * class describes. An empty one would let every process send its whole share into a window
   * that is already full.
   */
  start(sentAt: number): void {
    this.local = undefined;
    this.ops.clear();
    const fallback = this.current();
    if (!fallback) return;
    const { store, settings } = fallback;
    const instances = this.local!.instances;
    const since = Date.now() - this.options.windowMs;
    const read = this.lastRead;
    const fresh = read !== undefined && read.at >= sentAt - FRESH_READ_MS;
    // When the seed is charged: the reading, or for a stale one the failing call.
    const at = read === undefined ? -Infinity : fresh ? read.at : sentAt;
    if (read) {
      const l = settings.limits;
      const u = read.reading.used;
      const seed = (share: number, used: number) => (fresh ? Math.ceil(used / instances) : share);
      const charge = [
        seed(l.tokens, u.tokens),
        seed(l.inputTokens, u.inputTokens),
        seed(l.outputTokens, u.outputTokens),
        seed(l.requests, u.requests),
      ];
      if (at > since && charge.some((c) => c > 0)) {
        // The room the fallback has, as reconcile takes it: what is left of the share. The
        // tolerance of -0.5 makes the charge the whole seed despite rounding (token bucket).
        const room = (limit: number, c: number) =>
          (settings.algorithm === 'token-bucket' ? (limit * settings.bucketMs) / settings.windowMs : limit) - c;
        const limits = [l.tokens, l.inputTokens, l.outputTokens, l.requests];
        const [tokens, inputTokens, outputTokens, requests] = limits.map((limit, d) => room(limit, charge[d]));
        this.replayAt = at;
        // The memory store reads its clock synchronously, before this call returns.
        void store.reconcile(settings, {
          remaining: { tokens, inputTokens, outputTokens, requests },
          tolerance: { tokens: -0.5, inputTokens: -0.5, outputTokens: -0.5, requests: -0.5 },
        });
      }
    }
    // Its own admissions since then: those of an earlier outage not read back yet (a full window
    // from a stale reading covers those before it).
    const after = Math.max(since, at);
    for (const entry of this.admissions.filter((e) => e.at > after)) {
      this.replayAt = entry.at;
      // Admitted now or never: a replayed entry must not wait in the fallback's queue.
      void store.acquire({ opId: newOpId(), owner: this.options.instanceId, settings, cost: entry.cost, maxWaitMs: 0 });
    }
    this.replayAt = undefined;
  }

  /** Redis answers again: what the fallback admitted in the last window is to be handed back. */
  recovered(): void {
    const since = Date.now() - this.options.windowMs;
    const meanwhile = this.admissions.filter((e) => e.at > since);
    this.handBackList = meanwhile.length > 0 ? meanwhile : undefined;
  }

  get handBackDue(): boolean {
    return this.handBackList !== undefined;
  }

  /**
   * Redis does not know what the fallback admitted (and may have come back empty): the first
   * acquire after an outage charges it, each admission where it was made (handBack), so that it
   * leaves the shared window when it would have.
   */
  async handBack(inner: ModelStore, settings: ModelSettings): Promise<void> {
    const admissions = this.handBackList;
    this.handBackList = undefined;
    // Only a shared store is ever unavailable, and it can take them.
    if (!admissions || !inner.handBack) return;
    const now = Date.now();
    try {
      await inner.handBack(
        settings,
        admissions.map((a) => ({ ageMs: Math.max(0, now - a.at), cost: a.cost })),
      );
    } catch (error) {
      this.handBackList ??= admissions;
      throw error;
    }
  }
}
