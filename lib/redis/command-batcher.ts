import type { ModelSettings } from '../core/store.js';

/** Most acquires one script call carries; bounds how long one call holds Redis. */
export const MAX_BATCH = 128;
/**
 * Script calls one model may have in flight from this process at once. More than two, so that
 * Redis and this process stay busy at the same time also on a single connection, where replies
 * that come back to back are read in one turn and wake their callers together. (Chosen by trying
 * two to four with `npm run bench`, which measures only the value in force.)
 */
export const MAX_IN_FLIGHT = 3;
/**
 * Fewest acquires worth a call of their own when what waits is shared between lanes: each call
 * pays the script's fixed cost in Redis (see `npm run bench:steps`), which a few acquires do not
 * repay with overlap. (Chosen by trying 1 and 8 with 4 to 16 callers; the benchmark measures
 * only the value in force.)
 */
export const MIN_SHARE = 8;

interface Waiting<C, R> {
  readonly command: C;
  /** `performance.now()` reading past which the caller is answered with `expired(command)`. */
  readonly deadline: number;
  readonly resolve: (reply: R) => void;
  readonly reject: (error: unknown) => void;
  settled: boolean;
}

function sameSettings(a: ModelSettings, b: ModelSettings): boolean {
  if (a === b) return true;
  const x = a.limits;
  const y = b.limits;
  return (
    a.windowMs === b.windowMs &&
    a.algorithm === b.algorithm &&
    a.paceMs === b.paceMs &&
    a.learn?.maxFactor === b.learn?.maxFactor &&
    a.learn?.increasePerWindow === b.learn?.increasePerWindow &&
    x.tokens === y.tokens &&
    x.inputTokens === y.inputTokens &&
    x.outputTokens === y.outputTokens &&
    x.requests === y.requests
  );
}

/**
 * Groups one model's commands (acquires, claims, settles) that arrive while this process already
 * has calls in flight, and sends each group as one script call. The script serves a group exactly
 * as it would serve its commands one by one at that moment, in arrival order, so grouping changes
 * the cost per command, not who is admitted when. An acquire that finds nothing in flight goes out once the
 * pending microtasks have run: a lone caller waits for nobody. Otherwise the free lanes are used
 * once the current turn of the event loop is over, so that the callers a reply has just woken
 * form groups instead of trickling out one by one, shared evenly between the lanes.
 */
export class CommandBatcher<C extends { readonly settings: ModelSettings }, R> {
  private readonly waiting: Waiting<C, R>[] = [];
  /**
   * Every command not answered yet, queued or in flight, in order of submission (and so of
   * deadline, all deadlines being as long): the front is the next to expire.
   */
  private readonly open: Waiting<C, R>[] = [];
  private openHead = 0;
  private sweepTimer: NodeJS.Timeout | undefined;
  private sweepAt = Infinity;
  private inFlight = 0;
  private scheduled = false;
  private soonScheduled = false;

  /**
   * `send` gets the batch and the latest deadline of its callers (a `performance.now()`
   * reading); `expired` is what a caller whose deadline passed first is rejected with, whether
   * its command was still queued here (it is then never sent) or in flight; `late` hears the
   * replies that came for such callers after all (to undo what they did).
   */
  constructor(
    private readonly send: (batch: readonly C[], deadline: number) => Promise<R[]>,
    private readonly maxInFlight = MAX_IN_FLIGHT,
    private readonly maxBatch = MAX_BATCH,
    private readonly minShare = MIN_SHARE,
    private readonly expired: (command: C) => Error = () => new Error('the command was not answered before its deadline'),
    private readonly late: (command: C, reply: R) => void = () => undefined,
  ) {}

  /** Sends `command` in a batch; settles by `deadline` (a `performance.now()` reading) at the latest. */
  submit(command: C, deadline = Infinity): Promise<R> {
    return new Promise<R>((resolve, reject) => {
      const entry: Waiting<C, R> = { command, deadline, resolve, reject, settled: false };
      this.waiting.push(entry);
      this.open.push(entry);
      this.armSweep(deadline);
      if (this.inFlight === 0 && !this.scheduled) this.flushSoon();
      else this.schedule();
    });
  }

