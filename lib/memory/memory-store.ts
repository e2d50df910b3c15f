import { registerLocalStore } from '../core/backend.js';
import type { LimiterStore, ModelStore } from '../core/store.js';
import { ModelState } from './model-state.js';

/**
 * Limiter state in this process only: the same algorithm and answers as Redis, for a single
 * instance, tests and the sample app. Limits are then per process: N replicas admit N times the
 * limit between them.
 *
 * @example
 * const limiter = new RateLimiter(new MemoryStore(), 'gpt-4o', { tpm: 30_000 });
 */
export class MemoryStore implements LimiterStore {
  readonly kind = 'memory' as const;
  private readonly models = new Map<string, ModelState>();

  /** `clock` returns epoch ms (default `Date.now`). */
  constructor(private readonly clock: () => number = Date.now) {}

  forModel(model: string, keyPrefix: string): ModelStore {
    const key = JSON.stringify([keyPrefix, model]);
    let state = this.models.get(key);
    if (!state) {
      state = new ModelState(this.clock);
      this.models.set(key, state);
    }
    const s = state;
    return {
      acquire: async (c) => s.acquire(c),
      claim: async (c) => s.claim(c),
      settle: async (c) => s.settle(c),
      status: async (settings) => s.status(settings),
      backOff: async (settings, c) => s.backOff(settings, c),
      reconcile: async (settings, c) => s.reconcile(settings, c),
      // One process: one instance.
      heartbeat: async () => (s.instances = 1),
      onAdmitted: (listener) => s.onAdmitted(listener),
    };
  }

  async ping(): Promise<number> {
    return 0;
  }
}

// The fallback of failureMode 'local' is a memory store (core names no store itself).
registerLocalStore((clock) => new MemoryStore(clock));
