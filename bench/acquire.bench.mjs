// `npm run bench`: what the live queue costs. Acquire next to the cheapest possible
// one-round-trip call; the Redis CPU of a whole LLM call (acquire + adjust) next to that call and
// to rate-limiter-flexible; what one admission costs with 100 vs 10,000 waiters queued; the Redis
// memory of one model; and how much of a refunded reservation later calls reuse. Every figure
// comes from one run against one Redis; compare the ratios, the absolute numbers move with the
// machine. Writes the tables to bench/results.md as well as to stdout.
//
// Settings (environment): REDIS_URL to use an existing Redis (else a throw-away redis-server is
// started; beside REDIS_URL, BENCH_REDIS_PID names its process for the CPU figures),
// BENCH_ROUNDS (default 5), BENCH_ROUND_MS (default 1000), BENCH_REUSE_WINDOWS (steady windows
// of the refund-reuse run, default 4).
import { randomBytes } from 'node:crypto';
import { writeFileSync, readFileSync } from 'node:fs';
import { cpus, loadavg, totalmem } from 'node:os';
import { execFileSync } from 'node:child_process';
import { setMaxListeners } from 'node:events';
import { Redis } from 'ioredis';
import { RateLimiterRedis } from 'rate-limiter-flexible';
import { RateLimiter, RedisConnectionManager } from '../dist/esm/index.js';
import { loadScript } from '../dist/esm/redis/scripts.js';
import { benchRedis } from './redis-server.mjs';
import { closedLoop, fill, median, medianOf, processCpuUs, sequential } from './measure.mjs';

const ROUNDS = Number(process.env.BENCH_ROUNDS ?? 5);
const ROUND_MS = Number(process.env.BENCH_ROUND_MS ?? 1000);
const REUSE_WINDOWS = Number(process.env.BENCH_REUSE_WINDOWS ?? 4);
const BIG = 1e12; // the largest limit the library accepts: nothing ever waits
const prefix = `bench${randomBytes(3).toString('hex')}`;

const loadAtStart = loadavg()[0];
const redis = await benchRedis();
const admin = new Redis(redis.url);
const floorClient = new Redis(redis.url);
const peerClient = new Redis(redis.url);
const manager = new RedisConnectionManager({ url: redis.url });
const quietLogger = { log: () => undefined, warn: (m) => console.warn(m), error: (m) => console.error(m) };
const progress = (message) => process.stderr.write(`[bench] ${message}\n`);
let modelCount = 0;
const limiter = (config) => new RateLimiter(manager, `m${modelCount++}`, config, { keyPrefix: prefix, logger: quietLogger });
const tagOf = (model) => `{${prefix}:${model}}`;
const serverCpu = Number.isFinite(processCpuUs(redis.pid));
if (!serverCpu) progress('no redis-server process to read (set BENCH_REDIS_PID beside REDIS_URL): the Redis CPU figures are left out');

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

async function resetStats() {
  await admin.config('RESETSTAT');
}

/**
 * Script calls since the last reset, their time (usec of EVALSHA and EVAL, which includes the
 * commands they ran), and the commands scripts ran per script call. Not CPU: Redis counts a
 * command run by a script both in the script's time and in its own entry.
 */
async function scriptStats() {
  const stats = await info('commandstats');
  const parse = (v) => Object.fromEntries(v.split(',').map((kv) => kv.split('=')));
  let scriptCalls = 0;
  let scriptUs = 0;
  let inner = 0;
  for (const [name, value] of Object.entries(stats)) {
    if (!name.startsWith('cmdstat_') || ['cmdstat_info', 'cmdstat_config'].includes(name)) continue;
    const { calls, usec } = parse(value);
    if (name === 'cmdstat_evalsha' || name === 'cmdstat_eval') {
      scriptCalls += Number(calls);
      scriptUs += Number(usec);
    } else {
      inner += Number(calls);
    }
  }
  return { scriptCalls, scriptUs, redisCallsPerScript: scriptCalls ? inner / scriptCalls : NaN };
}

