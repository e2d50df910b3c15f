import type { LimiterLogger, RateLimiterEvent } from './events.js';
import { formatDegradedRecordId } from './record-id.js';
import type { ModelSettings, ModelStore } from './store.js';

/** Most op ids kept for cancelling at once; past that the oldest is forgotten, with a warning. */
const MAX_CANCELS = 10_000;

/**
 * Releases, once the shared store answers again, the reservations whose callers went on without
 * it during an outage. An acquire that reaches Redis after its caller's deadline reserves nothing
 * by itself; these cover what reached it earlier (a reply lost, a waiter left in the queue): a
 * release takes it back, and if it arrives before the acquire, leaves a tombstone that turns the
 * acquire into a no-op.
 */
export class PendingCancels {
  /** Op ids to release once Redis answers, and those being released now. */
  private readonly cancels = new Set<string>();
  private readonly cancelling = new Set<string>();

  constructor(
    private readonly inner: ModelStore,
    private readonly settings: ModelSettings,
    private readonly model: string,
    private readonly logger: LimiterLogger,
    private readonly emit: (event: RateLimiterEvent) => void,
  ) {}

  add(opId: string): void {
    this.cancels.add(opId);
    if (this.cancels.size > MAX_CANCELS) {
      const [oldest] = this.cancels;
      this.cancels.delete(oldest);
      this.logger.warn(`${this.model}: more than ${MAX_CANCELS} acquires to cancel after the outage; ${oldest} is left to its window`);
    }
  }

  /** Sends a release for every op id not being released already. */
  send(): void {
    const { inner, settings, model } = this;
    for (const opId of this.cancels) {
      if (this.cancelling.has(opId)) continue;
      this.cancelling.add(opId);
      inner.settle({ opId, settings, mode: 'release', refunds: true }).then(
        (reply) => {
          this.cancelling.delete(opId);
          this.cancels.delete(opId);
          if (reply.status === 'ok') this.emit({ type: 'released', model, recordId: formatDegradedRecordId(opId), reason: 'cancelled' });
        },
        () => {
          // Unreachable again: kept for the next recovery.
          this.cancelling.delete(opId);
        },
      );
    }
  }
}
