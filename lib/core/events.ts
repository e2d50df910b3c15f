import type { AdjustResult } from './results.js';

/**
 * What a limiter reports through its `onEvent` option, for logs and metrics. A handler that
 * throws is logged and otherwise ignored.
 */
export type RateLimiterEvent =
  | {
      readonly type: 'acquired';
      readonly model: string;
      readonly recordId: string;
      readonly waitMs: number;
      readonly queuePosition: number;
      readonly degraded: boolean;
    }
  | {
      readonly type: 'adjusted';
      readonly model: string;
      readonly recordId: string;
      readonly status: AdjustResult['status'];
      readonly tokensDelta: number;
      readonly inputTokensDelta: number;
      readonly outputTokensDelta: number;
    }
  | {
      readonly type: 'released';
      readonly model: string;
      readonly recordId: string;
      /**
       * `released` by the caller, `aborted` by its signal, `timeout` after waiting maxWaitMs,
       * `cancelled`: an acquire let through during an outage that reached Redis after all.
       */
      readonly reason: 'released' | 'aborted' | 'timeout' | 'cancelled';
    }
  | {
      /** The store stopped answering; emitted once per outage, not once per call. */
      readonly type: 'degraded';
      readonly model: string;
      readonly operation: 'acquire' | 'adjust' | 'release' | 'status' | 'observe';
      readonly failureMode: 'open' | 'closed' | 'local';
      readonly cause: Error;
    }
  | {
      /** The provider answered 429: every process pauses, and the limits are cut. */
      readonly type: 'backoff';
      readonly model: string;
      readonly pausedUntil: number;
      readonly limitFactor: number;
    }
  | {
      /**
       * The provider refused a call for billing (OpenAI `insufficient_quota`, Anthropic
       * `billing_error`): no pause and no cut, since sending slower does not help; the
       * caller gets the provider's error.
       */
      readonly type: 'billing';
      readonly model: string;
      readonly status: number;
      /** The provider's error code or type, e.g. `insufficient_quota`. */
      readonly code: string;
    }
  | {
      /** The provider's headers showed quota spent elsewhere; it is now charged. */
      readonly type: 'reconciled';
      readonly model: string;
      readonly foreign: { tokens: number; inputTokens: number; outputTokens: number; requests: number };
    }
  | {
      /** The store answers again after a `degraded` event. */
      readonly type: 'recovered';
      readonly model: string;
      readonly outageMs: number;
    };

/** Where a limiter writes its few log lines. Nest's `Logger` fits, and so does `console`. */
export interface LimiterLogger {
  log?(message: string): void;
  warn(message: string): void;
  error(message: string): void;
}

/** The logger a limiter uses when none is given: the console, each line marked as this package's. */
export const consoleLogger: LimiterLogger = {
  log: (m) => console.log(`[llm-rate-limiter] ${m}`),
  warn: (m) => console.warn(`[llm-rate-limiter] ${m}`),
  error: (m) => console.error(`[llm-rate-limiter] ${m}`),
};
