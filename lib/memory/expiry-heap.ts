/**
 * Op ids by the epoch ms at which their record is forgotten, earliest first (a binary min-heap).
 * An id's time can change (admitted, then ended) without its old entry being removed: the owner
 * of the heap checks a popped entry against the record it has now.
 */
export class ExpiryHeap {
  private readonly entries: { at: number; id: string }[] = [];

  push(at: number, id: string): void {
    const e = this.entries;
    e.push({ at, id });
    let k = e.length - 1;
    while (k > 0) {
      const parent = (k - 1) >> 1;
      if (e[parent].at <= e[k].at) break;
      [e[parent], e[k]] = [e[k], e[parent]];
      k = parent;
    }
  }

  /** Removes and returns the earliest entry due at `now` (at <= now), if any. */
  popDue(now: number): { at: number; id: string } | undefined {
    const e = this.entries;
    if (e.length === 0 || e[0].at > now) return undefined;
    const top = e[0];
    const last = e.pop()!;
    if (e.length > 0) {
      e[0] = last;
      this.siftDown();
    }
    return top;
  }

  private siftDown(): void {
    const e = this.entries;
    let k = 0;
    for (;;) {
      const l = 2 * k + 1;
      const r = l + 1;
      let least = k;
      if (l < e.length && e[l].at < e[least].at) least = l;
      if (r < e.length && e[r].at < e[least].at) least = r;
      if (least === k) return;
      [e[least], e[k]] = [e[k], e[least]];
      k = least;
    }
  }
}
