import { AcquireAbortedError, AcquireTimeoutError, LlmRateLimiterError } from './errors.js';
import type { LimiterLogger } from './events.js';
import type { Admission, AdmissionRequest } from './admission.js';
import { longTimeout, nodeTimers, type Timers } from './long-timeout.js';
import { newOpId } from './record-id.js';
import { waitEstimateMs } from './status.js';
import {
  type AcquireReply,
  type AdmittedWaiter,
  type Charge,
  CLAIM_GRACE_MS,
  CLAIM_INTERVAL_MS,
  type ModelSettings,
  type ModelStore,
  type QueueNews,
  type RecordState,
  type SettleReply,
} from './store.js';

export interface WaitersOptions {
  readonly store: ModelStore;
  /** This limiter instance: the owner of its waiters, whose lease every claim renews. */
  readonly owner: string;
  readonly settings: ModelSettings;
  readonly model: string;
  readonly logger: LimiterLogger;
  /**
   * Gives back a reservation the caller no longer waits for (aborted, or maxWaitMs passed);
   * resolves with the store's reply once it no longer holds it, undefined if that failed.
   */
  readonly release: (opId: string, recordId: string, reason: 'aborted' | 'timeout') => Promise<SettleReply | undefined>;
  readonly timers?: Timers;
}

interface Waiter {
  readonly opId: string;
  readonly request: AdmissionRequest;
  readonly startedAt: number;
  readonly position: number;
  resolve(admission: Admission): void;
  reject(error: unknown): void;
  /** Detaches the abort listener and the maxWaitMs timer. */
  stop(): void;
}

/**
 * This limiter's acquires, from their acquire call until admission. A waiting reservation is
 * admitted by whichever store call happens to free room, in any process, so the waiters listen
 * to every reply the limiter gets (`news`) and to the store's notices; a lost notice is made up
 * for by one claim timer per limiter, at the earliest time the store said the head could fit
 * and at least every CLAIM_INTERVAL_MS (which also renews this owner's lease).
 */
export class Waiters {
  private readonly table = new Map<string, Waiter>();
  /** Acquires sent and not answered yet: an admission seen meanwhile is kept for the reply. */
  private readonly inFlight = new Map<string, AdmittedWaiter | undefined>();
  private readonly timers: Timers;
  private unsubscribe?: () => void;
  private timer: unknown;
  private dueAt = Infinity;
  private claiming = false;
  /** When the queue's head could next be admitted, local epoch ms, as the last reply said. */
  private headDue = 0;
  /** Whether the queue's head is one of this limiter's waiters, as the last reply said. */
  private headOwned = false;
  /** When the last claim that asked after every waiter was answered (local epoch ms). */
  private lastFullClaim = 0;
  private fullClaimDue = false;

  constructor(private readonly options: WaitersOptions) {
    this.timers = options.timers ?? nodeTimers;
  }

  /** How many of this limiter's acquires wait for admission. */
  get size(): number {
    return this.table.size;
  }

  /**
   * Places one reservation and resolves once it is admitted. Rejects with AcquireAbortedError
   * when the signal fires (after the store gave the reservation back), AcquireTimeoutError when
   * it cannot be admitted within maxWaitMs, and with the store's error when a call fails.
   */
  admit(request: AdmissionRequest): Promise<Admission> {
    return this.place(request, Date.now(), request.maxWaitMs, false);
  }

  /** What any acquire, claim or settle reply of this limiter's store said about the queue. */
  news(reply: QueueNews): void {
    this.admitted(reply.admitted);
    this.headDue = reply.nextCheckMs > 0 ? reply.nextCheckMs - (reply.nowMs - Date.now()) : 0;
    this.headOwned = reply.headOwner === this.options.owner;
    if (reply.nextCheckMs > 0) this.schedule(this.claimDue());
  }

  private async place(request: AdmissionRequest, startedAt: number, maxWaitMs: number, again: boolean): Promise<Admission> {
    const { signal } = request;
    if (signal?.aborted) throw this.aborted(signal);
    const { store, owner, settings } = this.options;
    const opId = newOpId();
    this.inFlight.set(opId, undefined);
    let reply: AcquireReply;
    let early: AdmittedWaiter | undefined;
    try {
      reply = await store.acquire({ opId, owner, settings, cost: request.cost, maxWaitMs });
    } finally {
      early = this.inFlight.get(opId);
      this.inFlight.delete(opId);
    }
    this.news(reply);
    const recordId = request.recordIdOf(opId, reply.degraded);
    const held = reply.state === 'admitted' || reply.state === 'waiting';
    // The signal may have fired during the round trip, before any listener could be attached.
    if (signal?.aborted) {
      if (held) await this.options.release(opId, recordId, 'aborted');
      throw this.aborted(signal);
    }
    if (reply.state === 'admitted' || (reply.state === 'waiting' && early)) {
      const slotMs = reply.state === 'admitted' ? reply.slotMs : early!.slotMs;
      // Admitted by its own call: the round trip is not a wait.
      const waitedMs = reply.state === 'admitted' && !again ? 0 : Date.now() - startedAt;
      return { opId, recordId, slotMs, position: reply.position, waitedMs, degraded: reply.degraded };
    }
    if (reply.state === 'waiting') return this.enqueue(opId, recordId, request, startedAt, reply.position);
    if (reply.state === 'timeout') {
      throw new AcquireTimeoutError(
        `${this.options.model} cannot admit this request within maxWaitMs (${maxWaitMs}); a request enqueued now could be admitted in about ${reply.estimateMs} ms; nothing was reserved`,
        reply.estimateMs,
        request.maxWaitMs,
        reply.estimateMs,
      );
    }
    throw this.unexpected(opId, reply.state);
  }

