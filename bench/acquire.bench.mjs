// `npm run bench`: the cost of acquire next to the cheapest possible one-round-trip call, how it
// changes with the number of requests in the window, and the Redis memory of one model. Every
// figure comes from one run against one Redis; compare the ratios, the absolute numbers move
// with the machine. Writes the tables to bench/results.md as well as to stdout.
//
// Settings (environment): REDIS_URL to use an existing Redis (else a throw-away redis-server is
// started), BENCH_ROUNDS (default 5), BENCH_ROUND_MS (default 1000).
import { randomBytes } from 'node:crypto';
import { writeFileSync, readFileSync } from 'node:fs';
import { cpus, totalmem } from 'node:os';
import { execFileSync } from 'node:child_process';
import { setMaxListeners } from 'node:events';
import { Redis } from 'ioredis';
import { RateLimiter, RedisConnectionManager } from '../dist/index.js';
import { benchRedis } from './redis-server.mjs';
import { closedLoop, fill, medianOf, sequential } from './measure.mjs';

const ROUNDS = Number(process.env.BENCH_ROUNDS ?? 5);
const ROUND_MS = Number(process.env.BENCH_ROUND_MS ?? 1000);
const BIG = 1e12; // the largest limit the library accepts: nothing ever waits
const WIDE = { tpm: BIG, rpm: BIG, windowSeconds: 60 };
const prefix = `bench${randomBytes(3).toString('hex')}`;

const redis = await benchRedis();
const admin = new Redis(redis.url);
const floorClient = new Redis(redis.url);
const manager = new RedisConnectionManager({ url: redis.url });
const quietLogger = { log: () => undefined, warn: (m) => console.warn(m), error: (m) => console.error(m) };
const progress = (message) => process.stderr.write(`[bench] ${message}\n`);
let modelCount = 0;
const limiter = (config) => new RateLimiter(manager, `m${modelCount++}`, config, { keyPrefix: prefix, logger: quietLogger });
const keysOf = (l) => ({ window: `{${prefix}:${l.model}}:w`, ring: `{${prefix}:${l.model}}:o` });

// ---- server statistics -------------------------------------------------------------------

async function info(section) {
  const text = await admin.info(section);
  return Object.fromEntries(
    text
      .split('\r\n')
      .filter((line) => line.includes(':'))
      .map((line) => [line.slice(0, line.indexOf(':')), line.slice(line.indexOf(':') + 1)]),
  );
}

async function serverCpuSeconds() {
  const cpu = await info('cpu');
  return Number(cpu.used_cpu_user) + Number(cpu.used_cpu_sys);
}

async function resetStats() {
  await admin.config('RESETSTAT');
}

/** usec_per_call of EVALSHA since the last reset, and the calls Lua made per EVALSHA. */
async function scriptStats() {
  const stats = await info('commandstats');
  const parse = (v) => Object.fromEntries(v.split(',').map((kv) => kv.split('=')));
  const evalsha = stats.cmdstat_evalsha ? parse(stats.cmdstat_evalsha) : { calls: '0', usec_per_call: 'NaN' };
  const calls = Number(evalsha.calls);
  let inner = 0;
  for (const [name, value] of Object.entries(stats)) {
    if (!name.startsWith('cmdstat_') || ['cmdstat_evalsha', 'cmdstat_info', 'cmdstat_config'].includes(name)) continue;
    inner += Number(parse(value).calls);
  }
  return {
    serverUsPerCall: Number(evalsha.usec_per_call),
    serverUs: Number(evalsha.usec ?? NaN),
    scriptCalls: calls,
    redisCallsPerScript: calls ? inner / calls : NaN,
  };
}

async function connectedClients() {
  return Number((await info('clients')).connected_clients);
}

/**
 * A closed-loop measurement with what it cost: client CPU (this process) and server CPU per op,
 * and the server's time inside the script per call.
 */
