// Fires many concurrent chat requests at the sample app and reports how they fared: how many
// were served, how long the limiter held them back, and whether the fake provider ever had to
// answer 429. Starts its own app on a free port unless given --url of a running one.
//
//   npm run sample:burst                      # starts the app (memory store, or REDIS_URL)
//   npm run sample:burst -- --requests 100    # more requests
//   npm run sample:burst -- --url http://localhost:3000
import { type ChildProcess, spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';

const { values } = parseArgs({
  options: {
    url: { type: 'string' },
    requests: { type: 'string', default: '60' },
    'max-tokens': { type: 'string', default: '300' },
  },
});
const requests = Number(values.requests);
const maxTokens = Number(values['max-tokens']);

interface Stats {
  limiter: { backend: string; waitsMs: number[] };
  provider: { limits: { tpm: number; rpm: number; windowSeconds: number }; served: number; rejected429: number };
}

function percentile(sorted: number[], p: number): number {
  if (sorted.length === 0) return 0;
  return sorted[Math.min(sorted.length - 1, Math.ceil((p / 100) * sorted.length) - 1)];
}

function summary(values: number[]): string {
  const sorted = [...values].sort((a, b) => a - b);
  return `p50 ${percentile(sorted, 50)}  p99 ${percentile(sorted, 99)}  max ${sorted.at(-1) ?? 0}`;
}

/** Starts the built sample app on a free port and resolves with its URL once it listens. */
function startApp(): Promise<{ url: string; child: ChildProcess; output: string[] }> {
  const main = fileURLToPath(new URL('./main.js', import.meta.url));
  const child = spawn(process.execPath, [main], {
    env: { ...process.env, PORT: '0', NO_COLOR: '1', LLMRL_KEY_PREFIX: `llmrl-burst-${process.pid}-${Date.now()}` },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const output: string[] = [];
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`the app did not start within 20 s:\n${output.join('')}`)), 20_000);
    const onData = (data: Buffer) => {
      output.push(data.toString());
      const match = /listening on (http:\/\/[\w.:[\]-]+)/.exec(output.join(''));
      if (match) {
        clearTimeout(timer);
        resolve({ url: match[1], child, output });
      }
    };
    child.stdout.on('data', onData);
    child.stderr.on('data', onData);
    child.once('exit', (code) => {
      clearTimeout(timer);
      reject(new Error(`the app exited with code ${code}:\n${output.join('')}`));
    });
  });
}

async function chat(url: string, i: number): Promise<{ status: number; ms: number }> {
  const started = Date.now();
  const response = await fetch(`${url}/chat`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ prompt: `Question ${i}: what does a rate limiter do for a shared API key?`, maxTokens }),
  });
  await response.text();
  return { status: response.status, ms: Date.now() - started };
}

async function main(): Promise<number> {
  const app = values.url ? undefined : await startApp();
  const url = values.url ?? app!.url;
  try {
    const before = (await (await fetch(`${url}/chat/stats`)).json()) as Stats;
    const { limits } = before.provider;
    console.log(`burst: ${requests} requests at once against ${url} (${before.limiter.backend} store)`);
    console.log(
      `fake provider limits: ${limits.rpm} requests and ${limits.tpm} tokens per ${limits.windowSeconds} s; each request asks for up to ${maxTokens} tokens`,
    );
    const started = Date.now();
    const results = await Promise.all(Array.from({ length: requests }, (_, i) => chat(url, i)));
    const tookS = ((Date.now() - started) / 1000).toFixed(1);
    const after = (await (await fetch(`${url}/chat/stats`)).json()) as Stats;
    const served = results.filter((r) => r.status === 200).length;
    const waits = after.limiter.waitsMs.slice(before.limiter.waitsMs.length);
    const rejected = after.provider.rejected429 - before.provider.rejected429;
    console.log(`served: ${served} of ${requests} (HTTP 200) in ${tookS} s`);
    console.log(`limiter waits, ms: ${summary(waits)}  (${waits.filter((w) => w > 0).length} of ${waits.length} waited)`);
    console.log(`request latency, ms: ${summary(results.map((r) => r.ms))}`);
    console.log(
      `fake provider: ${after.provider.served - before.provider.served} calls, ${rejected === 0 ? 'no 429 answered' : `${rejected} answered 429`}`,
    );
    const failures = (app?.output.join('') ?? '').split('\n').filter((line) => /ERROR|Too Many Requests/.test(line));
    if (failures.length > 0) console.log(`the app logged:\n${failures.join('\n')}`);
    return served === requests && rejected === 0 ? 0 : 1;
  } finally {
    if (app) {
      app.child.kill('SIGTERM');
      await new Promise((resolve) => app.child.once('exit', resolve));
    }
  }
}

main().then(
  (code) => process.exit(code),
  (error: unknown) => {
    console.error(error);
    process.exit(1);
  },
);
