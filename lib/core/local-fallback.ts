import { addCharges, NO_CHARGE } from './charges.js';
import { newOpId } from './record-id.js';
import { type Charge, type ModelSettings, type ModelStore, SETTLED_HORIZON_MS } from './store.js';

/** A reservation this process made, for the replay into a fresh fallback and the hand-back. */
interface Recent {
  readonly at: number;
  readonly cost: Charge;
  readonly local: boolean;
}

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
 * The in-process limiter of `failureMode: 'local'`: this process's share of every limit, and
 * what it needs to start as full as the shared window was (this process's own reservations of
 * the last window) and to hand back what it admitted once Redis answers again.
 *
 * The share is limit / instances, where instances is `expectedInstances` when set, otherwise the
 * largest live count any heartbeat has shown this process (it never shrinks during an outage, so
 * no process takes a larger share than it had). A process that never reached Redis and was not
 * told `expectedInstances` does not know how many share the limits: it has no share at all.
 */
export class LocalFallback {
  private local?: { store: ModelStore; settings: ModelSettings; instances: number };
  /** This process's reservations of the last window, by admission. */
  private readonly recent: Recent[] = [];
  /** While admissions are replayed into a fresh fallback: the time its clock reads. */
  private replayAt?: number;
  /** Op ids placed in the fallback, by when last seen: their settles and claims stay local. */
  private readonly ops = new Map<string, number>();
  private largestCount = 0;

  constructor(private readonly options: LocalFallbackOptions) {}

  /** A live instance count read from Redis. */
  countSeen(count: number): void {
    this.largestCount = Math.max(this.largestCount, count);
  }

  /** Instances the share is taken for; undefined when this process cannot know. */
  get instances(): number | undefined {
    if (this.options.expectedInstances !== undefined) return Math.max(1, this.options.expectedInstances);
    return this.largestCount > 0 ? this.largestCount : undefined;
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

  remember(at: number, cost: Charge, local: boolean): void {
    const now = Date.now();
    this.recent.push({ at, cost, local });
    while (this.recent.length > 0 && this.recent[0]!.at <= now - this.options.windowMs) this.recent.shift();
  }

  /**
   * A fresh fallback that holds this process's own admissions of the last window where they
   * were made, so the share starts as full as this process had made it on Redis, not empty: an
   * empty one would let every process send its whole share into a provider window that is
   * already full.
   */
  start(): void {
    this.local = undefined;
    this.ops.clear();
    const fallback = this.current();
    if (!fallback) return;
    const { store, settings } = fallback;
    const since = Date.now() - this.options.windowMs;
    const entries = this.recent.filter((e) => e.at > since).sort((a, b) => a.at - b.at);
    for (const entry of entries) {
      this.replayAt = entry.at;
      // The memory store reads its clock synchronously, before this call returns. Admitted now
      // or never: a replayed entry must not wait in the fallback's queue.
      void store.acquire({ opId: newOpId(), owner: this.options.instanceId, settings, cost: entry.cost, maxWaitMs: 0 });
    }
    this.replayAt = undefined;
  }

  /** What the fallback admitted in the last window, to be charged to Redis (undefined: nothing). */
  admittedMeanwhile(): Charge | undefined {
    const since = Date.now() - this.options.windowMs;
    const meanwhile = this.recent.filter((e) => e.local && e.at > since).reduce((sum, e) => addCharges(sum, e.cost), NO_CHARGE);
    return meanwhile.requests > 0 ? meanwhile : undefined;
  }
}
