import { QuantumCounter, SlidingLedger, TokenBucket } from '../../emulator/ledger.js';

describe('SlidingLedger', () => {
  it('counts an entry for exactly one window from its time', () => {
    const ledger = new SlidingLedger(1000);
    ledger.add(0, 10);
    ledger.add(500, 5);
    expect(ledger.used(999)).toBe(15);
    expect(ledger.used(1000)).toBe(5);
    expect(ledger.used(1500)).toBe(0);
  });

  it('says when an amount will fit: as soon as enough entries have left the window', () => {
    const ledger = new SlidingLedger(1000);
    ledger.add(0, 60);
    ledger.add(200, 30);
    expect(ledger.msUntilFits(300, 10, 100)).toBe(0);
    expect(ledger.msUntilFits(300, 20, 100)).toBe(700);
    expect(ledger.msUntilFits(300, 80, 100)).toBe(900);
    expect(ledger.msUntilFits(300, 101, 100)).toBe(Infinity);
  });

  it('settles an entry in place while it counts, and leaves an expired one alone', () => {
    const ledger = new SlidingLedger(1000);
    const a = ledger.add(0, 100);
    ledger.settle(10, a, 40);
    expect(ledger.used(10)).toBe(40);
    ledger.settle(1000, a, 500);
    expect(ledger.used(1000)).toBe(0);
  });

  it('reports how long until everything counted now has left', () => {
    const ledger = new SlidingLedger(1000);
    ledger.add(0, 1);
    ledger.add(300, 1);
    expect(ledger.msUntilEmpty(400)).toBe(900);
    expect(ledger.msUntilEmpty(1300)).toBe(0);
  });
});

describe('TokenBucket', () => {
  it('starts full, refills continuously and never holds more than its capacity', () => {
    const bucket = new TokenBucket(100, 0.1, 0);
    bucket.take(0, 100);
    expect(bucket.levelAt(0)).toBe(0);
    expect(bucket.levelAt(500)).toBeCloseTo(50);
    expect(bucket.levelAt(5000)).toBe(100);
  });

  it('may go below zero for charges made after the fact, and says when an amount is there again', () => {
    const bucket = new TokenBucket(100, 0.1, 0);
    bucket.take(0, 150);
    expect(bucket.levelAt(0)).toBe(-50);
    expect(bucket.msUntil(0, 1)).toBeCloseTo(510);
    expect(bucket.msUntil(0, 101)).toBe(Infinity);
    expect(bucket.msUntilFull(0)).toBeCloseTo(1500);
  });
});

describe('QuantumCounter', () => {
  it('limits each fixed quantum on its own and resets at the next one', () => {
    const q = new QuantumCounter(100, 10);
    q.add(1050, 8);
    expect(q.msUntilFits(1060, 2)).toBe(0);
    expect(q.msUntilFits(1060, 3)).toBe(40);
    expect(q.used(1100)).toBe(0);
    expect(q.msUntilFits(1100, 11)).toBe(Infinity);
  });
});
