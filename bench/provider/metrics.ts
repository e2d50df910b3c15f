import { DIMENSIONS, type Dimension, type Figures } from '../../emulator/policies/policy.js';
import type { EmulatorRecorder } from '../../emulator/recorder.js';
import { type CallRow, Outcome, type WorkerResult } from './worker.js';

/** Nearest-rank percentile of unsorted values; NaN for none. */
export function percentile(values: readonly number[], p: number): number {
  if (values.length === 0) return NaN;
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1))];
}

/** Calls and total µs per command from `INFO commandstats`. */
export function parseCommandStats(info: string): Map<string, { calls: number; usec: number }> {
  const stats = new Map<string, { calls: number; usec: number }>();
  for (const line of info.split(/\r?\n/)) {
    const m = /^cmdstat_([^:]+):calls=(\d+),usec=(\d+)/.exec(line);
    if (m) stats.set(m[1], { calls: Number(m[2]), usec: Number(m[3]) });
  }
  return stats;
}

/** Commands and server µs spent between two snapshots, leaving out the benchmark's own INFO calls. */
export function commandStatsDelta(before: string, after: string): { calls: number; usec: number } {
  const a = parseCommandStats(before);
  const b = parseCommandStats(after);
  let calls = 0;
  let usec = 0;
  for (const [name, stat] of b) {
    if (name === 'info' || name === 'config') continue;
    calls += stat.calls - (a.get(name)?.calls ?? 0);
    usec += stat.usec - (a.get(name)?.usec ?? 0);
  }
  return { calls, usec };
}

export interface RunMetrics {
  readonly served: number;
  readonly unfinished: number;
  readonly failed: number;
  readonly gaveUp: number;
  /** 429 responses in the whole run, and in the measured part. */
  readonly refused: number;
  readonly refusedMeasured: number;
  /** Served share of each limit per window, averaged over the windows ending in the measured part. */
  readonly utilisation: Figures;
  /** The limit closest to full. */
  readonly binding: { readonly dimension: Dimension; readonly value: number };
  /** What refused calls and the foreign consumer counted, as shares of the binding limit. */
  readonly refusedShare: number;
  readonly foreignShare: number;
  readonly waitP50Ms: number;
  readonly waitP99Ms: number;
  /** Mean wait of each worker over the measured part. */
  readonly workerMeanWaitMs: number[];
  /** Slowest worker's mean wait over the fastest one's. */
  readonly workerSpread: number;
  /** Served calls of each worker over the measured part. */
  readonly workerServed: number[];
  readonly redisUsecPerCall: number;
  readonly redisCommandsPerCall: number;
  readonly degraded: number;
  readonly errors: string[];
}

export interface MeasureInput {
  readonly recorder: EmulatorRecorder;
  readonly limits: Figures;
  readonly windowMs: number;
  readonly from: number;
  readonly to: number;
  readonly startAt: number;
  readonly deadline: number;
  readonly workers: readonly WorkerResult[];
  readonly redis: { calls: number; usec: number };
}

export function measure(input: MeasureInput): RunMetrics {
  const { recorder, limits, windowMs, from, to } = input;
  const rows: CallRow[] = input.workers.flatMap((w) => w.rows);
  const count = (outcome: Outcome) => rows.filter((r) => r[2] === outcome).length;
  const utilisation = recorder.windowUtilisation(from, to, limits, windowMs);
  let binding: { dimension: Dimension; value: number } = { dimension: 'requests', value: 0 };
  for (const dimension of DIMENSIONS) {
    const value = utilisation[dimension];
    if (value !== undefined && value >= binding.value) binding = { dimension, value };
  }
  const share = (source: 'rejected' | 'foreign') => recorder.windowUtilisation(from, to, limits, windowMs, source)[binding.dimension] ?? 0;
  const measuredWaits = (list: readonly CallRow[]) =>
    list.filter((r) => r[2] === Outcome.Served && r[1] >= from - windowMs && r[1] < to).map((r) => r[1] - r[0]);
  const waits = measuredWaits(rows);
  const perWorker = input.workers.map((w) => measuredWaits(w.rows));
  const means = perWorker.map((list) => (list.length ? list.reduce((a, b) => a + b, 0) / list.length : NaN));
  const finite = means.filter(Number.isFinite);
  const served = count(Outcome.Served);
  return {
    served,
    unfinished: count(Outcome.Unfinished),
    failed: count(Outcome.Failed),
    gaveUp: count(Outcome.GaveUp),
    refused: recorder.count(429),
    refusedMeasured: recorder.count(429, from, to),
    utilisation,
    binding,
    refusedShare: share('rejected'),
    foreignShare: share('foreign'),
    waitP50Ms: percentile(waits, 50),
    waitP99Ms: percentile(waits, 99),
    workerMeanWaitMs: means,
    workerSpread: finite.length ? Math.max(...finite) / Math.max(1, Math.min(...finite)) : NaN,
    workerServed: perWorker.map((list) => list.length),
    redisUsecPerCall: served ? input.redis.usec / served : NaN,
    redisCommandsPerCall: served ? input.redis.calls / served : NaN,
    degraded: input.workers.reduce((n, w) => n + w.degraded, 0),
    errors: input.workers.flatMap((w) => w.errors),
  };
}