  private enqueue(opId: string, recordId: string, request: AdmissionRequest, startedAt: number, position: number): Promise<Admission> {
    return new Promise<Admission>((resolve, reject) => {
      const { signal, maxWaitMs } = request;
      const waiter: Waiter = { opId, request, startedAt, position, resolve, reject, stop: () => undefined };
      const onAbort = () => void this.giveUp(waiter, recordId, 'aborted');
      signal?.addEventListener('abort', onAbort, { once: true });
      const cancelDeadline =
        maxWaitMs > 0
          ? longTimeout(startedAt + maxWaitMs - Date.now(), () => void this.giveUp(waiter, recordId, 'timeout'), this.timers)
          : undefined;
      waiter.stop = () => {
        signal?.removeEventListener('abort', onAbort);
        cancelDeadline?.();
      };
      this.table.set(opId, waiter);
      // Admissions announced before the subscription took effect were not heard: claim then.
      this.unsubscribe ??= this.options.store.onAdmitted(
        (admitted) => this.admitted(admitted),
        () => this.schedule(Date.now()),
      );
      // The acquire's reply said when the head could fit, but news() could not arm the timer
      // then: the table was still empty. Without this the first claim waits CLAIM_INTERVAL_MS.
      this.schedule(this.headDue > 0 ? this.claimDue() : Infinity);
    });
  }

  /** Takes a waiter out of the table; false when something else ended it first. */
  private remove(waiter: Waiter): boolean {
    if (this.table.get(waiter.opId) !== waiter) return false;
    this.table.delete(waiter.opId);
    waiter.stop();
    if (this.table.size === 0) {
      this.unsubscribe?.();
      this.unsubscribe = undefined;
      this.timers.clearTimeout(this.timer);
      this.timer = undefined;
      this.dueAt = Infinity;
    }
    return true;
  }

  private admitted(admitted: readonly AdmittedWaiter[]): void {
    for (const a of admitted) {
      const waiter = this.table.get(a.opId);
      if (waiter) {
        this.remove(waiter);
        waiter.resolve(this.admission(waiter, a.slotMs, undefined));
      } else if (this.inFlight.has(a.opId)) {
        this.inFlight.set(a.opId, a);
      }
    }
  }

  private admission(waiter: Waiter, slotMs: number, degraded: 'open' | 'local' | undefined): Admission {
    const { opId, request, startedAt, position } = waiter;
    return { opId, recordId: request.recordIdOf(opId, degraded), slotMs, position, waitedMs: Date.now() - startedAt, degraded };
  }

  /**
   * The caller stopped waiting: the store is told to give the reservation back (if it was
   * admitted meanwhile, that frees its charge), and the caller hears of it once the store no
   * longer holds it.
   */
  private async giveUp(waiter: Waiter, recordId: string, reason: 'aborted' | 'timeout'): Promise<void> {
    if (!this.remove(waiter)) return;
    // Taken before the release: once this waiter has left, the queue may be empty and say nothing.
    const headDue = this.headDue;
    await this.options.release(waiter.opId, recordId, reason);
    const { signal, maxWaitMs } = waiter.request;
    if (reason === 'aborted') {
      waiter.reject(this.aborted(signal!));
      return;
    }
    const estimate = Math.max(headDue - Date.now(), await this.estimate(waiter.request.cost));
    waiter.reject(
      new AcquireTimeoutError(
        `${this.options.model} did not admit this request within maxWaitMs (${maxWaitMs}); it left the queue; a request enqueued now could be admitted in about ${estimate} ms`,
        Date.now() - waiter.startedAt,
        maxWaitMs,
        estimate,
      ),
    );
  }

  /**
   * When a request of `cost` enqueued now could be admitted, ms from now, by the store's own
   * estimate (spec: estimateMs) from the window's figures, less the queue it cannot see here: a
   * lower bound. The waiter's own deadline was the queue's next check, so that says nothing of
   * when the window frees. 0 when the store cannot tell.
   */
  private async estimate(cost: Charge): Promise<number> {
    const { store, settings } = this.options;
    try {
      return waitEstimateMs(settings, await store.status(settings), cost);
    } catch {
      return 0;
    }
  }

