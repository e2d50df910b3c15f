/**
 * Keys of one model. All carry the hash tag `{prefix:model}` so a Redis Cluster keeps them in one
 * slot, and the model name is percent-encoded (every byte outside [A-Za-z0-9_-]), so braces,
 * colons, spaces or unicode in a name can neither break the tag nor make two models share keys.
 */
export interface ModelKeys {
  /** Sliding-window state: running sums, tail, bucket counters. */
  readonly window: string;
  /** Token-bucket state: one arrival time per limited figure. */
  readonly bucket: string;
  /** The live queue: waiting op ids in order of arrival. */
  readonly queue: string;
  /** Reservations not yet settled, and tombstones of those that ended. */
  readonly records: string;
  /** When each record or tombstone is deleted. */
  readonly expiry: string;
  /** Lease of each process that waits (or waited) for this model. */
  readonly owners: string;
  /** Pub/sub channel admissions are announced on. */
  readonly channel: string;
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
  return {
    window: `${tag}:w`,
    bucket: `${tag}:b`,
    queue: `${tag}:q`,
    records: `${tag}:r`,
    expiry: `${tag}:x`,
    owners: `${tag}:o`,
    channel: `${tag}:n`,
    instances: `${tag}:i`,
  };
}
