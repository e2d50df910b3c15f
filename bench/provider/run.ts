/**
 * The provider benchmark: every emulator policy with the matching profile of this module, and the
 * same load through rate-limiter-flexible, bottleneck and no limiter. Prints markdown tables and
 * writes results.md and results.svg beside this file.
 *
 * Environment: REDIS_URL (else a throw-away redis-server on a free loopback port),
 * BENCH_SCENARIOS / BENCH_LIMITERS (comma lists), BENCH_WINDOW_MS, BENCH_RUN_WINDOWS,
 * BENCH_WORKERS, BENCH_CONCURRENCY, BENCH_INPUT_ERROR, BENCH_INPUT_MARGIN, BENCH_FOREIGN_SHARE,
 * BENCH_OUT (folder for results.md / results.svg; "-" writes none), BENCH_MODULE_CONFIG (JSON laid
 * over this module's configuration, to try one), BENCH_DEBUG (print every 429 and delivery delays).
 */
import { type ChildProcess, fork } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { cpus } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { Redis } from 'ioredis';
import { ProviderEmulator } from '../../emulator/provider-emulator.js';
import { RedisServerProcess as OwnRedisServer } from '../../tools/redis-server.mjs';
import { commandStatsDelta, measure, percentile } from './metrics.js';
import { chartSvg, type RunRecord, scenarioTable, settingsText, targetTable } from './report.js';
import {
  type BenchSettings,
  DEFAULT_SETTINGS,
  LIMITER_LABELS,
  LIMITERS,
  type LimiterKind,
  type ModuleVariant,
  type Scenario,
  scenarios,
} from './scenarios.js';
import type { WorkerInit, WorkerResult } from './worker.js';

function projectRoot(): string {
  let dir = dirname(fileURLToPath(import.meta.url));
  for (let i = 0; i < 8; i++) {
    const file = join(dir, 'package.json');
    if (existsSync(file) && (JSON.parse(readFileSync(file, 'utf8')) as { name?: string }).name === 'nestjs-llm-rate-limiter') return dir;
    dir = dirname(dir);
  }
  throw new Error('could not find the project root (package.json of nestjs-llm-rate-limiter) above the benchmark');
}

function numberFromEnv(name: string, fallback: number): number {
  const raw = process.env[name];
  if (raw === undefined || raw === '') return fallback;
  const value = Number(raw);
  if (!Number.isFinite(value) || value < 0) throw new Error(`${name} must be a non-negative number, got ${raw}`);
  return value;
}

function listFromEnv<T extends string>(name: string, known: readonly T[]): readonly T[] {
  const raw = process.env[name];
  if (!raw) return known;
  const picked = raw.split(',').map((s) => s.trim()) as T[];
  for (const p of picked) if (!known.includes(p)) throw new Error(`${name}: unknown ${JSON.stringify(p)}; known: ${known.join(', ')}`);
  return picked;
}

/** Windows ending this many windows after the start, or later, are measured. */
const MEASURED_FROM_WINDOWS = 1.25;

const root = projectRoot();
const libraryUrl = pathToFileURL(join(root, 'dist', 'esm', 'index.js')).href;
const workerPath = fileURLToPath(new URL('./worker.js', import.meta.url));

function waitForMessages<T>(children: ChildProcess[], type: string, timeoutMs: number): Promise<T[]> {
  return new Promise((resolvePromise, reject) => {
    const got: T[] = [];
    const cleanups: Array<() => void> = [];
    const settle = (error?: Error) => {
      clearTimeout(timer);
      for (const cleanup of cleanups) cleanup();
      if (error) reject(error);
      else resolvePromise(got);
    };
    const timer = setTimeout(
      () => settle(new Error(`workers sent ${got.length} of ${children.length} '${type}' messages within ${timeoutMs} ms`)),
      timeoutMs,
    );
    for (const child of children) {
      const onMessage = (message: { type: string }) => {
        if (message.type !== type) return;
        child.off('message', onMessage);
        got.push(message as T);
        if (got.length === children.length) settle();
      };
      const onExit = (code: number | null) => settle(new Error(`a worker exited with code ${code} before sending '${type}'`));
      child.on('message', onMessage);
      child.once('exit', onExit);
      cleanups.push(() => {
        child.off('message', onMessage);
        child.off('exit', onExit);
      });
    }
  });
}

