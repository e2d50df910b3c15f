/**
 * Audits of an admission log against the limits, worked out from the log alone (never from the
 * limiter's counters): a sliding window, as the provider sees it (what any interval of real server
 * time holds), and a token bucket, replayed by simulating the bucket.
 *
 * The log gives each request's admission time (server ms, as the store reads its clock), its
 * charge then, and its later change (adjust or release) with server-ms bounds of when the store
 * applied it. Where the log cannot tell whether a change came before or after an admission, the
 * audits take whichever order gives the smaller load: they never report a breach the limiter
 * could not have made.
 */

/** A request's charge: combined tokens and requests. */
export interface Charged {
  readonly tokens: number;
  readonly requests: number;
}

/** A charge in force from an admission on. */
export interface AdmittedCharge extends Charged {
  /** Server epoch ms at which the store admitted it. */
  readonly admittedAt: number;
}

/** One admitted request of the log. */
export interface LoggedRequest extends AdmittedCharge {
  /**
   * What an adjust or release changed the charge to, and when: the store applied it at a server
   * ms within [from, to].
   */
  readonly change?: Charged & { readonly from: number; readonly to: number };
}

export interface Limits {
  readonly tokens: number;
  readonly requests: number;
}

export interface WindowLoad {
  /** The window (end - window, end]: the store admitted a request at `end`. */
  readonly end: number;
  readonly tokens: number;
  readonly requests: number;
}

const FIGURES = ['tokens', 'requests'] as const;
type Figure = (typeof FIGURES)[number];

function byAdmission<T extends AdmittedCharge>(log: readonly T[]): T[] {
  return [...log].sort((a, b) => a.admittedAt - b.admittedAt);
}

/**
 * A figure of `r` as it stood at server ms `t`: a change that lowered it counts unless it surely
 * came after t; one that raised it counts only if it surely came before.
 */
function inForce(r: LoggedRequest, figure: Figure, t: number): number {
  const c = r.change;
  if (!c) return r[figure];
  if (c[figure] < r[figure]) return c.from > t ? r[figure] : c[figure];
  return c.to < t ? c[figure] : r[figure];
}

/**
 * The fullest windows, by tokens and by requests, at the moments the store admitted: for each
 * server ms t at which it admitted, the requests admitted in (t - window, t] with the charges in
 * force then. The store admits a request only if every window ending at that moment leaves room
 * for it, and after the last admission of that ms it has admitted all of them: so none of these
 * may exceed the limits. (An upward adjust made later may take a window over them legitimately:
 * its request was already admitted. It counts only where it surely came first.)
 */
export function fullestWindows(log: readonly LoggedRequest[], windowMs: number): { byTokens: WindowLoad; byRequests: WindowLoad } {
  const s = byAdmission(log);
  let byTokens: WindowLoad = { end: NaN, tokens: 0, requests: 0 };
  let byRequests = byTokens;
  let first = 0;
  for (let i = 0; i < s.length; i++) {
    const t = s[i].admittedAt;
    // Once per ms: at its last admission.
    if (i + 1 < s.length && s[i + 1].admittedAt === t) continue;
    while (s[first].admittedAt <= t - windowMs) first++;
    let tokens = 0;
    let requests = 0;
    for (let k = first; k <= i; k++) {
      tokens += inForce(s[k], 'tokens', t);
      requests += inForce(s[k], 'requests', t);
    }
    const load = { end: t, tokens, requests };
    if (tokens > byTokens.tokens) byTokens = load;
    if (requests > byRequests.requests) byRequests = load;
  }
  return { byTokens, byRequests };
}

/**
 * How full the windows starting in [from, to] are on average: the mean over every start t in
 * that range (not only admission times) of the larger of tokens/limit and requests/limit in
 * [t, t + window), each request counted at `tokens` and `requests` from its admission on.
 * 1 means every window was exactly at a limit.
 */