async function measured(op, callers) {
  await resetStats();
  const serverCpu0 = await serverCpuSeconds();
  const clientCpu0 = process.cpuUsage();
  const result = await closedLoop(op, { callers, durationMs: ROUND_MS });
  const clientCpu = process.cpuUsage(clientCpu0);
  const serverCpu = (await serverCpuSeconds()) - serverCpu0;
  const script = await scriptStats();
  const ops = result.ops || 1;
  // The CPU figures also cover the warm-up calls; both sides ran the same warm-up, so they compare.
  return {
    ...result,
    ...script,
    // Acquires that arrive together from one process share one script call.
    opsPerScript: script.scriptCalls ? result.ops / script.scriptCalls : NaN,
    serverUsPerOp: script.serverUs / ops,
    clientCpuUsPerOp: ((clientCpu.user + clientCpu.system) / ops) * (ROUND_MS / (ROUND_MS + 200)),
    serverCpuUsPerOp: ((serverCpu * 1e6) / ops) * (ROUND_MS / (ROUND_MS + 200)),
  };
}

// ---- a) throughput and latency against the floor -----------------------------------------

const floorSha = await floorClient.script('LOAD', 'return 1');
const floorOp = () => floorClient.evalsha(floorSha, 0);
const baselineClients = await connectedClients();
const throughputLimiter = limiter(WIDE);
const acquireOp = () => throughputLimiter.acquire({ tokens: 1 });
await throughputLimiter.acquire({ tokens: 1 });
// Beside the defaults, for diagnosis: the same limiter on a single connection.
const oneConnection = new RedisConnectionManager({ url: redis.url, maxConnections: 1, redisOptions: { connectionName: 'bench-one' } });
const oneConnectionLimiter = new RateLimiter(oneConnection, 'one', WIDE, { keyPrefix: prefix, logger: quietLogger });
const oneConnectionOp = () => oneConnectionLimiter.acquire({ tokens: 1 });
await oneConnectionLimiter.acquire({ tokens: 1 });

const SIDES = {
  1: [
    ['floor', floorOp],
    ['acquire', acquireOp],
  ],
  8: [
    ['floor', floorOp],
    ['acquire', acquireOp],
  ],
  64: [
    ['floor', floorOp],
    ['acquire', acquireOp],
    ['acquire, maxConnections 1', oneConnectionOp],
  ],
};
const sideBySide = {};
for (const callers of [1, 8, 64]) {
  const sides = SIDES[callers];
  const rounds = Object.fromEntries(sides.map(([what]) => [what, []]));
  for (let round = 0; round < ROUNDS; round++) {
    // Rotate which side goes first, so a drift in machine load favours none of them.
    for (let k = 0; k < sides.length; k++) {
      const [what, op] = sides[(round + k) % sides.length];
      rounds[what].push(await measured(op, callers));
    }
  }
  sideBySide[callers] = Object.fromEntries(sides.map(([what]) => [what, medianOf(rounds[what])]));
  const { floor, acquire } = sideBySide[callers];
  progress(`${callers} caller(s): floor ${Math.round(floor.opsPerSec)}/s, acquire ${Math.round(acquire.opsPerSec)}/s`);
}
const clientList = await admin.client('LIST');
const managerConnections =
  (await connectedClients()) - baselineClients - clientList.split('\n').filter((line) => line.includes('name=bench-one ')).length;
await oneConnection.close();

// ---- b) cost with 100 vs 20,000 requests in the window -----------------------------------

const COST_SAMPLES = 300;
async function costWith(inWindow) {
  const l = limiter(WIDE);
  await fill(() => l.acquire({ tokens: 1 }), inWindow);
  const status = await l.getStatus();
  await resetStats();
  const result = await sequential(() => l.acquire({ tokens: 1 }), COST_SAMPLES);
  const script = await scriptStats();
  return { ...result, ...script, serverUsPerCall: script.serverUs / script.scriptCalls, inWindow: status.requestsUsed };
}
const small = [];
const large = [];
for (let round = 0; round < ROUNDS; round++) {
  if (round % 2 === 0) {
    small.push(await costWith(100));
    large.push(await costWith(20_000));
  } else {
    large.push(await costWith(20_000));
    small.push(await costWith(100));
  }
}
const cost = { small: medianOf(small), large: medianOf(large) };
progress(`server time per acquire: ${cost.small.serverUsPerCall} µs with 100, ${cost.large.serverUsPerCall} µs with 20,000 in the window`);

