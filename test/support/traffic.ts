import type { RateLimiter, TokenRequest } from '../../lib/index.js';

/** One acquire of a traffic run. */
export interface TrafficSample {
  readonly startedAt: number;
  readonly endedAt: number;
  readonly degraded: boolean;
  readonly recordId?: string;
  readonly error?: unknown;
}

/**
 * Keeps `callers` concurrent callers acquiring on a limiter, each pausing `paceMs` between calls,
 * and records every outcome, for measuring what a fault does to callers.
 */
export class Traffic {
  readonly samples: TrafficSample[] = [];
  private running = false;
  private loops: Promise<void>[] = [];

  constructor(
    private readonly limiter: RateLimiter,
    private readonly callers = 4,
    private readonly paceMs = 5,
    private readonly request: TokenRequest = { tokens: 1 },
  ) {}

  start(): this {
    this.running = true;
    this.loops = Array.from({ length: this.callers }, () => this.loop());
    return this;
  }

  async stop(): Promise<TrafficSample[]> {
    this.running = false;
    await Promise.all(this.loops);
    return this.samples;
  }

  private async loop(): Promise<void> {
    while (this.running) {
      const startedAt = Date.now();
      try {
        const r = await this.limiter.acquire(this.request);
        this.samples.push({ startedAt, endedAt: Date.now(), degraded: r.degraded, recordId: r.recordId });
      } catch (error) {
        this.samples.push({ startedAt, endedAt: Date.now(), degraded: false, error });
      }
      await new Promise((r) => setTimeout(r, this.paceMs));
    }
  }

  /** Samples that started at or after `t`. */
  since(t: number): TrafficSample[] {
    return this.samples.filter((s) => s.startedAt >= t);
  }

  /** Acquires that Redis acknowledged (neither degraded nor failed). */
  acknowledged(): TrafficSample[] {
    return this.samples.filter((s) => !s.degraded && !s.error);
  }

  /**
   * The outage callers saw after `t`: from the first degraded or failed call to the end of the
   * last one, how many there were, and the longest call after `t` (failed or not).
   */
  outageAfter(t: number): { calls: number; fromMs: number; toMs: number; longestCallMs: number } {
    const after = this.since(t);
    const longestCallMs = Math.max(0, ...after.map((s) => s.endedAt - s.startedAt));
    const bad = after.filter((s) => s.degraded || s.error);
    if (bad.length === 0) return { calls: 0, fromMs: 0, toMs: 0, longestCallMs };
    return { calls: bad.length, fromMs: bad[0].startedAt - t, toMs: Math.max(...bad.map((s) => s.endedAt)) - t, longestCallMs };
  }
}
