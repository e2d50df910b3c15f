import { NO_CHARGE } from './charges.js';
import type { FailureMode } from './config.js';
import { RedisUnavailableError } from './errors.js';
import type { LimiterLogger, RateLimiterEvent } from './events.js';
import { LocalFallback } from './local-fallback.js';
import { PendingCancels } from './pending-cancels.js';
import {
  type AcquireCommand,
  type AcquireReply,
  type AdmittedWaiter,
  type BackOffCommand,
  type BackOffReply,
  type Charge,
  type ClaimCommand,
  type ClaimReply,
  type ModelSettings,
  type ModelStore,
  type ReconcileCommand,
  type SettleCommand,
  type SettleReply,
  type StatusReply,
  type WindowReading,
} from './store.js';

/** While Redis is down, how often it is asked whether it answers again. */
const PROBE_INTERVAL_MS = 500;

type Operation = 'acquire' | 'adjust' | 'release' | 'status' | 'observe';

export interface FailoverOptions {
  /** The shared store. */
  readonly inner: ModelStore;
  readonly model: string;
  /** The settings the limiter sends; the local fallback gets this process's share of them. */
  readonly settings: ModelSettings;
  /** The configured window (without delivery margin): how far back the replay and handback reach. */
  readonly windowMs: number;
  readonly failureMode: FailureMode;
  readonly expectedInstances?: number;
  /** This limiter instance, as announced by heartbeats. */
  readonly instanceId: string;
  readonly ping: () => Promise<number>;
  /** See LimiterStore.leaseHoldMs: a waiter is given up no sooner than that after the last call sent. */
  readonly leaseHoldMs?: number;
  /** Makes the in-process store of failureMode 'local', reading time from `clock`. */
  readonly fallbackStore: (clock: () => number) => ModelStore;
  readonly logger: LimiterLogger;
  readonly emit: (event: RateLimiterEvent) => void;
}

/**
 * The shared store, insured against outages: while it throws RedisUnavailableError, calls follow
 * the failure mode instead. `'closed'` rethrows; `'open'` answers acquires as admitted and
 * settles as done, marked `degraded: 'open'`, recording nothing; `'local'` answers from an
 * in-process store holding this process's share of each limit (see LocalFallback), marked
 * `degraded: 'local'`. Once down, the shared store is not asked again until a background ping
 * answers.
 */
export class FailoverStore implements ModelStore {
  private outageSince: number | undefined;
  private outageCause: RedisUnavailableError | undefined;
  private probe: NodeJS.Timeout | undefined;
  private readonly local: LocalFallback;
  /** Local ms by which every acquire or claim sent to the shared store so far has settled. */
  private leaseHeldUntil = 0;
  private readonly cancels: PendingCancels;

  constructor(private readonly options: FailoverOptions) {
    const { settings, windowMs, expectedInstances, instanceId, fallbackStore } = options;
    this.local = new LocalFallback({ settings, windowMs, expectedInstances, instanceId, makeStore: fallbackStore });
    this.cancels = new PendingCancels(options.inner, settings, options.model, options.logger, options.emit);
  }

  /** True while the last call to the shared store failed and no later one has succeeded. */
  get degraded(): boolean {
    return this.outageSince !== undefined;
  }

  /** Live limiter instances at the last heartbeat (1 until the first). */
  get liveInstanceCount(): number {
    return Math.max(1, this.local.beatCount);
  }

  /** The error a 'closed' limiter throws while the shared store is known to be down. */
  unavailable(): RedisUnavailableError {
    const since = new Date(this.outageSince ?? Date.now()).toISOString();
    return new RedisUnavailableError(
      `${this.options.model}: Redis has been unavailable since ${since}; ${this.outageCause?.message ?? ''}`,
      {
        cause: this.outageCause,
      },
    );
  }

  async acquire(command: AcquireCommand): Promise<AcquireReply> {
    if (this.outageSince === undefined) {
      const sentAt = this.sending();
      try {
        // Only the first acquire after an outage has something to hand back: no await otherwise.
        if (this.local.handBackDue) await this.local.handBack(this.options.inner, command.settings);
        const reply = await this.options.inner.acquire(command);
        this.answered(reply.window);
        return reply;
      } catch (error) {
        if (!(error instanceof RedisUnavailableError)) throw error;
        this.markDown('acquire', error, sentAt);
        // It may have run with its reply lost, or run later: take it back once Redis answers.
        this.cancelLater(command.opId);
      }
    }
    const now = Date.now();
    if (this.options.failureMode === 'closed') throw this.unavailable();
    if (this.options.failureMode === 'open') {
      return {
        state: 'admitted',
        slotMs: now,
        position: 0,
        estimateMs: 0,
        nowMs: now,
        admitted: [],
        nextCheckMs: 0,
        headOwner: '',
        degraded: 'open',
      };
    }
    const fallback = this.fallback();
    const reply = await fallback.store.acquire({ ...command, settings: fallback.settings });
    this.local.touch(command.opId);
    if (reply.state === 'admitted') this.local.admitted(command.cost);
    return { ...reply, degraded: 'local' };
  }