// ---- c) Redis memory of one model --------------------------------------------------------

async function memoryOf(l) {
  const { window, ring } = keysOf(l);
  const keys = [];
  let cursor = '0';
  do {
    const [next, found] = await admin.scan(cursor, 'MATCH', `{${prefix}:${l.model}}:*`, 'COUNT', 1000);
    cursor = next;
    keys.push(...found);
  } while (cursor !== '0');
  let bytes = 0;
  for (const key of keys) bytes += Number(await admin.memory('USAGE', key, 'SAMPLES', 0));
  const [windowBytes, ringBytes] = await Promise.all([window, ring].map(async (k) => Number((await admin.memory('USAGE', k, 'SAMPLES', 0)) ?? 0)));
  return {
    bytes,
    windowBytes,
    windowFields: await admin.hlen(window),
    windowEncoding: (await admin.object('ENCODING', window)) ?? '-',
    ringBytes,
    ringEntries: await admin.zcard(ring),
    ringEncoding: (await admin.object('ENCODING', ring)) ?? '-',
  };
}

const memory = [];
const steady = limiter(WIDE);
let acquired = 0;
for (const target of [100, 20_000, 100_000]) {
  await fill(() => steady.acquire({ tokens: 1 }), target - acquired);
  acquired = target;
  const inWindow = (await steady.getStatus()).requestsUsed;
  progress(`memory after ${target} acquires`);
  memory.push({ label: `${target.toLocaleString('en-US')} acquires in the window (${inWindow.toLocaleString('en-US')} counted)`, ...(await memoryOf(steady)) });
}

/** Requests stored in the buckets of `l` from bucket `from` on. */
async function requestsFrom(l, from) {
  const hash = await admin.hgetall(keysOf(l).window);
  let requests = 0;
  for (const [field, value] of Object.entries(hash)) {
    if (!/^-?\d+$/.test(field)) continue;
    // Field c holds buckets c * 10 .. c * 10 + 9, as "t:i:o:r" entries joined by ','.
    value.split(',').forEach((entry, k) => {
      if (entry !== '' && Number(field) * 10 + k >= from) requests += Number(entry.split(':')[3]);
    });
  }
  return requests;
}