async function connectedClients() {
  return Number((await info('clients')).connected_clients);
}

const cpuNow = () => {
  const own = process.cpuUsage();
  return [processCpuUs(redis.pid), own.user + own.system];
};

/**
 * A closed-loop measurement with what it cost: CPU of the redis-server process (/proc) and of
 * this process over the recorded calls, per op; script calls per op and their server time.
 */
async function measured(op, callers) {
  await resetStats();
  const { probed, ...result } = await closedLoop(op, { callers, durationMs: ROUND_MS, probe: cpuNow });
  const script = await scriptStats();
  const [[server0, client0], [server1, client1]] = probed;
  const ops = result.ops || 1;
  // Script statistics cover every call of the round, warm-up included; CPU only the recorded ones.
  return {
    ...result,
    ...script,
    scriptsPerOp: script.scriptCalls / result.calls,
    opsPerScript: result.calls / script.scriptCalls,
    scriptUsPerOp: script.scriptUs / result.calls,
    serverCpuUsPerOp: (server1 - server0) / ops,
    clientCpuUsPerOp: (client1 - client0) / ops,
  };
}

/** Medians over ROUNDS rounds of each side at each caller count, the order of sides rotated. */
async function sideBySide(sidesByCallers, label) {
  const out = {};
  for (const [callers, sides] of Object.entries(sidesByCallers)) {
    const rounds = Object.fromEntries(sides.map(([what]) => [what, []]));
    for (let round = 0; round < ROUNDS; round++) {
      // Rotate which side goes first, so a drift in machine load favours none of them.
      for (let k = 0; k < sides.length; k++) {
        const [what, op] = sides[(round + k) % sides.length];
        rounds[what].push(await measured(op, Number(callers)));
      }
    }
    out[callers] = Object.fromEntries(sides.map(([what]) => [what, medianOf(rounds[what])]));
    // Each side's p50 over the floor's in the same round, the median over the rounds: a drift in
    // the machine's speed between rounds weighs on both sides of a ratio alike.
    const floor = rounds.floor;
    for (const [what] of sides) {
      if (floor && what !== 'floor') out[callers][what].p50PerRound = median(rounds[what].map((r, k) => r.p50Us / floor[k].p50Us));
    }
    progress(
      `${label}, ${callers} caller(s): ${sides.map(([what]) => `${what} ${Math.round(out[callers][what].opsPerSec)}/s`).join(', ')}`,
    );
  }
  return out;
}

// ---- a) acquire throughput and latency against the floor ---------------------------------

const floorSha = await floorClient.script('LOAD', 'return 1');
const floorOp = () => floorClient.evalsha(floorSha, 0);
const baselineClients = await connectedClients();
// A 1 s window: records of acquires never settled are kept a window and 10 s, and this section
// makes millions of them.
const ACQUIRE_ONLY = { tpm: BIG, rpm: BIG, windowSeconds: 1 };
const throughputLimiter = limiter(ACQUIRE_ONLY);
const acquireOp = () => throughputLimiter.acquire({ tokens: 1 });
await throughputLimiter.acquire({ tokens: 1 });
// Beside the defaults, for diagnosis: the same limiter on a single connection.
const oneConnection = new RedisConnectionManager({ url: redis.url, maxConnections: 1, redisOptions: { connectionName: 'bench-one' } });
const oneConnectionLimiter = new RateLimiter(oneConnection, 'one', ACQUIRE_ONLY, { keyPrefix: prefix, logger: quietLogger });
const oneConnectionOp = () => oneConnectionLimiter.acquire({ tokens: 1 });
await oneConnectionLimiter.acquire({ tokens: 1 });

const throughput = await sideBySide(
  {
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
  },
  'acquire',
);
const clientList = await admin.client('LIST');
const managerConnections =
  (await connectedClients()) - baselineClients - clientList.split('\n').filter((line) => line.includes('name=bench-one ')).length;
await oneConnection.close();

// ---- b) Redis CPU per LLM call: acquire + adjust, the floor, rate-limiter-flexible --------

