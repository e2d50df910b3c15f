/** The timer functions the waiters use; tests pass fakes to see what is scheduled. */
export interface Timers {
  setTimeout(callback: () => void, ms: number): unknown;
  clearTimeout(handle: unknown): void;
}

export const nodeTimers: Timers = {
  setTimeout: (callback, ms) => setTimeout(callback, ms),
  clearTimeout: (handle) => clearTimeout(handle as NodeJS.Timeout),
};

/** Node's setTimeout takes a signed 32-bit delay; anything longer fires at once (with a warning). */
export const MAX_TIMER_MS = 2 ** 31 - 1;

/**
 * Calls `callback` after `ms`, however long: a delay past MAX_TIMER_MS is chained from timers
 * that each fit. Counts the delays it scheduled rather than reading the clock, so a timer that
 * fires early cannot shorten the wait by more than its own error. Returns the cancel.
 */
export function longTimeout(ms: number, callback: () => void, timers: Timers = nodeTimers): () => void {
  let remaining = Math.max(0, ms);
  let handle: unknown;
  const arm = () => {
    const step = Math.min(remaining, MAX_TIMER_MS);
    handle = timers.setTimeout(() => {
      remaining -= step;
      if (remaining > 0) arm();
      else callback();
    }, step);
  };
  arm();
  return () => timers.clearTimeout(handle);
}
