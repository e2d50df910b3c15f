/** Where the emulator reads the time: epoch ms, the same timeline as Redis `TIME` on this machine. */
export interface Clock {
  now(): number;
}

export const systemClock: Clock = { now: () => Date.now() };

/** A clock that moves only when told to, for deterministic policy tests. */
export class ManualClock implements Clock {
  constructor(private time = 1_000_000) {}

  now(): number {
    return this.time;
  }

  advance(ms: number): number {
    this.time += ms;
    return this.time;
  }

  set(ms: number): void {
    this.time = ms;
  }
}