/** Waits until `count` requests are stored for `l` from bucket `from` on. */
async function stored(l, from, count) {
  const until = Date.now() + 30_000;
  for (;;) {
    const now = await requestsFrom(l, from);
    if (now >= count) return;
    if (Date.now() > until) throw new Error(`only ${now} of ${count} acquires reached Redis within 30 s`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

/**
 * Parks `count` acquires in the queue of `l` (window `windowMs`); resolves, once all are stored,
 * with a function that aborts them.
 */
async function park(l, count, windowMs) {
  const controller = new AbortController();
  setMaxListeners(count + 1, controller.signal);
  const [seconds, micros] = await admin.time();
  // The bucket of the server time now (a window holds 100 buckets).
  const from = Math.floor(((Number(seconds) * 1000 + Math.floor(Number(micros) / 1000)) * 100) / windowMs);
  const waiting = Array.from({ length: count }, () => l.acquire({ tokens: 1 }, { signal: controller.signal }).catch(() => undefined));
  await stored(l, from, count);
  return async () => {
    controller.abort();
    await Promise.all(waiting);
  };
}

// A burst: 1,000 callers at once behind rpm 10 (60 s window) share few buckets, ten per bucket.
const burst = limiter({ rpm: 10, windowSeconds: 60 });
const abortBurst = await park(burst, 1000, 60_000);
memory.push({ label: '1,000 queued at once (rpm 10, 60 s window)', ...(await memoryOf(burst)) });
await abortBurst();
memory.push({ label: 'the same after all 1,000 were aborted (released)', ...(await memoryOf(burst)) });

// Traffic at the limit, one request per bucket for a window, then 1,000 more: the queue copies
// the window's pattern, one request per bucket, so it holds about one bucket field per request.
const spread = limiter({ rpm: 100, windowSeconds: 1 });
const paced = [];
for (let i = 0; i < 100; i++) {
  paced.push(spread.acquire({ tokens: 1 }, { maxWaitMs: 0 }).catch(() => undefined));
  await new Promise((r) => setTimeout(r, 10));
}
await Promise.all(paced);
const abortSpread = await park(spread, 1000, 1000);
memory.push({ label: '1,000 queued behind paced traffic (rpm 100, 1 s window)', ...(await memoryOf(spread)) });
await abortSpread();

// ---- report ------------------------------------------------------------------------------

const redisVersion = (await info('server')).redis_version;
const ioredisVersion = JSON.parse(readFileSync(new URL('../node_modules/ioredis/package.json', import.meta.url), 'utf8')).version;
let commit = 'unknown';
try {
  commit = execFileSync('git', ['rev-parse', '--short', 'HEAD'], { encoding: 'utf8' }).trim();
  const dirty = execFileSync('git', ['status', '--porcelain', '--', 'lib', 'lua'], { encoding: 'utf8' }).trim();
  if (dirty) commit += ' (lib/ or lua/ modified)';
} catch {
  // Not a git checkout: the commit stays unknown.
}

const int = (n) => (Number.isFinite(n) ? Math.round(n).toLocaleString('en-US') : 'n/a');
const us = (n) => (Number.isFinite(n) ? `${n < 100 ? n.toFixed(1) : Math.round(n)} µs` : 'n/a');
const ratio = (n) => (Number.isFinite(n) ? `${n.toFixed(2)}x` : 'n/a');
const kb = (n) => `${(n / 1024).toFixed(1)} KB`;
const verdict = (ok) => (ok ? 'met' : '**missed**');

const lines = [];
const out = (s = '') => lines.push(s);
out('# Benchmark: acquire');
out();
out(
  `${new Date().toISOString().slice(0, 10)}, commit ${commit}; ${cpus().length} cores (${cpus()[0]?.model.trim()}), ${Math.round(totalmem() / 2 ** 30)} GB; ` +
    `Node ${process.versions.node}, ioredis ${ioredisVersion}, Redis ${redisVersion} on loopback${redis.owned ? ' (started by the benchmark)' : ''}.`,
);
out(
  `Medians of ${ROUNDS} rounds of ${ROUND_MS} ms, the order of floor and acquire rounds rotated. \`acquire\` uses the ` +
    `RedisConnectionManager defaults (maxConnections 10): the 64 callers used ${managerConnections} connection(s); the floor used 1 ioredis connection.`,
);
out();
out('## a) Throughput and latency, acquire next to the floor (EVALSHA of `return 1`)');
out();
out('| callers | what | ops/s | p50 | p99 | acquires per script call | script time per op | Redis calls per script | server CPU per op | client CPU per op |');
out('|---|---|---|---|---|---|---|---|---|---|');
for (const callers of [1, 8, 64]) {
  const { floor } = sideBySide[callers];
  for (const [what, r] of Object.entries(sideBySide[callers])) {
    out(
      `| ${callers} | ${what} | ${int(r.opsPerSec)} | ${us(r.p50Us)} | ${us(r.p99Us)} | ${r.opsPerScript.toFixed(1)} | ${us(r.serverUsPerOp)} | ${r.redisCallsPerScript.toFixed(1)} | ${us(r.serverCpuUsPerOp)} | ${us(r.clientCpuUsPerOp)} |`,
    );
  }
  for (const [what, r] of Object.entries(sideBySide[callers])) {
    if (what === 'floor') continue;
    const label = what === 'acquire' ? '**acquire / floor**' : `${what} / floor`;
    const ops = what === 'acquire' ? `**${ratio(r.opsPerSec / floor.opsPerSec)}**` : ratio(r.opsPerSec / floor.opsPerSec);
    out(`| ${callers} | ${label} | ${ops} | ${ratio(r.p50Us / floor.p50Us)} | ${ratio(r.p99Us / floor.p99Us)} | | | | | |`);
  }
}
out();
out(
  'Acquires per script call: a limiter sends the acquires that arrive while its calls are in flight together, in one ' +
    'script call. Script time per op: EVALSHA usec (INFO commandstats) divided by the ops. Server and client CPU per op: the redis-server process ' +
    '(INFO cpu) and this process (process.cpuUsage) over the round, divided by its calls. Both run on the same 2 cores, so ' +
    'their sum per op bounds throughput.',
);
out();
out('## b) Cost of acquire with 100 vs 20,000 requests in the window (1 caller, 60 s window)');
out();
out('| requests in the window | acquires/s | p50 | p99 | server time per call |');
out('|---|---|---|---|---|');
out(`| ${int(cost.small.inWindow)} | ${int(cost.small.opsPerSec)} | ${us(cost.small.p50Us)} | ${us(cost.small.p99Us)} | ${us(cost.small.serverUsPerCall)} |`);
out(`| ${int(cost.large.inWindow)} | ${int(cost.large.opsPerSec)} | ${us(cost.large.p50Us)} | ${us(cost.large.p99Us)} | ${us(cost.large.serverUsPerCall)} |`);
out(
  `| **20,000 / 100** | ${ratio(cost.small.opsPerSec / cost.large.opsPerSec)} (time per acquire) | ${ratio(cost.large.p50Us / cost.small.p50Us)} | ${ratio(cost.large.p99Us / cost.small.p99Us)} | **${ratio(cost.large.serverUsPerCall / cost.small.serverUsPerCall)}** |`,
);
out();
out('## c) Redis memory of one model (MEMORY USAGE of each of its keys, summed)');
out();
out('| state | total | window hash: bytes, fields, encoding | ops ring: bytes, entries, encoding |');
out('|---|---|---|---|');
for (const m of memory) {
  out(`| ${m.label} | ${kb(m.bytes)} | ${kb(m.windowBytes)}, ${m.windowFields}, ${m.windowEncoding} | ${kb(m.ringBytes)}, ${m.ringEntries}, ${m.ringEncoding} |`);
}
out();
const throughputRatio = sideBySide[64].acquire.opsPerSec / sideBySide[64].floor.opsPerSec;
const costRatio = cost.large.serverUsPerCall / cost.small.serverUsPerCall;
const costRatioClient = cost.large.p50Us / cost.small.p50Us;
const maxMemory = Math.max(...memory.map((m) => m.bytes));
out('## Targets');
out();
out('| target | measured | |');
out('|---|---|---|');
out(`| 64-caller throughput at least 0.7x the floor | ${ratio(throughputRatio)} | ${verdict(throughputRatio >= 0.7)} |`);
out(
  `| acquire with 20,000 in the window within 1.2x of 100 | ${ratio(costRatio)} server time, ${ratio(costRatioClient)} p50 | ${verdict(costRatio <= 1.2 && costRatioClient <= 1.2)} |`,
);
out(`| memory of one model under 64 KB at any traffic | at most ${kb(maxMemory)} | ${verdict(maxMemory < 64 * 1024)} |`);

const report = lines.join('\n') + '\n';
process.stdout.write(report);
writeFileSync(new URL('./results.md', import.meta.url), report);

// ---- clean up ----------------------------------------------------------------------------

let cursor = '0';
do {
  const [next, found] = await admin.scan(cursor, 'MATCH', `{${prefix}:*`, 'COUNT', 1000);
  cursor = next;
  if (found.length) await admin.del(...found);
} while (cursor !== '0');
await manager.close();
floorClient.disconnect();
admin.disconnect();
await redis.stop();