  async claim(command: ClaimCommand): Promise<ClaimReply> {
    const localIds = command.opIds.filter((id) => this.local.has(id));
    const sharedIds = command.opIds.filter((id) => !this.local.has(id));
    localIds.forEach((id) => this.local.touch(id));
    let local: ClaimReply | undefined;
    if (localIds.length > 0) {
      const fallback = this.fallback();
      local = await fallback.store.claim({ ...command, settings: fallback.settings, opIds: localIds });
    }
    // A claim of no ids still runs the shared store's admit step (and renews the lease).
    const shared = sharedIds.length > 0 || localIds.length === 0 ? await this.claimShared({ ...command, opIds: sharedIds }) : undefined;
    if (!shared) return { ...local!, degraded: 'local' };
    if (!local) return shared;
    const byId = new Map<string, ClaimReply['records'][number]>();
    localIds.forEach((id, i) => byId.set(id, local.records[i]));
    sharedIds.forEach((id, i) => byId.set(id, shared.records[i]));
    return {
      ...shared,
      admitted: [...shared.admitted, ...local.admitted],
      records: command.opIds.map((id) => byId.get(id)!),
    };
  }

  private async claimShared(command: ClaimCommand): Promise<ClaimReply> {
    if (this.outageSince === undefined) {
      const sentAt = this.sending();
      try {
        const reply = await this.options.inner.claim(command);
        this.answered(reply.window);
        return reply;
      } catch (error) {
        if (!(error instanceof RedisUnavailableError)) throw error;
        this.markDown('acquire', error, sentAt);
      }
    }
    // Whatever follows, these callers stop waiting in Redis: their records must not be admitted
    // there once it answers again. Every call that renewed this owner's lease renewed it to its
    // own deadline at most (lua/queue.lua): once those have passed, no process can admit them.
    const wait = this.leaseHeldUntil - Date.now();
    if (wait > 0) await new Promise((resolve) => setTimeout(resolve, wait));
    command.opIds.forEach((opId) => this.cancelLater(opId));
    if (this.options.failureMode === 'closed') throw this.unavailable();
    const now = Date.now();
    // 'open': waiting in Redis ends as let through; 'local': a waiter Redis holds cannot be
    // admitted while it is away, so it is reported lost and queued again, in the fallback.
    const state = this.options.failureMode === 'open' ? 'admitted' : 'lost';
    const records = command.opIds.map(() => ({ state, slotMs: now, position: 0 }) as const);
    return { nowMs: now, admitted: [], nextCheckMs: 0, headOwner: '', records, degraded: this.options.failureMode };
  }

  async settle(command: SettleCommand): Promise<SettleReply> {
    if (this.local.has(command.opId)) {
      const fallback = this.fallback();
      const reply = await fallback.store.settle({ ...command, settings: fallback.settings });
      // Kept, not forgotten: a repeated settle must reach the fallback's tombstone and change
      // nothing there, not the shared store, which never knew the record.
      this.local.touch(command.opId);
      return { ...reply, degraded: 'local' };
    }
    if (this.outageSince === undefined) {
      const sentAt = Date.now();
      try {
        const reply = await this.options.inner.settle(command);
        this.answered(reply.window);
        return reply;
      } catch (error) {
        if (!(error instanceof RedisUnavailableError)) throw error;
        this.markDown(command.mode === 'adjust' ? 'adjust' : 'release', error, sentAt);
      }
    }
    // A release is sent again once Redis answers (a waiter given up must not be admitted there
    // later); an adjust cannot be: the charge it held stays and leaves with its window.
    if (command.mode === 'release') this.cancelLater(command.opId);
    if (this.options.failureMode === 'closed') throw this.unavailable();
    return {
      status: 'ok',
      applied: NO_CHARGE,
      charged: NO_CHARGE,
      nowMs: Date.now(),
      admitted: [],
      nextCheckMs: 0,
      headOwner: '',
      degraded: this.options.failureMode,
    };
  }

