/**
 * Audits of an admission log against a sliding-window limit, in the provider's terms: what any
 * interval [t, t + window) of real (server) time holds.
 */
export interface AuditedRequest {
  /** Server time of the slot, epoch ms. */
  readonly slotTime: number;
  readonly tokens: number;
  /** 1, or 0 for a request that was given back. */
  readonly requests: number;
}

/** A request with when the limiter placed it, and a later change of its charge, if any. */
export interface PlacedRequest extends AuditedRequest {
  /** Server time (epoch ms, rounded down) at which acquire handed out the slot. */
  readonly placedAt: number;
  /**
   * What an adjust or release changed the charge to, and server-time bounds of when that
   * happened: after `earliest`, before `latest`.
   */
  readonly change?: AuditedRequest & { readonly earliest: number; readonly latest: number };
}

export interface WindowLoad {
  /** Start of the window, epoch ms. */
  readonly from: number;
  readonly tokens: number;
  readonly requests: number;
}

export interface Limits {
  readonly tokens: number;
  readonly requests: number;
}

function sorted<T extends AuditedRequest>(log: readonly T[]): T[] {
  return [...log].sort((a, b) => a.slotTime - b.slotTime);
}

/**
 * The fullest windows, by tokens and by requests, as the limiter saw them when it admitted a
 * request: for each request A, the window that ends at A's slot, (slot - window, slot], holding
 * the requests placed no later than A.
 *
 * Slots are handed out in order (a new one is never before one handed out earlier), so these are
 * all the requests of the buckets the limiter checked for A, and every window of real time is,
 * at the moment its last request was placed, one of these. Each request counts with its charge
 * of that moment: changed if the change surely came before (`latest` at or before the
 * placement), as admitted if it surely came after, the smaller of the two when the order is
 * unknown. None of this is more than the limiter saw, and it admitted A only if A fit: so no
 * window may exceed the limits. An upward adjust made after a window's last placement can take
 * that window over them legitimately (the request was already admitted), and is not counted.
 */
export function fullestAsPlaced(log: readonly PlacedRequest[], windowMs: number): { byTokens: WindowLoad; byRequests: WindowLoad } {
  const s = sorted(log);
  let byTokens: WindowLoad = { from: NaN, tokens: 0, requests: 0 };
  let byRequests = byTokens;
  let first = 0;
  for (const a of s) {
    while (s[first].slotTime <= a.slotTime - windowMs) first++;
    let tokens = 0;
    let requests = 0;
    for (let k = first; k < s.length && s[k].slotTime <= a.slotTime; k++) {
      const r = s[k];
      if (r.placedAt > a.placedAt) continue;
      const c = r.change;
      if (!c || c.earliest >= a.placedAt + 1) {
        tokens += r.tokens;
        requests += r.requests;
      } else if (c.latest <= a.placedAt) {
        tokens += c.tokens;
        requests += c.requests;
      } else {
        tokens += Math.min(r.tokens, c.tokens);
        requests += Math.min(r.requests, c.requests);
      }
    }
    const load = { from: a.slotTime - windowMs + 1, tokens, requests };
    if (tokens > byTokens.tokens) byTokens = load;
    if (requests > byRequests.requests) byRequests = load;
  }
  return { byTokens, byRequests };
}

/**
 * How full the windows starting in [from, to] are on average: the mean over every start t in
 * that range (not only slot times) of the larger of tokens/limit and requests/limit in
 * [t, t + window). 1 means every window was exactly at a limit.
 */
export function meanUtilization(log: readonly AuditedRequest[], windowMs: number, limits: Limits, from: number, to: number): number {
  const s = sorted(log);
  const slots = s.map((r) => r.slotTime);
  const tokenSums = [0];
  const requestSums = [0];
  for (const r of s) {
    tokenSums.push(tokenSums[tokenSums.length - 1] + r.tokens);
    requestSums.push(requestSums[requestSums.length - 1] + r.requests);
  }
  // First index whose slot is >= t.
  const lowerBound = (t: number) => {
    let lo = 0;
    let hi = slots.length;
    while (lo < hi) {
      const mid = (lo + hi) >> 1;
      if (slots[mid] < t) lo = mid + 1;
      else hi = mid;
    }
    return lo;
  };
  // The load of [t, t + window) changes only where t crosses a slot time or a slot time minus
  // the window: between such points it is constant, so the mean is a finite sum.
  const points = new Set<number>([from, to]);
  for (const slot of slots) {
    for (const p of [slot, slot - windowMs]) if (p > from && p < to) points.add(p);
  }
  const edges = [...points].sort((a, b) => a - b);
  let area = 0;
  for (let k = 0; k + 1 < edges.length; k++) {
    const t = (edges[k] + edges[k + 1]) / 2;
    const a = lowerBound(t);
    const b = lowerBound(t + windowMs);
    const fill = Math.max(
      limits.tokens > 0 ? (tokenSums[b] - tokenSums[a]) / limits.tokens : 0,
      limits.requests > 0 ? (requestSums[b] - requestSums[a]) / limits.requests : 0,
    );
    area += fill * (edges[k + 1] - edges[k]);
  }
  return area / (to - from);
}
