import type { Placement } from './capacity.js';
import type { Figures } from './figures.js';

/*
 * What the memory store remembers of each operation id, as the records of the Redis scripts: a
 * waiter, an admitted reservation, or the tombstone of one that ended.
 */

export type EndedState = 'settled' | 'released' | 'timeout' | 'lost';

export interface WaitingRecord {
  readonly state: 'waiting';
  readonly owner: string;
  readonly cost: Figures;
  /** Epoch ms after which it is dropped, or -1 for none. */
  readonly deadline: number;
}

export interface AdmittedRecord {
  readonly state: 'admitted';
  readonly owner: string;
  readonly cost: Figures;
  readonly slot: number;
  readonly place: Placement;
  readonly expiresAt: number;
}

/** A tombstone: the id is remembered so that a repeated command changes nothing. */
export interface EndedRecord {
  readonly state: EndedState;
  readonly expiresAt: number;
}

export type OpRecord = WaitingRecord | AdmittedRecord | EndedRecord;