/** Worker processes kept for every run: starting one costs a second or two of imports. */
function startWorkers(count: number): ChildProcess[] {
  return Array.from({ length: count }, () => fork(workerPath, [], { stdio: ['ignore', 'inherit', 'inherit', 'ipc'] }));
}

function stopWorkers(children: readonly ChildProcess[]): void {
  for (const child of children) {
    if (child.exitCode !== null || child.signalCode !== null) continue;
    child.send({ type: 'exit' }, () => undefined);
    setTimeout(() => child.kill('SIGKILL'), 2000).unref();
  }
}

async function oneRun(
  settings: BenchSettings,
  scenario: Scenario,
  kind: LimiterKind,
  variant: ModuleVariant | undefined,
  redisUrl: string,
  stats: Redis,
  index: number,
  children: ChildProcess[],
): Promise<RunRecord> {
  const foreignShare = numberFromEnv('BENCH_FOREIGN_SHARE', 0);
  const emulator = await ProviderEmulator.start({
    ...scenario.emulator,
    ...(foreignShare > 0 ? { foreign: { share: foreignShare } } : {}),
  });
  const runId = `bench-${process.pid}-${index}-${scenario.name}-${kind}`;
  try {
    const setup = { kind, scenario, variant, redisUrl, runId, inputMargin: settings.inputMargin, libraryUrl };
    children.forEach((child, i) => child.send({ type: 'init', index: i, setup, settings, emulatorUrl: emulator.url } satisfies WorkerInit));
    const t0 = Date.now();
    await waitForMessages(children, 'ready', 20_000);
    const tReady = Date.now();
    const runMs = Math.round((kind === 'none' ? settings.noLimiterRunWindows : settings.runWindows) * settings.windowMs);
    const before = await stats.info('commandstats');
    const startAt = Date.now() + 300;
    const deadline = startAt + runMs;
    for (const child of children) child.send({ type: 'start', startAt, deadline });
    const results = await waitForMessages<WorkerResult>(children, 'result', runMs + 60_000);
    if (process.env.BENCH_DEBUG) console.error(`  phases: ready ${tReady - t0} ms, results ${Date.now() - deadline} ms after the deadline`);
    results.sort((a, b) => a.index - b.index);
    const after = await stats.info('commandstats');
    const metrics = measure({
      recorder: emulator.recorder,
      limits: scenario.limits,
      windowMs: settings.windowMs,
      from: startAt + MEASURED_FROM_WINDOWS * settings.windowMs,
      to: deadline,
      startAt,
      deadline,
      workers: results,
      redis: commandStatsDelta(before, after),
    });
    if (process.env.BENCH_DEBUG) {
      const delays = emulator.recorder.calls.filter((c) => c.clientSentAt).map((c) => c.arrivedAt - c.clientSentAt!);
      const q = (p: number) => percentile(delays, p);
      console.error(
        `  delivery delay (slot or send -> provider clock): p50 ${q(50)} ms, p90 ${q(90)} ms, p99 ${q(99)} ms, max ${q(100)} ms`,
      );
      for (const call of emulator.recorder.calls) {
        if (call.status !== 429) continue;
        console.error(
          `  429 at +${call.arrivedAt - startAt} ms: ${call.dimension} used ${Math.round(call.used ?? 0)} + ${call.requested} > ${call.limit}, retry after ${Math.round(call.retryAfterMs ?? 0)} ms`,
        );
      }
    }
    return { scenario, limiter: kind, variant: variant?.label, metrics, runMs };
  } finally {
    await emulator.close();
  }
}

/** The scenario's configurations of this module, or BENCH_MODULE_CONFIG (JSON) laid over the first. */
function moduleVariants(scenario: Scenario): readonly ModuleVariant[] {
  const raw = process.env.BENCH_MODULE_CONFIG;
  if (!raw) return scenario.moduleVariants;
  const extra = JSON.parse(raw) as Record<string, unknown>;
  const base = scenario.moduleVariants[0];
  const shown = Object.entries(extra).map(([k, v]) => `${k}: ${JSON.stringify(v).replace(/"/g, "'")}`);
  return [{ label: [base.label, ...shown].join(', '), config: { ...base.config, ...extra } }];
}

