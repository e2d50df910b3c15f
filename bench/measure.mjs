// Timing helpers of the benchmarks: closed-loop callers, percentiles, medians over rounds, and
// the CPU time of a process.
import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { performance } from 'node:perf_hooks';

let ticksPerSecond;
/** Clock ticks per second of /proc's CPU times (CLK_TCK, 100 on Linux almost always). */
function clockTicks() {
  if (ticksPerSecond === undefined) {
    try {
      ticksPerSecond = Number(execFileSync('getconf', ['CLK_TCK'], { encoding: 'utf8' }).trim()) || 100;
    } catch {
      ticksPerSecond = 100;
    }
  }
  return ticksPerSecond;
}

/**
 * CPU time (user + system, all threads) process `pid` has used so far, in µs, from
 * /proc/<pid>/stat; NaN when there is no such process to read (no pid, or not on this host).
 * The resolution is one clock tick (10 ms): measure over rounds that use far more.
 */
export function processCpuUs(pid) {
  if (pid === undefined) return NaN;
  let stat;
  try {
    stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  } catch {
    return NaN;
  }
  // The name (field 2) is in parentheses and may hold spaces: count fields after its end.
  // Field 3 (state) is index 0 there, so utime (14) and stime (15) are 11 and 12.
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  return ((Number(fields[11]) + Number(fields[12])) * 1e6) / clockTicks();
}

function percentile(sorted, p) {
  if (sorted.length === 0) return NaN;
  const rank = Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1));
  return sorted[rank];
}

/**
 * Runs `op` in `callers` closed loops (each awaits its call before the next) for `durationMs`,
 * after `warmupMs` of unrecorded calls. Resolves with ops per second and latency percentiles (µs)
 * of the recorded calls, and `calls`, every call made (warm-up and the last ones included).
 * `probe` (optional, synchronous) is read when recording starts and when it stops; its two
 * readings come back as `probed`, so what it reads covers the recorded calls only.
 */
export async function closedLoop(op, { callers, durationMs, warmupMs = 200, probe }) {
  const latencies = [];
  let recording = false;
  let stop = false;
  let calls = 0;
  const loop = async () => {
    while (!stop) {
      const started = performance.now();
      await op();
      calls++;
      if (recording) latencies.push(performance.now() - started);
    }
  };
  const loops = Array.from({ length: callers }, loop);
  await new Promise((r) => setTimeout(r, warmupMs));
  const before = probe?.();
  recording = true;
  const from = performance.now();
  await new Promise((r) => setTimeout(r, durationMs));
  recording = false;
  const elapsed = performance.now() - from;
  const after = probe?.();
  stop = true;
  await Promise.all(loops);
  latencies.sort((a, b) => a - b);
  return {
    ops: latencies.length,
    calls,
    opsPerSec: (latencies.length / elapsed) * 1000,
    p50Us: percentile(latencies, 50) * 1000,
    p99Us: percentile(latencies, 99) * 1000,
    probed: [before, after],
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
  return {
    ops: count,
    opsPerSec: (count / elapsed) * 1000,
    p50Us: percentile(latencies, 50) * 1000,
    p99Us: percentile(latencies, 99) * 1000,
  };
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