// A 60 s window as most providers have; every call settles, so records end within ms.
const llmLimiter = limiter({ tpm: BIG, rpm: BIG, windowSeconds: 60 });
const RESERVED = { inputTokens: 10, outputTokens: 200 };
const ACTUAL = { actualOutput: 20 };
const llmOp = async () => {
  const { recordId } = await llmLimiter.acquire(RESERVED);
  await llmLimiter.adjust(recordId, ACTUAL);
};
{
  const { recordId } = await llmLimiter.acquire(RESERVED);
  const adjusted = await llmLimiter.adjust(recordId, ACTUAL);
  if (adjusted.status !== 'applied') throw new Error(`an adjust of the LLM-call side said '${adjusted.status}', not 'applied'`);
}
// The peer: a fixed-window counter, charged the reservation and given back what was not used.
const peer = new RateLimiterRedis({ storeClient: peerClient, keyPrefix: `${prefix}:peer`, points: BIG, duration: 60 });
const peerOp = async () => {
  await peer.consume('model', RESERVED.inputTokens + RESERVED.outputTokens);
  await peer.reward('model', RESERVED.outputTokens - ACTUAL.actualOutput);
};
await peerOp();

const LLM_SIDES = [
  ['floor (1 EVALSHA)', floorOp],
  ['acquire + adjust', llmOp],
  ['rate-limiter-flexible consume + reward', peerOp],
];
const llmCalls = await sideBySide({ 1: LLM_SIDES, 64: LLM_SIDES }, 'LLM call');

// ---- c) one admission with 100 vs 10,000 waiters queued ---------------------------------

// lua/queue.lua called directly, on a clock the calls give (ARGV 15, as the differential tests
// do), so that no lease or deadline runs out while the queue is filled: requests limit 1 in a
// 60 s window, one reservation admitted, n waiting behind it. Each timed call releases the
// admitted one and enqueues one more at the tail; its admit step admits the head. So every call
// is one release, one enqueue and one admission, and the queue stays n long.
const queueSha = await admin.script('LOAD', loadScript('queue'));
const QUEUE_CLOCK = Date.now();
const QUEUE_HEAD = [['w', 60_000, 100, 0, 0, 0, 0, 1, 0, 0, 10_000, 5_000, 256, QUEUE_CLOCK].join('|'), ''];
const queueKeys = (model) => ['w', 'q', 'r', 'x', 'o'].map((k) => `${tagOf(model)}:${k}`);
const waiter = (op) => ['A', op, 'owner', 0, 0, 0, 1, -1, -1];
// The script's reply is one string, its fields joined by '|'.
const queueCall = async (keys, commands) =>
  (await admin.evalsha(queueSha, 5, ...keys, ...QUEUE_HEAD, commands.length, ...commands.flat())).split('|');

async function queueOf(depth) {
  const model = `queue${depth}`;
  const keys = queueKeys(model);
  const first = await queueCall(keys, [waiter('h')]);
  // The reply: now, next check, head's owner, admitted count (0), then the acquire's state.
  if (first[4] !== 'admitted') throw new Error(`the first reservation of ${model} was not admitted: ${first.join(' ')}`);
  let next = 0;
  for (let at = 0; at < depth; at += 1000) {
    const batch = Array.from({ length: Math.min(1000, depth - at) }, () => waiter(`w${next++}`));
    await queueCall(keys, batch);
  }
  const queued = await admin.zcard(keys[1]);
  if (queued !== depth) throw new Error(`${queued} waiters queued for ${model}, not ${depth}`);
  return { keys, holder: 'h', next, depth };
}