async function main(): Promise<void> {
  const began = Date.now();
  const settings: BenchSettings = {
    ...DEFAULT_SETTINGS,
    windowMs: numberFromEnv('BENCH_WINDOW_MS', DEFAULT_SETTINGS.windowMs),
    runWindows: numberFromEnv('BENCH_RUN_WINDOWS', DEFAULT_SETTINGS.runWindows),
    workers: numberFromEnv('BENCH_WORKERS', DEFAULT_SETTINGS.workers),
    concurrency: numberFromEnv('BENCH_CONCURRENCY', DEFAULT_SETTINGS.concurrency),
    inputError: numberFromEnv('BENCH_INPUT_ERROR', DEFAULT_SETTINGS.inputError),
    inputMargin: numberFromEnv('BENCH_INPUT_MARGIN', DEFAULT_SETTINGS.inputMargin),
  };
  if (settings.runWindows < 1.5)
    throw new Error(`BENCH_RUN_WINDOWS must be at least 1.5: windows ending from ${MEASURED_FROM_WINDOWS} windows on are measured`);
  if (!existsSync(fileURLToPath(libraryUrl)))
    throw new Error(`${fileURLToPath(libraryUrl)} is missing: run \`npm run build\` first (npm run bench:provider does)`);
  const all = scenarios(settings);
  const picked = listFromEnv(
    'BENCH_SCENARIOS',
    all.map((s) => s.name),
  );
  const limiters = listFromEnv('BENCH_LIMITERS', LIMITERS);

  let server: OwnRedisServer | undefined;
  const redisUrl = process.env.REDIS_URL || (server = await OwnRedisServer.start()).url;
  const stats = new Redis(redisUrl);
  const groups: Array<{ scenario: Scenario; runs: RunRecord[] }> = [];
  const children = startWorkers(settings.workers);
  try {
    let index = 0;
    for (const scenario of all.filter((s) => picked.includes(s.name))) {
      const runs: RunRecord[] = [];
      for (const kind of limiters) {
        const variants = kind === 'module' ? moduleVariants(scenario) : [undefined];
        for (const variant of variants) {
          const run = await oneRun(settings, scenario, kind, variant, redisUrl, stats, index++, children);
          runs.push(run);
          const m = run.metrics;
          console.error(
            `[${((Date.now() - began) / 1000).toFixed(0)} s] ${scenario.name} / ${variant?.label ?? LIMITER_LABELS[kind]}: ${m.refused} x 429, ${(m.binding.value * 100).toFixed(1)}% of ${m.binding.dimension}, p50 wait ${Math.round(m.waitP50Ms)} ms`,
          );
        }
      }
      groups.push({ scenario, runs });
      console.log(`\n${scenarioTable(scenario, runs)}\n`);
    }
  } finally {
    stopWorkers(children);
    stats.disconnect();
    await server?.stop();
  }
  const all429 = groups.flatMap((g) => g.runs);
  const elapsed = (Date.now() - began) / 1000;
  const summary = targetTable(all429);
  console.log(`\n## Target: zero 429s and at least 95% of the limit\n\n${summary}\n\nBenchmark time: ${elapsed.toFixed(0)} s`);

  const out = process.env.BENCH_OUT ?? dirname(fileURLToPath(import.meta.url)).replace(/[\\/]\.build[\\/].*$/, '');
  if (out !== '-') {
    mkdirSync(out, { recursive: true });
    const md = [
      '# Provider benchmark results',
      '',
      `Generated by \`npm run bench:provider\` on ${new Date().toISOString().slice(0, 10)}: Node ${process.version}, ${cpus().length} cores, Redis and the emulator on loopback; ${elapsed.toFixed(0)} s in all.`,
      '',
      settingsText(settings),
      '',
      '## Target: zero 429s and at least 95% of the limit',
      '',
      summary,
      '',
      '## Per emulator policy',
      '',
      ...groups.map((g) => `${scenarioTable(g.scenario, g.runs)}\n`),
      '![results](results.svg)',
      '',
    ].join('\n');
    writeFileSync(resolve(out, 'results.md'), md);
    writeFileSync(resolve(out, 'results.svg'), chartSvg(groups));
    console.log(`\nWrote ${resolve(out, 'results.md')} and results.svg`);
  }
}

main().catch((error) => {
  console.error(error);
  process.exit(1);
});
