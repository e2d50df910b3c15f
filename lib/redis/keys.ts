/**
 * Keys of one model. Both carry the hash tag `{prefix:model}` so a Redis Cluster keeps them in one
 * slot, and the model name is percent-encoded (every byte outside [A-Za-z0-9_-]), so braces,
 * colons, spaces or unicode in a name can neither break the tag nor make two models share keys.
 */
export interface ModelKeys {
  /** Sliding-window state: running sums, tail, bucket counters. */
  readonly window: string;
  /** Token-bucket state: one arrival time per limited figure. */
  readonly bucket: string;
  /** Recent operation ids (dedupe and cancel tombstones). */
  readonly ring: string;
  /** Live limiter instances (heartbeats). */
  readonly instances: string;
}

export function encodeKeyPart(value: string): string {
  let out = '';
  for (const byte of Buffer.from(value, 'utf8')) {
    const c = String.fromCharCode(byte);
    out += /[A-Za-z0-9_-]/.test(c) ? c : `%${byte.toString(16).toUpperCase().padStart(2, '0')}`;
  }
  return out;
}

export function modelKeys(keyPrefix: string, model: string): ModelKeys {
  const tag = `{${encodeKeyPart(keyPrefix)}:${encodeKeyPart(model)}}`;
  return { window: `${tag}:w`, bucket: `${tag}:b`, ring: `${tag}:o`, instances: `${tag}:i` };
}
