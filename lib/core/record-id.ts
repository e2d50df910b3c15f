import { randomBytes } from 'node:crypto';
import { InvalidRecordIdError } from './errors.js';

/**
 * A record id carries what adjust and release need (bucket, charges, cache figures), so the
 * store keeps no record per request. Layout:
 * `<bucket>.<tokens>.<input>.<output>.<cache read>.<cache write>.<op id>`, numbers in base 36;
 * a fail-open reservation is `x.<op id>`, one made by the local fallback starts with `l.`.
 */
export interface ParsedRecordId {
  readonly opId: string;
  readonly degraded: boolean;
  readonly bucket: number;
  readonly tokens: number;
  readonly inputTokens: number;
  readonly outputTokens: number;
  readonly cacheRead: number;
  readonly cacheWrite: number;
  /** Made by the in-process fallback of `failureMode: 'local'`: adjust and release stay local. */
  readonly local: boolean;
}

const OP_ID = /^[A-Za-z0-9_-]{16}$/;

const ID_BYTES = 12;
const POOLED_IDS = 256;
let pool = Buffer.alloc(0);
let taken = POOLED_IDS;

/** A fresh id for one acquire: 96 random bits (drawn from the system 256 ids at a time). */
export function newOpId(): string {
  if (taken === POOLED_IDS) {
    pool = randomBytes(ID_BYTES * POOLED_IDS);
    taken = 0;
  }
  const at = ID_BYTES * taken++;
  return pool.toString('base64url', at, at + ID_BYTES);
}

export function formatRecordId(r: Omit<ParsedRecordId, 'degraded'>): string {
  return (r.local ? 'l.' : '') + [r.bucket, r.tokens, r.inputTokens, r.outputTokens, r.cacheRead, r.cacheWrite].map((n) => n.toString(36)).join('.') + '.' + r.opId;
}

export function formatDegradedRecordId(opId: string): string {
  return `x.${opId}`;
}

export function parseRecordId(recordId: unknown): ParsedRecordId {
  const fail = () =>
    new InvalidRecordIdError(
      `recordId must be the recordId of an AcquireResult, got ${typeof recordId === 'string' ? JSON.stringify(recordId.slice(0, 80)) : typeof recordId}`,
    );
  if (typeof recordId !== 'string') throw fail();
  const parts = recordId.split('.');
  if (parts.length === 2 && parts[0] === 'x' && OP_ID.test(parts[1])) {
    return { opId: parts[1], degraded: true, bucket: -1, tokens: 0, inputTokens: 0, outputTokens: 0, cacheRead: 0, cacheWrite: 0, local: false };
  }
  const local = parts[0] === 'l';
  if (local) parts.shift();
  if (parts.length !== 7 || !OP_ID.test(parts[6])) throw fail();
  const numbers = parts.slice(0, 6).map((p) => (/^[0-9a-z]{1,12}$/.test(p) ? parseInt(p, 36) : NaN));
  if (!numbers.every(Number.isSafeInteger)) throw fail();
  const [bucket, tokens, inputTokens, outputTokens, cacheRead, cacheWrite] = numbers;
  return { opId: parts[6], degraded: false, bucket, tokens, inputTokens, outputTokens, cacheRead, cacheWrite, local };
}