  /**
   * When to claim for the head's next check: at once if the head is ours; otherwise a little
   * later, since the head's owner claims then and its claim admits whoever fits.
   */
  private claimDue(): number {
    return this.headOwned ? this.headDue : this.headDue + CLAIM_GRACE_MS;
  }

  /** Arms the one claim timer for `dueLocal` (local epoch ms), unless it is due sooner already. */
  private schedule(dueLocal: number): void {
    if (this.table.size === 0) return;
    const due = Math.min(dueLocal, Date.now() + CLAIM_INTERVAL_MS);
    if ((this.timer !== undefined || this.claiming) && due >= this.dueAt) return;
    this.timers.clearTimeout(this.timer);
    this.dueAt = due;
    this.timer = this.timers.setTimeout(
      () => {
        this.timer = undefined;
        void this.claim();
      },
      Math.max(0, Math.ceil(due - Date.now())),
    );
  }

  private async claim(): Promise<void> {
    if (this.claiming || this.table.size === 0) return;
    this.claiming = true;
    const waiters = [...this.table.values()];
    const { store, owner, settings } = this.options;
    // A claim at the head's next check only has to run the store's admit step (whoever it
    // admits comes back in `admitted`); asking after every waiter, which catches lost notices
    // and waiters the store dropped, is needed once per CLAIM_INTERVAL_MS.
    const full = this.fullClaimDue || Date.now() - this.lastFullClaim >= CLAIM_INTERVAL_MS;
    try {
      const reply = await store.claim({ owner, settings, opIds: full ? waiters.map((w) => w.opId) : [] });
      this.claiming = false;
      this.dueAt = Infinity;
      if (full) {
        this.lastFullClaim = Date.now();
        this.fullClaimDue = false;
      } else if (reply.degraded) {
        // The shared store is away: the wrapper answers for each waiter only when asked.
        this.fullClaimDue = true;
        this.news(reply);
        this.schedule(Date.now());
        return;
      }
      this.news(reply);
      waiters.forEach((waiter, i) => {
        const record = reply.records[i];
        if (record && record.state !== 'waiting') this.ended(waiter, record.state, record.slotMs, reply);
      });
    } catch (error) {
      this.claiming = false;
      this.dueAt = Infinity;
      // The store cannot tell where they stand (closed failure mode, or a store error): nobody
      // may be left waiting for an answer that will not come.
      for (const waiter of waiters) if (this.remove(waiter)) waiter.reject(error);
    }
    this.schedule(Infinity);
  }

  /** A claim found a waiter no longer waiting. */
  private ended(waiter: Waiter, state: RecordState, slotMs: number, reply: QueueNews): void {
    if (!this.remove(waiter)) return;
    const { request, startedAt, opId } = waiter;
    switch (state) {
      case 'admitted':
        waiter.resolve(this.admission(waiter, slotMs, reply.degraded));
        return;
      case 'timeout': {
        void this.estimate(request.cost).then((estimate) =>
          waiter.reject(
            new AcquireTimeoutError(
              `${this.options.model} did not admit this request within maxWaitMs (${request.maxWaitMs}); a request enqueued now could be admitted in about ${estimate} ms; nothing was reserved`,
              Date.now() - startedAt,
              request.maxWaitMs,
              estimate,
            ),
          ),
        );
        return;
      }
      case 'released':
        waiter.reject(new AcquireAbortedError(`acquire ${opId} for ${this.options.model} was released while it waited`));
        return;
      case 'lost':
      case 'unknown': {
        // 'lost': the store took this process for dead (its lease ran out: an event loop stalled
        // longer than OWNER_LEASE_MS). 'unknown': the store no longer holds the record at all
        // (a Redis restarted without persistence). Either way nothing of it is reserved: queue
        // again, at the back, under a new op id.
        const why =
          state === 'lost' ? 'was dropped by the store (owner lease ran out)' : 'is no longer known to the store (its data was lost)';
        this.options.logger.warn(`${this.options.model}: waiting reservation ${opId} ${why}; queued again at the back`);
        const left = request.maxWaitMs < 0 ? -1 : Math.max(0, startedAt + request.maxWaitMs - Date.now());
        this.place(request, startedAt, left, true).then(
          (admission) => waiter.resolve(admission),
          (error: unknown) => waiter.reject(error),
        );
        return;
      }
      default:
        waiter.reject(this.unexpected(opId, state));
    }
  }

  private aborted(signal: AbortSignal): AcquireAbortedError {
    return new AcquireAbortedError(`acquire for ${this.options.model} was aborted; nothing stays reserved`, { cause: signal.reason });
  }

  private unexpected(opId: string, state: RecordState): LlmRateLimiterError {
    return new LlmRateLimiterError(
      `acquire ${opId} for ${this.options.model}: the store answered '${state}' for a reservation that should be waiting`,
    );
  }
}
