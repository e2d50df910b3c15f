// Timing helpers of the benchmarks: closed-loop callers, percentiles, medians over rounds.
import { performance } from 'node:perf_hooks';

function percentile(sorted, p) {
  if (sorted.length === 0) return NaN;
  const rank = Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1));
  return sorted[rank];
}

/**
 * Runs `op` in `callers` closed loops (each awaits its call before the next) for `durationMs`,
 * after `warmupMs` of unrecorded calls. Resolves with ops per second and latency percentiles (µs).
 */
export async function closedLoop(op, { callers, durationMs, warmupMs = 200 }) {
  const latencies = [];
  let recording = false;
  let stop = false;
  const loop = async () => {
    while (!stop) {
      const started = performance.now();
      await op();
      if (recording) latencies.push(performance.now() - started);
    }
  };
  const loops = Array.from({ length: callers }, loop);
  await new Promise((r) => setTimeout(r, warmupMs));
  recording = true;
  const from = performance.now();
  await new Promise((r) => setTimeout(r, durationMs));
  recording = false;
  const elapsed = performance.now() - from;
  stop = true;
  await Promise.all(loops);
  latencies.sort((a, b) => a - b);
  return {
    ops: latencies.length,
    opsPerSec: (latencies.length / elapsed) * 1000,
    p50Us: percentile(latencies, 50) * 1000,
    p99Us: percentile(latencies, 99) * 1000,
  };
}

/** Runs `op` exactly `count` times, one after another; latency percentiles in µs. */
export async function sequential(op, count) {
  const latencies = new Array(count);
  const from = performance.now();
  for (let i = 0; i < count; i++) {
    const started = performance.now();
    await op(i);
    latencies[i] = performance.now() - started;
  }
  const elapsed = performance.now() - from;
  latencies.sort((a, b) => a - b);
  return { ops: count, opsPerSec: (count / elapsed) * 1000, p50Us: percentile(latencies, 50) * 1000, p99Us: percentile(latencies, 99) * 1000 };
}

/** Runs `op(i)` for i in [0, count) with at most `concurrency` calls in flight. */
export async function fill(op, count, concurrency = 64) {
  let next = 0;
  const worker = async () => {
    while (next < count) await op(next++);
  };
  await Promise.all(Array.from({ length: Math.min(concurrency, count) }, worker));
}

export function median(values) {
  const sorted = values.filter((v) => !Number.isNaN(v)).sort((a, b) => a - b);
  if (sorted.length === 0) return NaN;
  const mid = sorted.length >> 1;
  return sorted.length % 2 ? sorted[mid] : (sorted[mid - 1] + sorted[mid]) / 2;
}

/** Medians of each figure over rounds of the same measurement. */
export function medianOf(rounds) {
  const keys = Object.keys(rounds[0]);
  return Object.fromEntries(keys.map((k) => [k, median(rounds.map((r) => r[k]))]));
}