const ADMISSIONS = 500;
async function admissionCost(queue) {
  await resetStats();
  const result = await sequential(async () => {
    const r = await queueCall(queue.keys, [['S', queue.holder, 'release', 1, 0, 0, 0], waiter(`w${queue.next++}`)]);
    // now, next check, head's owner, admitted count, then the admitted ids and slots
    if (r[3] !== '1') throw new Error(`a release with ${queue.depth} queued admitted ${r[3]} waiters, not 1`);
    queue.holder = r[4];
  }, ADMISSIONS);
  const script = await scriptStats();
  return { ...result, serverUsPerCall: script.scriptUs / script.scriptCalls, redisCallsPerScript: script.redisCallsPerScript };
}
const shallow = await queueOf(100);
const deep = await queueOf(10_000);
const shallowRounds = [];
const deepRounds = [];
for (let round = 0; round < ROUNDS; round++) {
  const order = round % 2 === 0 ? [shallow, deep] : [deep, shallow];
  for (const queue of order) (queue === shallow ? shallowRounds : deepRounds).push(await admissionCost(queue));
}
const admission = { shallow: medianOf(shallowRounds), deep: medianOf(deepRounds) };
progress(
  `server time per admission: ${admission.shallow.serverUsPerCall.toFixed(1)} µs with 100, ${admission.deep.serverUsPerCall.toFixed(1)} µs with 10,000 queued`,
);

// ---- d) Redis memory of one model --------------------------------------------------------

const KEY_KINDS = [
  ['w', 'state'],
  ['b', 'state'],
  ['q', 'queue'],
  ['r', 'records'],
  ['x', 'expiry'],
  ['o', 'owners'],
];

async function memoryOf(l) {
  const parts = { state: 0, queue: 0, records: 0, expiry: 0, owners: 0 };
  const entries = {};
  let bytes = 0;
  for (const [suffix, part] of KEY_KINDS) {
    const key = `${tagOf(l.model)}:${suffix}`;
    const used = Number((await admin.memory('USAGE', key, 'SAMPLES', 0)) ?? 0);
    parts[part] += used;
    bytes += used;
    const type = await admin.type(key);
    if (type === 'zset') entries[part] = await admin.zcard(key);
    else if (type === 'hash' && part === 'records') entries[part] = await admin.hlen(key);
  }
  return { bytes, parts, entries };
}

