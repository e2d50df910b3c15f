import { randomBytes } from 'node:crypto';
import { InvalidRecordIdError } from './errors.js';
import { MAX_COUNT } from './store.js';

/**
 * A record id names one reservation in the store, which keeps its charge; the raw request
 * figures it also carries are only the defaults of `adjust`'s `actualInput`, `actualCacheRead`
 * and `actualCacheWrite`, never what the store changes. Layout:
 * `<op id>.<input>.<output>.<cache read>.<cache write>`, numbers in base 36; one made by the
 * local fallback of `failureMode: 'local'` starts with `l.`; a fail-open one is `x.<op id>`.
 */
export interface ParsedRecordId {
  readonly opId: string;
  /** Let through unlimited while the store was unreachable (`failureMode: 'open'`): no record. */
  readonly degraded: boolean;
  /** Made by the in-process fallback of `failureMode: 'local'`. */
  readonly local: boolean;
  /** The request's raw figures: input as given (a bare `tokens` count is input), output, cache. */
  readonly input: number;
  readonly output: number;
  readonly cacheRead: number;
  readonly cacheWrite: number;
}

const OP_ID = /^[A-Za-z0-9_-]{12}$/;
/** MAX_COUNT is 7 digits in base 36; anything longer cannot be a count the limiter wrote. */
const COUNT = /^[0-9a-z]{1,7}$/;

// 72 random bits: unguessable, and with ids kept at most a window and 10 s, two reservations of
// one model never share one; 12 characters keep the store's records and queue small (each id is
// stored in both).
const ID_BYTES = 9;
const POOLED_IDS = 256;
let pool = Buffer.alloc(0);
let taken = POOLED_IDS;

/** A fresh id for one acquire: 72 random bits (drawn from the system 256 ids at a time). */
export function newOpId(): string {
  if (taken === POOLED_IDS) {
    pool = randomBytes(ID_BYTES * POOLED_IDS);
    taken = 0;
  }
  const at = ID_BYTES * taken++;
  return pool.toString('base64url', at, at + ID_BYTES);
}

/** The id of a reservation the store holds; every figure must be a count <= MAX_COUNT. */
export function formatRecordId(r: Omit<ParsedRecordId, 'degraded'>): string {
  // Concatenated rather than mapped and joined: this runs on every acquire.
  return `${r.local ? 'l.' : ''}${r.opId}.${r.input.toString(36)}.${r.output.toString(36)}.${r.cacheRead.toString(36)}.${r.cacheWrite.toString(36)}`;
}

/** The id of a reservation let through unlimited: nothing to adjust or release. */
export function formatDegradedRecordId(opId: string): string {
  return `x.${opId}`;
}

/** Reads a record id back; anything `formatRecordId` could not have written throws. */
export function parseRecordId(recordId: unknown): ParsedRecordId {
  const fail = () =>
    new InvalidRecordIdError(
      `recordId must be the recordId of an AcquireResult, got ${typeof recordId === 'string' ? JSON.stringify(recordId.slice(0, 80)) : typeof recordId}`,
    );
  if (typeof recordId !== 'string' || recordId.length > 128) throw fail();
  const parts = recordId.split('.');
  if (parts.length === 2 && parts[0] === 'x' && OP_ID.test(parts[1])) {
    return { opId: parts[1], degraded: true, local: false, input: 0, output: 0, cacheRead: 0, cacheWrite: 0 };
  }
  const local = parts[0] === 'l';
  if (local) parts.shift();
  if (parts.length !== 5 || !OP_ID.test(parts[0])) throw fail();
  const numbers = parts.slice(1).map((p) => (COUNT.test(p) ? parseInt(p, 36) : NaN));
  if (!numbers.every((n) => Number.isSafeInteger(n) && n <= MAX_COUNT)) throw fail();
  const [input, output, cacheRead, cacheWrite] = numbers;
  return { opId: parts[0], degraded: false, local, input, output, cacheRead, cacheWrite };
}
