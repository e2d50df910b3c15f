import type { Charge } from './store.js';

/** How an acquire ended up admitted. */
export interface Admission {
  readonly opId: string;
  readonly recordId: string;
  /** Admission time, store clock. */
  readonly slotMs: number;
  /** Waiting reservations ahead when it was enqueued (0 when admitted at once). */
  readonly position: number;
  /** How long the caller was held, ms. */
  readonly waitedMs: number;
  readonly degraded?: 'open' | 'local';
}

/** What one acquire asks for. */
export interface AdmissionRequest {
  readonly cost: Charge;
  /** -1 for no bound. */
  readonly maxWaitMs: number;
  readonly signal?: AbortSignal;
  /** The record id an op id gets, once its reply says where it was made. */
  readonly recordIdOf: (opId: string, degraded: 'open' | 'local' | undefined) => string;
}
