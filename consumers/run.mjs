// Checks the package as applications install it: builds and packs it (`npm pack`), copies each
// consumer app to a scratch folder, installs it there with the tarball, and runs the app's own
// tests (`npm test`, `npm run test:e2e`) on Node 20 (this machine's) and on Node 22 and 24 taken
// from the npm registry's `node` package. Redis: REDIS_URL, else a throw-away redis-server from
// PATH, else the apps' in-memory store.
//
//   node consumers/run.mjs            all consumers, all Node versions
//   CONSUMER_NODES=20 node consumers/run.mjs
import { execFileSync, spawn, spawnSync } from 'node:child_process';
import { cpSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { delimiter, dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const here = dirname(fileURLToPath(import.meta.url));
const root = join(here, '..');
const CONSUMERS = ['nest11-cjs', 'nest12-esm'];
const NODES = (process.env.CONSUMER_NODES ?? '20,22,24').split(',').map((v) => v.trim());
const npm = process.platform === 'win32' ? 'npm.cmd' : 'npm';

const started = Date.now();
const elapsed = () => `${((Date.now() - started) / 1000).toFixed(1)} s`;
const log = (message) => console.log(`[consumers ${elapsed()}] ${message}`);

/** Runs a command, streaming its output; rejects with the command line when it fails. */
function run(command, args, options = {}) {
  return new Promise((resolve, reject) => {
    const child = spawn(command, args, { stdio: ['ignore', 'inherit', 'inherit'], ...options });
    child.on('error', reject);
    child.on('exit', (code) => (code === 0 ? resolve() : reject(new Error(`${command} ${args.join(' ')} (in ${options.cwd ?? '.'}) exited with ${code}`))));
  });
}

function freePort() {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.on('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address();
      server.close(() => resolve(port));
    });
  });
}

async function startRedis(work) {
  if (process.env.REDIS_URL) return { url: process.env.REDIS_URL, stop: () => {} };
  if (spawnSync('redis-server', ['--version']).error) return { url: undefined, stop: () => {} };
  const port = await freePort();
  const dir = join(work, 'redis');
  mkdirSync(dir);
  const child = spawn('redis-server', ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no', '--dir', dir], { stdio: 'ignore' });
  for (let i = 0; i < 100; i++) {
    if (spawnSync('redis-cli', ['-p', String(port), 'ping'], { encoding: 'utf8' }).stdout?.trim() === 'PONG') {
      return { url: `redis://127.0.0.1:${port}`, stop: () => child.kill() };
    }
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
  child.kill();
  throw new Error(`redis-server on port ${port} did not answer PING`);
}

/** The node binary of a major version: this process's, or one installed from the `node` package. */
async function nodeBinary(major, work) {
  if (process.versions.node.split('.')[0] === major) return process.execPath;
  const dir = join(work, `node-${major}`);
  mkdirSync(dir);
  writeFileSync(join(dir, 'package.json'), '{"private":true}');
  await run(npm, ['install', '--no-audit', '--no-fund', '--loglevel=error', `node@${major}`], { cwd: dir });
  return join(dir, 'node_modules', '.bin', 'node');
}

async function installConsumer(name, tarball, work) {
  const app = join(work, name);
  cpSync(join(here, name), app, { recursive: true, filter: (src) => !/[\\/](node_modules|dist)$/.test(src) });
  const manifest = JSON.parse(readFileSync(join(app, 'package.json'), 'utf8'));
  manifest.dependencies['nestjs-llm-rate-limiter'] = `file:${tarball}`;
  writeFileSync(join(app, 'package.json'), `${JSON.stringify(manifest, null, 2)}\n`);
  await run(npm, ['install', '--no-audit', '--no-fund', '--loglevel=error'], { cwd: app });
  // The app's own compile (what `nest build` type-checks), with the app's TypeScript.
  await run(npm, ['run', 'build', '--silent'], { cwd: app });
  return app;
}

const work = mkdtempSync(join(tmpdir(), 'llmrl-consumers-'));
let redis;
try {
  log(`building and packing into ${work}; fetching Node ${NODES.join(', ')}`);
  // The Node downloads need nothing of the build: they run beside it.
  const nodesReady = Promise.all(NODES.map((major) => nodeBinary(major, work)));
  nodesReady.catch(() => {});
  await run(npm, ['run', 'build', '--silent'], { cwd: root });
  const packed = JSON.parse(execFileSync(npm, ['pack', '--json', '--ignore-scripts', '--pack-destination', work], { cwd: root, encoding: 'utf8' }));
  const tarball = join(work, packed[0].filename);

  log(`installing ${CONSUMERS.join(', ')}`);
  const [apps, nodes] = await Promise.all([Promise.all(CONSUMERS.map((name) => installConsumer(name, tarball, work))), nodesReady]);
  redis = await startRedis(work);
  log(redis.url ? `Redis at ${redis.url}` : 'no Redis: the apps use their in-memory store');

  const results = [];
  for (const [i, major] of NODES.entries()) {
    const env = { ...process.env, PATH: `${dirname(nodes[i])}${delimiter}${process.env.PATH}` };
    delete env.REDIS_URL;
    if (redis.url) env.REDIS_URL = redis.url;
    const version = execFileSync('node', ['--version'], { env, encoding: 'utf8' }).trim();
    if (!version.startsWith(`v${major}.`)) throw new Error(`expected Node ${major} first on PATH, got ${version}`);
    for (const [j, name] of CONSUMERS.entries()) {
      for (const script of ['test', 'test:e2e']) {
        log(`${name} on Node ${version}: npm run ${script}`);
        env.LIMITER_KEY_PREFIX = `consumer:${name}:${major}:${script}:${Date.now()}`;
        await run(npm, ['run', script, '--silent'], { cwd: apps[j], env });
      }
      results.push(`${name} on Node ${version}`);
    }
  }
  log(`passed: ${results.join('; ')}`);
} finally {
  redis?.stop();
  rmSync(work, { recursive: true, force: true });
}