  /**
   * Makes sure a sweep runs by `at`. A timer set for an earlier time is kept, also once the
   * callers it was set for are answered: it then finds nothing to do and waits for the next front.
   * So a lone caller does not set and clear a timer per call.
   */
  private armSweep(at: number): void {
    if (at >= this.sweepAt) return;
    clearTimeout(this.sweepTimer);
    this.sweepAt = at;
    this.sweepTimer = setTimeout(
      () => {
        this.sweepTimer = undefined;
        this.sweepAt = Infinity;
        this.sweep();
      },
      Math.max(0, Math.ceil(at - performance.now())),
    );
    // A pending deadline must not keep the process alive by itself.
    this.sweepTimer.unref();
  }

  /** Answers every caller whose deadline passed; queued ones are taken out of the queue. */
  private sweep(): void {
    const now = performance.now();
    let expiredAny = false;
    while (this.openHead < this.open.length) {
      const w = this.open[this.openHead];
      if (!w.settled && w.deadline > now) break;
      this.openHead++;
      if (w.settled) continue;
      w.settled = true;
      expiredAny = true;
      w.reject(this.expired(w.command));
    }
    if (this.openHead === this.open.length) {
      this.open.length = 0;
      this.openHead = 0;
    } else if (this.openHead > 1024 && this.openHead * 2 > this.open.length) {
      this.open.splice(0, this.openHead);
      this.openHead = 0;
    }
    if (expiredAny) {
      let kept = 0;
      for (const w of this.waiting) if (!w.settled) this.waiting[kept++] = w;
      this.waiting.length = kept;
    }
    if (this.openHead < this.open.length) this.armSweep(this.open[this.openHead].deadline);
  }

  /**
   * Nothing in flight: send after the pending microtasks, no later. Callers woken together by
   * one reply re-enter at the same depth of their await chains, so the first one's send waits
   * for the others and they go as one call instead of the first alone and the rest after it.
   */
  private flushSoon(): void {
    if (this.soonScheduled) return;
    this.soonScheduled = true;
    queueMicrotask(() => {
      this.soonScheduled = false;
      this.flush();
    });
  }

  private schedule(): void {
    if (this.scheduled || this.inFlight >= this.maxInFlight) return;
    this.scheduled = true;
    setImmediate(() => {
      this.scheduled = false;
      if (this.inFlight < this.maxInFlight) this.flush();
    });
  }

  /**
   * Sends what is waiting over the free lanes, split evenly (no call carrying fewer than
   * `minShare` unless fewer wait): callers woken together by one reply (or by replies read in the
   * same turn) would otherwise all ride in one call while the other lanes stay idle, and this
   * process and Redis would take turns instead of working at once.
   */
  private flush(): void {
    while (this.waiting.length > 0 && this.inFlight < this.maxInFlight) {
      const calls = Math.max(1, Math.min(this.maxInFlight - this.inFlight, Math.floor(this.waiting.length / this.minShare)));
      const share = Math.min(this.maxBatch, Math.ceil(this.waiting.length / calls));
      // One call carries one configuration: a limiter whose limits changed meanwhile goes next.
      const settings = this.waiting[0].command.settings;
      let size = 1;
      while (size < share && sameSettings(settings, this.waiting[size].command.settings)) size++;
      this.sendBatch(this.waiting.splice(0, size));
    }
  }

  private sendBatch(batch: Waiting<C, R>[]): void {
    this.inFlight++;
    let deadline = -Infinity;
    for (const w of batch) deadline = Math.max(deadline, w.deadline);
    const settle = (w: Waiting<C, R>, done: () => void) => {
      if (w.settled) return;
      w.settled = true;
      done();
    };
    this.send(
      batch.map((w) => w.command),
      deadline,
    )
      .then(
        (replies) =>
          batch.forEach((w, k) => {
            if (w.settled) this.late(w.command, replies[k]);
            else settle(w, () => w.resolve(replies[k]));
          }),
        (error: unknown) => batch.forEach((w) => settle(w, () => w.reject(error))),
      )
      .finally(() => {
        this.inFlight--;
        if (this.waiting.length > 0) this.schedule();
        // Answered callers at the front no longer hold the sweep's timer.
        if (this.open.length - this.openHead > 0 && this.open[this.openHead].settled) this.sweep();
      });
  }
}