/** Polls `check` until it holds, for at most 60 s. */
async function until(what, check) {
  const deadline = Date.now() + 60_000;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`${what} did not happen within 60 s`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

const memory = [];
const settled = limiter({ tpm: BIG, rpm: BIG, windowSeconds: 60 });
const settleOne = async () => {
  const { recordId } = await settled.acquire(RESERVED);
  await settled.adjust(recordId, ACTUAL);
};
let done = 0;
for (const target of [100, 10_000]) {
  await fill(settleOne, target - done);
  done = target;
  progress(`memory after ${target} settled calls`);
  memory.push({
    label: `${target.toLocaleString('en-US')} calls acquired and adjusted within the last 10 s`,
    ...(await memoryOf(settled)),
  });
}

const WAITERS = 10_000;
const crowded = limiter({ rpm: 1, windowSeconds: 60 });
await crowded.acquire({ tokens: 1 });
memory.push({ label: 'one admitted, nothing waiting (rpm 1, 60 s window)', ...(await memoryOf(crowded)) });
const controller = new AbortController();
setMaxListeners(WAITERS + 1, controller.signal);
const waiting = Array.from({ length: WAITERS }, () => crowded.acquire({ tokens: 1 }, { signal: controller.signal }).catch(() => undefined));
await until(`${WAITERS} waiters queued`, async () => (await crowded.getStatus()).queueDepth === WAITERS);
progress(`memory with ${WAITERS} waiters`);
const withWaiters = { label: `${WAITERS.toLocaleString('en-US')} waiters queued behind it`, ...(await memoryOf(crowded)) };
memory.push(withWaiters);
controller.abort();
await Promise.all(waiting);
await until('every waiter released', async () => (await crowded.getStatus()).queueDepth === 0);
memory.push({
  label: `the same after all ${WAITERS.toLocaleString('en-US')} were aborted (tombstones for 10 s)`,
  ...(await memoryOf(crowded)),
});
const bytesPerWaiter = (withWaiters.bytes - memory[2].bytes) / WAITERS;

// ---- e) refund reuse: calls per window next to a perfect limiter -------------------------

// Output-bound calls: each reserves 200 output tokens, takes 50 ms, and uses 20. A perfect
// sliding window counts each call at 20 for the window and at 200 for the 50 ms it is out; a
// perfect token bucket refills 20 per call.
const REUSE = { callers: 64, reserve: 200, actual: 20, callMs: 50, outputTpm: 6000, windowMs: 3000 };
const perfect = {
  'sliding-window': REUSE.outputTpm / (REUSE.actual + ((REUSE.reserve - REUSE.actual) * REUSE.callMs) / REUSE.windowMs),
  'token-bucket': REUSE.outputTpm / REUSE.actual,
};
// The perfect sliding window above spreads the calls evenly over the window. Callers that admit
// as soon as there is room fill a window in a burst at its start instead, and after the burst no
// call is out: then a window holds every call at 20 but the last, still out at 200. A token
// bucket refills evenly either way.
const burstBound = {
  'sliding-window': Math.floor((REUSE.outputTpm - REUSE.reserve) / REUSE.actual) + 1,
  'token-bucket': REUSE.outputTpm / REUSE.actual,
};

async function reuseRun(algorithm) {
  const l = limiter({ outputTpm: REUSE.outputTpm, windowSeconds: REUSE.windowMs / 1000, algorithm });
  const stop = new AbortController();
  setMaxListeners(REUSE.callers + 1, stop.signal);
  const slots = [];
  const statuses = {};
  const loop = async () => {
    while (!stop.signal.aborted) {
      let admitted;
      try {
        admitted = await l.acquire({ inputTokens: 0, outputTokens: REUSE.reserve }, { signal: stop.signal });
      } catch (error) {
        if (stop.signal.aborted) return;
        throw error;
      }
      slots.push(admitted.slotTime);
      // The LLM call.
      await new Promise((r) => setTimeout(r, REUSE.callMs));
      const { status } = await l.adjust(admitted.recordId, { actualOutput: REUSE.actual });
      statuses[status] = (statuses[status] ?? 0) + 1;
    }
  };
  const loops = Array.from({ length: REUSE.callers }, loop);
  await until('a first admission', async () => slots.length > 0);
  await new Promise((r) => setTimeout(r, (REUSE_WINDOWS + 1) * REUSE.windowMs + 200));
  stop.abort();
  await Promise.all(loops);
  const start = Math.min(...slots);
  const windows = [];
  for (let k = 1; k <= REUSE_WINDOWS; k++) {
    const from = start + k * REUSE.windowMs;
    windows.push(slots.filter((t) => t >= from && t < from + REUSE.windowMs).length);
  }
  const first = slots.filter((t) => t < start + REUSE.windowMs).length;
  return {
    algorithm,
    first,
    windows,
    mean: windows.reduce((a, b) => a + b, 0) / windows.length,
    perfect: perfect[algorithm],
    bound: burstBound[algorithm],
    statuses,
  };
}
const reuse = [];
for (const algorithm of ['sliding-window', 'token-bucket']) {
  reuse.push(await reuseRun(algorithm));
  const r = reuse.at(-1);
  progress(`refund reuse, ${algorithm}: ${r.windows.join(', ')} calls per window (perfect ${Math.round(r.perfect)})`);
}

// ---- report ------------------------------------------------------------------------------

const redisVersion = (await info('server')).redis_version;
const ioredisVersion = JSON.parse(readFileSync(new URL('../node_modules/ioredis/package.json', import.meta.url), 'utf8')).version;
const peerVersion = JSON.parse(
  readFileSync(new URL('../node_modules/rate-limiter-flexible/package.json', import.meta.url), 'utf8'),
).version;
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
const fixed = (n, digits = 1) => (Number.isFinite(n) ? n.toFixed(digits) : 'n/a');
const kb = (n) => `${(n / 1024).toFixed(1)} KB`;
const verdict = (ok) => (ok ? 'met' : '**missed**');

const lines = [];
const out = (s = '') => lines.push(s);
out('# Benchmark: acquire');
out();
out(
  `${new Date().toISOString().slice(0, 10)}, commit ${commit}; ${cpus().length} cores (${cpus()[0]?.model.trim()}), ${Math.round(totalmem() / 2 ** 30)} GB; ` +
    `Node ${process.versions.node}, ioredis ${ioredisVersion}, Redis ${redisVersion} on loopback${redis.owned ? ' (started by the benchmark)' : ''}, ` +
    `rate-limiter-flexible ${peerVersion}. Load average (1 min) ${loadAtStart.toFixed(1)} at the start, ${loadavg()[0].toFixed(1)} at the end: ` +
    `above the ${cpus().length} cores, other work shared the machine and every figure is noisy.`,
);
out(
  `Medians of ${ROUNDS} rounds of ${ROUND_MS} ms, the order of the sides rotated. \`acquire\` uses the ` +
    `RedisConnectionManager defaults (maxConnections 10): the 64 callers used ${managerConnections} connection(s); the floor used 1 ioredis connection.`,
);
out();
out('## a) Acquire throughput and latency, next to the floor (EVALSHA of `return 1`)');
out();
out('| callers | what | ops/s | p50 | p99 | acquires per script call | Redis calls per script | Redis CPU per op | client CPU per op |');
out('|---|---|---|---|---|---|---|---|---|');
for (const [callers, sides] of Object.entries(throughput)) {
  const { floor } = sides;
  for (const [what, r] of Object.entries(sides)) {
    const perScript = what === 'floor' ? '-' : fixed(r.opsPerScript);
    out(
      `| ${callers} | ${what} | ${int(r.opsPerSec)} | ${us(r.p50Us)} | ${us(r.p99Us)} | ${perScript} | ${fixed(r.redisCallsPerScript)} | ${us(r.serverCpuUsPerOp)} | ${us(r.clientCpuUsPerOp)} |`,
    );
  }
  for (const [what, r] of Object.entries(sides)) {
    if (what === 'floor') continue;
    const label = what === 'acquire' ? '**acquire / floor**' : `${what} / floor`;
    const ops = what === 'acquire' ? `**${ratio(r.opsPerSec / floor.opsPerSec)}**` : ratio(r.opsPerSec / floor.opsPerSec);
    out(
      `| ${callers} | ${label} | ${ops} | ${ratio(r.p50Us / floor.p50Us)} | ${ratio(r.p99Us / floor.p99Us)} | | | ${ratio(r.serverCpuUsPerOp / floor.serverCpuUsPerOp)} | ${ratio(r.clientCpuUsPerOp / floor.clientCpuUsPerOp)} |`,
    );
  }
}
out();
out(
  'Acquires only, never settled, in a 1 s window (a record stays a window and 10 s). Acquires per script call: a limiter sends the acquires that arrive while its calls are in flight together, in one ' +
    'script call. Redis calls per script: the commands the scripts ran (INFO commandstats), per script call. Redis CPU per op: user + system time of the redis-server process ' +
    '(/proc/<pid>/stat) over the recorded calls, divided by them; client CPU per op: the same of this process (process.cpuUsage). Both run on the same 2 cores, so ' +
    "their sum per op bounds throughput. The ratios in this table are of the medians; the lone acquire's target (below) takes each round's p50 over the floor's in the " +
    'same round, and the median of those.',
);
out();
out('## b) Redis CPU per LLM call: acquire + adjust, next to the floor and to rate-limiter-flexible');
out();
out(
  '| callers | what | LLM calls/s | p50 of the call | script calls per LLM call | Redis calls per script | **Redis CPU per LLM call** | / floor | client CPU per LLM call | / floor |',
);
out('|---|---|---|---|---|---|---|---|---|---|');
for (const [callers, sides] of Object.entries(llmCalls)) {
  const floor = sides['floor (1 EVALSHA)'];
  for (const [what, r] of Object.entries(sides)) {
    out(
      `| ${callers} | ${what} | ${int(r.opsPerSec)} | ${us(r.p50Us)} | ${fixed(r.scriptsPerOp, 2)} | ${fixed(r.redisCallsPerScript)} | **${us(r.serverCpuUsPerOp)}** | ${ratio(r.serverCpuUsPerOp / floor.serverCpuUsPerOp)} | ${us(r.clientCpuUsPerOp)} | ${ratio(r.clientCpuUsPerOp / floor.clientCpuUsPerOp)} |`,
    );
  }
  const ours = sides['acquire + adjust'];
  const peerSide = sides['rate-limiter-flexible consume + reward'];
  out(
    `| ${callers} | acquire + adjust / rate-limiter-flexible | ${ratio(ours.opsPerSec / peerSide.opsPerSec)} | ${ratio(ours.p50Us / peerSide.p50Us)} | | | ${ratio(ours.serverCpuUsPerOp / peerSide.serverCpuUsPerOp)} | | ${ratio(ours.clientCpuUsPerOp / peerSide.clientCpuUsPerOp)} | |`,
  );
}
out();
out(
  `An LLM call here: acquire of ${RESERVED.inputTokens} input and ${RESERVED.outputTokens} output tokens, then adjust to ${ACTUAL.actualOutput} output tokens (60 s window, limits ` +
    'that never hold anyone back); rate-limiter-flexible `RateLimiterRedis` (60 s fixed window): consume of the reservation, reward of what was not used; ' +
    'the floor: one EVALSHA of `return 1`. Every side on one key (one model). Redis CPU is read from /proc/<pid>/stat of the redis-server ' +
    '(user + system, clock ticks), not from INFO commandstats, which counts a command a script runs twice.',
);
out();
out('## c) One admission with 100 vs 10,000 waiters queued (lua/queue.lua called directly)');
out();
out('| waiters queued | calls/s | p50 | p99 | server time per call | Redis calls per script |');
out('|---|---|---|---|---|---|');
for (const [depth, r] of [
  [100, admission.shallow],
  [10_000, admission.deep],
]) {
  out(
    `| ${int(depth)} | ${int(r.opsPerSec)} | ${us(r.p50Us)} | ${us(r.p99Us)} | ${us(r.serverUsPerCall)} | ${fixed(r.redisCallsPerScript)} |`,
  );
}
out(
  `| **10,000 / 100** | ${ratio(admission.shallow.opsPerSec / admission.deep.opsPerSec)} (time per call) | ${ratio(admission.deep.p50Us / admission.shallow.p50Us)} | ${ratio(admission.deep.p99Us / admission.shallow.p99Us)} | **${ratio(admission.deep.serverUsPerCall / admission.shallow.serverUsPerCall)}** | |`,
);
out();
out(
  `Each call (${ADMISSIONS} a round, one after another) releases the admitted reservation, enqueues one more waiter at the tail and, in its admit step, ` +
    'admits the head: one release, one enqueue, one admission, the queue staying as long. Requests limit 1, 60 s window, the clock given by the call. ' +
    'Server time: usec of EVALSHA in INFO commandstats (the script with the commands it ran), per call.',
);
out();
out('## d) Redis memory of one model (MEMORY USAGE of each of its keys, summed)');
out();
out('| state | total | state hash | queue (entries) | records (entries) | expiry (entries) | owners |');
out('|---|---|---|---|---|---|---|');
for (const m of memory) {
  const p = m.parts;
  const e = (part) => (m.entries[part] === undefined ? '' : ` (${int(m.entries[part])})`);
  out(
    `| ${m.label} | ${kb(m.bytes)} | ${kb(p.state)} | ${kb(p.queue)}${e('queue')} | ${kb(p.records)}${e('records')} | ${kb(p.expiry)}${e('expiry')} | ${kb(p.owners)} |`,
  );
}
out();
out(
  `${WAITERS.toLocaleString('en-US')} waiters add ${int(bytesPerWaiter)} bytes each (their rows less the row before them, over ${WAITERS.toLocaleString('en-US')}).`,
);
out();
out('## e) Refund reuse: calls per window next to a perfect limiter');
out();
out(
  `| algorithm | first window | ${Array.from({ length: REUSE_WINDOWS }, (_, k) => `window ${k + 2}`).join(' | ')} | mean after the first | perfect, calls spread evenly | **mean / perfect** | perfect, calls in a burst | mean / that |`,
);
out(`|---|---|${'---|'.repeat(REUSE_WINDOWS)}---|---|---|---|---|`);
for (const r of reuse) {
  out(
    `| ${r.algorithm} | ${int(r.first)} | ${r.windows.map(int).join(' | ')} | ${fixed(r.mean)} | ${fixed(r.perfect)} | **${ratio(r.mean / r.perfect)}** | ${fixed(r.bound)} | ${ratio(r.mean / r.bound)} |`,
  );
}
out();
out(
  `${REUSE.callers} callers, each in a loop: acquire of ${REUSE.reserve} output tokens, a ${REUSE.callMs} ms call, adjust to ${REUSE.actual} output tokens; ` +
    `outputTpm ${REUSE.outputTpm} over a ${REUSE.windowMs / 1000} s window. Windows counted by admission time from the first admission. Perfect, calls spread evenly: a sliding window ` +
    `${REUSE.outputTpm} / (${REUSE.actual} + ${REUSE.reserve - REUSE.actual} x ${REUSE.callMs} / ${REUSE.windowMs}); a token bucket ${REUSE.outputTpm} / ${REUSE.actual}. ` +
    `But ${REUSE.callers} callers fill a sliding window within its first part (the calls do not wait for each other) and no call is out for the rest of it: ` +
    `a perfect sliding window then holds every call at ${REUSE.actual} but the last at ${REUSE.reserve}, floor((${REUSE.outputTpm} - ${REUSE.reserve}) / ${REUSE.actual}) + 1 calls, which bounds it. ` +
    `Adjust statuses: ${reuse
      .map(
        (r) =>
          `${r.algorithm} ${Object.entries(r.statuses)
            .map(([s, n]) => `${s} ${n}`)
            .join(', ')}`,
      )
      .join('; ')}.`,
);
out();
const cpuRatio = llmCalls[64]['acquire + adjust'].serverCpuUsPerOp / llmCalls[64]['floor (1 EVALSHA)'].serverCpuUsPerOp;
const throughputRatio = throughput[64].acquire.opsPerSec / throughput[64].floor.opsPerSec;
const loneRatio = throughput[1].acquire.p50PerRound;
const loneOfMedians = throughput[1].acquire.p50Us / throughput[1].floor.p50Us;
const depthRatio = admission.deep.serverUsPerCall / admission.shallow.serverUsPerCall;
out('## Targets');
out();
out('| target | measured | |');
out('|---|---|---|');
out(`| Redis CPU of acquire + adjust at 64 callers at most 2x a bare EVALSHA | ${ratio(cpuRatio)} | ${verdict(cpuRatio <= 2)} |`);
out(`| 64-caller acquire throughput at least 0.9x the floor | ${ratio(throughputRatio)} | ${verdict(throughputRatio >= 0.9)} |`);
out(
  `| a lone acquire's latency (p50) at most 2x a lone EVALSHA | ${ratio(loneRatio)} (per round, median; the medians' ratio ${ratio(loneOfMedians)}) | ${verdict(loneRatio <= 2)} |`,
);
out(
  `| 10,000 waiters cost at most 2 MB of Redis | ${kb(withWaiters.bytes)} (${int(bytesPerWaiter)} bytes a waiter) | ${verdict(withWaiters.bytes <= 2 * 2 ** 20)} |`,
);
out(
  `| admission O(log n) in the queue: server time with 10,000 queued at most 1.5x that with 100 (O(n) would be ~100x) | ${ratio(depthRatio)} | ${verdict(depthRatio <= 1.5)} |`,
);

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
cursor = '0';
do {
  const [next, found] = await admin.scan(cursor, 'MATCH', `${prefix}:*`, 'COUNT', 1000);
  cursor = next;
  if (found.length) await admin.del(...found);
} while (cursor !== '0');
await manager.close();
floorClient.disconnect();
peerClient.disconnect();
admin.disconnect();
await redis.stop();