export function meanUtilization(log: readonly AdmittedCharge[], windowMs: number, limits: Limits, from: number, to: number): number {
  const s = byAdmission(log);
  const times = s.map((r) => r.admittedAt);
  const tokenSums = [0];
  const requestSums = [0];
  for (const r of s) {
    tokenSums.push(tokenSums[tokenSums.length - 1] + r.tokens);
    requestSums.push(requestSums[requestSums.length - 1] + r.requests);
  }
  // First index admitted at or after t.
  const lowerBound = (t: number) => {
    let lo = 0;
    let hi = times.length;
    while (lo < hi) {
      const mid = (lo + hi) >> 1;
      if (times[mid] < t) lo = mid + 1;
      else hi = mid;
    }
    return lo;
  };
  // The load of [t, t + window) changes only where t crosses an admission time or one minus the
  // window: between such points it is constant, so the mean is a finite sum.
  const points = new Set<number>([from, to]);
  for (const at of times) {
    for (const p of [at, at - windowMs]) if (p > from && p < to) points.add(p);
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

/** A token bucket: `limit` per `windowMs` refills continuously; it holds `bucketMs` of refill. */
export interface BucketShape {
  readonly windowMs: number;
  readonly bucketMs: number;
  readonly limits: Limits;
}

/** The admission that found the simulated bucket emptiest: by how much it overdrew it (<= 0: it fit). */
export interface Overdraft {
  readonly at: number;
  readonly excess: number;
}

/**
 * Replays the log through a token bucket per figure and returns, per figure, the admission that
 * overdrew it most. The bucket is simulated as debt: what was charged and has not refilled yet,
 * refilled at limit / window in order of charge (a queue of charges drained from the front). An
 * admission of cost c fits when debt + c <= max(capacity, c) (capacity = limit x bucket /
 * window; a request larger than the bucket goes when it is full). A refund (adjust down,
 * release) takes back at most the part of its own charge not refilled yet (as if charged last
 * of the ms it was charged in, whose order the log does not give); an adjust up is
 * charged when it is made. Every change is applied at its earliest possible moment, which can
 * only leave the bucket fuller later on; and an adjust up that may or may not have come before
 * an admission is forgiven to that admission.
 */
export function bucketOverdraft(log: readonly LoggedRequest[], shape: BucketShape): Record<Figure, Overdraft> {
  return { tokens: overdraft(log, shape, 'tokens'), requests: overdraft(log, shape, 'requests') };
}

interface BucketEvent {
  readonly kind: 'admission' | 'refund' | 'charge';
  readonly at: number;
  /**
   * Within one ms, the order that leaves most room: refunds of earlier admissions first, then
   * charges (a charge is never refunded, so it goes to the refill queue ahead of an admission
   * that may be, and the admission's check forgives the charge anyway), then the admissions,
   * each one refunded within its own ms followed by that refund. The store may well have
   * admitted in such an order: a caller that gives its reservation back at once frees room in
   * the same ms, which the next waiter takes; the log's own order (by process) says nothing.
   */
  readonly order: 0 | 1 | 2;
  /**
   * Orders the admissions of one ms: max(capacity, charge) less what is refunded within that ms,
   * smallest first. An admission fits while the debt before it is at most max(capacity, charge)
   * less its charge, and leaves its charge less that refund behind; two neighbours are never
   * better the other way round when the one with the smaller sum of the two goes first.
   */
  readonly rank: number;
  /** Ties: by request, an admission (2 x request) before its refund (2 x request + 1). */
  readonly after: number;
  readonly request: number;
  readonly amount: number;
  /** Charges: the last ms at which the store may have applied it. */
  readonly until: number;
}

function overdraft(log: readonly LoggedRequest[], shape: BucketShape, figure: Figure): Overdraft {
  const limit = shape.limits[figure];
  let worst: Overdraft = { at: NaN, excess: -Infinity };
  if (limit <= 0) return worst;
  const perMs = limit / shape.windowMs;
  const capacity = (limit * shape.bucketMs) / shape.windowMs;
  const events: BucketEvent[] = [];
  log.forEach((r, request) => {
    const c = r.change;
    const amount = c ? c[figure] - r[figure] : 0;
    const refundedAtOnce = c !== undefined && amount < 0 && c.from <= r.admittedAt ? -amount : 0;
    const rank = Math.max(capacity, r[figure]) - refundedAtOnce;
    const admittedAt = r.admittedAt;
    events.push({ kind: 'admission', at: admittedAt, order: 2, rank, after: 2 * request, request, amount: r[figure], until: admittedAt });
    if (!c || amount === 0) return;
    const change = { at: c.from, request, until: c.to, after: 2 * request + 1 };
    if (amount > 0) events.push({ ...change, kind: 'charge', order: 1, rank: 0, amount });
    else if (refundedAtOnce) events.push({ ...change, kind: 'refund', order: 2, rank, amount: refundedAtOnce });
    else events.push({ ...change, kind: 'refund', order: 0, rank: 0, amount: -amount });
  });
  events.sort((a, b) => a.at - b.at || a.order - b.order || a.rank - b.rank || a.after - b.after);

  // The debt: what was charged and has not refilled yet, as the charges of each ms (a group),
  // oldest first. Within a group the store charged in some order the log does not give, so a
  // refund of one of them takes back as much as it could have: as if it had been charged last
  // of its group, at most what the group has not refilled yet.
  const groups: { at: number; left: number }[] = [];
  const own = new Map<number, { left: number; group: { left: number } }>();
  let head = 0;
  let debt = 0;
  let clock = -Infinity;
  const charges: BucketEvent[] = [];
  const refill = (until: number) => {
    let amount = clock === -Infinity ? 0 : perMs * (until - clock);
    clock = until;
    while (amount > 0 && head < groups.length) {
      const take = Math.min(groups[head].left, amount);
      groups[head].left -= take;
      debt -= take;
      amount -= take;
      if (groups[head].left <= 0) head++;
    }
    if (head === groups.length) debt = 0;
  };
  const charge = (at: number, amount: number) => {
    let group = groups.at(-1);
    if (!group || group.at !== at || head === groups.length) {
      group = { at, left: 0 };
      groups.push(group);
    }
    group.left += amount;
    debt += amount;
    return group;
  };
  for (const e of events) {
    refill(e.at);
    if (e.kind === 'refund') {
      const charged = own.get(e.request);
      if (!charged) throw new Error(`refund of request ${e.request} before its admission`);
      const give = Math.min(e.amount, charged.left, charged.group.left);
      charged.left -= give;
      charged.group.left -= give;
      debt -= give;
    } else if (e.kind === 'admission') {
      const forgiven = charges.reduce((sum, c) => (c.at <= e.at && e.at <= c.until ? sum + c.amount : sum), 0);
      const excess = debt + e.amount - Math.max(capacity, e.amount) - forgiven;
      if (excess > worst.excess) worst = { at: e.at, excess };
      own.set(e.request, { left: e.amount, group: charge(e.at, e.amount) });
    } else {
      charges.push(e);
      charge(e.at, e.amount);
    }
  }
  return worst;
}

/**
 * Throughput over [from, to) against the refill rate: per figure, what the requests admitted in
 * that span are charged (at `tokens` and `requests`) over limit x span / window; the larger
 * figure. 1 means the binding limit was used in full.
 */
export function bucketUtilization(log: readonly AdmittedCharge[], shape: BucketShape, from: number, to: number): number {
  const inSpan = log.filter((r) => r.admittedAt >= from && r.admittedAt < to);
  let use = 0;
  for (const figure of FIGURES) {
    const limit = shape.limits[figure];
    if (limit <= 0) continue;
    const charged = inSpan.reduce((sum, r) => sum + r[figure], 0);
    use = Math.max(use, charged / ((limit * (to - from)) / shape.windowMs));
  }
  return use;
}