  /** Usage as the shared store counts it; rejects while it is down (no fallback answers for it). */
  status(settings: ModelSettings): Promise<StatusReply> {
    return this.options.inner.status(settings);
  }

  backOff(settings: ModelSettings, command: BackOffCommand): Promise<BackOffReply> {
    return this.feedback((store, s) => store.backOff(s, command), settings);
  }

  reconcile(settings: ModelSettings, command: ReconcileCommand): Promise<Charge> {
    return this.feedback((store, s) => store.reconcile(s, command), settings);
  }

  heartbeat(instanceId: string, ttlMs: number, settings: ModelSettings): Promise<number> {
    return this.options.inner.heartbeat(instanceId, ttlMs, settings);
  }

  onAdmitted(listener: (admitted: readonly AdmittedWaiter[]) => void, heard?: () => void): () => void {
    return this.options.inner.onAdmitted(listener, heard);
  }

  /**
   * What the provider says goes to the shared store, or while it is known down, to this
   * process's fallback with failureMode 'local' (a provider reporting its window full holds this
   * process back too); otherwise it rejects with the outage.
   */
  private async feedback<T>(call: (store: ModelStore, settings: ModelSettings) => Promise<T>, settings: ModelSettings): Promise<T> {
    if (this.outageSince !== undefined) {
      if (this.options.failureMode !== 'local') throw this.unavailable();
      const fallback = this.fallback();
      return call(fallback.store, fallback.settings);
    }
    const sentAt = Date.now();
    try {
      const result = await call(this.options.inner, settings);
      this.markUp();
      return result;
    } catch (error) {
      if (error instanceof RedisUnavailableError) this.markDown('observe', error, sentAt);
      throw error;
    }
  }

  /** This process's share while Redis is away (see LocalFallback.require). */
  private fallback(): { store: ModelStore; settings: ModelSettings } {
    return this.local.require(this.unavailable());
  }

  /** A call to the shared store goes out now; returns when (local ms). */
  private sending(): number {
    const now = Date.now();
    this.leaseHeldUntil = Math.max(this.leaseHeldUntil, now + (this.options.leaseHoldMs ?? 0));
    return now;
  }

  /** The shared store answered: up, announced, and what it holds read for the fallback. */
  private answered(reading: WindowReading | undefined): void {
    this.markUp();
    if (this.options.failureMode !== 'local') return;
    this.local.read(reading);
    this.local.startHeartbeat(
      (ttlMs) => this.options.inner.heartbeat(this.options.instanceId, ttlMs, this.options.settings),
      () => this.outageSince === undefined,
      this.options.logger,
      this.options.model,
    );
  }

  private startProbe(): void {
    if (this.probe) return;
    let probing = false;
    this.probe = setInterval(() => {
      if (probing) return;
      probing = true;
      this.options.ping().then(
        () => {
          probing = false;
          this.markUp();
        },
        () => {
          probing = false;
        },
      );
    }, PROBE_INTERVAL_MS);
    this.probe.unref();
  }

  /** `sentAt`: when the call that found the shared store down was sent (local ms). */
  private markDown(operation: Operation, cause: RedisUnavailableError, sentAt: number): void {
    this.outageCause = cause;
    if (this.outageSince !== undefined) return;
    this.outageSince = Date.now();
    const { failureMode, model } = this.options;
    if (failureMode === 'local') this.local.start(sentAt);
    this.startProbe();
    const then = {
      open: 'letting calls through unlimited',
      closed: 'rejecting calls',
      local:
        this.local.instances === undefined
          ? 'admitting nothing (how many instances share the limits is unknown: set expectedInstances)'
          : `limiting in this process to 1/${this.local.instances} of each limit`,
    }[failureMode];
    this.options.logger.warn(`${model}: Redis is unavailable (${cause.message}); ${then} until it answers again`);
    this.options.emit({ type: 'degraded', model, operation, failureMode, cause });
  }

  /** See PendingCancels: released at once if the shared store answers, else on recovery. */
  private cancelLater(opId: string): void {
    this.cancels.add(opId);
    if (this.outageSince === undefined) this.cancels.send();
  }

  private markUp(): void {
    if (this.outageSince === undefined) return;
    this.cancels.send();
    const outageMs = Date.now() - this.outageSince;
    this.outageSince = undefined;
    if (this.options.failureMode === 'local') this.local.recovered();
    clearInterval(this.probe);
    this.probe = undefined;
    this.options.logger.log?.(`${this.options.model}: Redis answers again after ${outageMs} ms; limiting resumed`);
    this.options.emit({ type: 'recovered', model: this.options.model, outageMs });
  }
}
