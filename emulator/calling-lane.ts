import type { RateLimiter } from '../lib/index.js';
import { buildRequest, readUsage, retryAfterMs, textOfTokens } from './provider-requests.js';
import type { Protocol } from './protocols.js';
import { estimateTokens, seededRandom } from './tokens.js';

/** One call a lane made: what the limiter said, and what the provider answered. */
export interface LaneCall {
  readonly worker: number;
  /** Local epoch ms just before acquire. */
  readonly sentAt: number;
  /** The limiter's slot (Redis server time; local time when admitted by the in-process fallback). */
  readonly slotTime: number;
  readonly waitTime: number;
  /** Admitted while Redis was unavailable (failureMode 'local': by this process's share). */
  readonly degraded: boolean;
  /** Combined tokens reserved. */
  readonly tokens: number;
  /** Combined tokens once settled: the usage adjusted to, 0 for a refused call. */
  readonly settledTokens: number;
  readonly status: number;
  /** Set when this call's 429 paused every process: until when (server ms), and for how long. */
  readonly pausedUntil?: number;
  readonly pauseMs?: number;
  /** Local epoch ms when observe of this 429 resolved: the pause was in force from then on. */
  readonly observedAt?: number;
}

export interface LaneSetup {
  readonly worker: number;
  readonly limiter: RateLimiter;
  readonly emulatorUrl: string;
  readonly protocol: Protocol;
  readonly model: string;
  /** Feed every response's headers (and status) to `limiter.observe`. */
  readonly observe: boolean;
  /** Aborts waiting acquires; lanes stop calling once it fires. */
  readonly signal: AbortSignal;
  readonly random: () => number;
  /** Prompt sizes, tokens by the 4-characters estimate. */
  readonly input: readonly [number, number];
  readonly maxTokens: readonly number[];
  readonly calls: LaneCall[];
  readonly errors: string[];
}

/**
 * One caller that keeps calling the emulated provider through the limiter: acquire, call,
 * adjust to the usage (or release a refused call), and observe the answer when told to. Without
 * observe, a 429 is waited out for its retry-after, as an SDK would.
 */
export async function runLane(s: LaneSetup): Promise<void> {
  for (let n = 0; !s.signal.aborted; n++) {
    const input = s.input[0] + Math.floor(s.random() * (s.input[1] - s.input[0] + 1));
    const maxTokens = s.maxTokens[Math.floor(s.random() * s.maxTokens.length)];
    const text = textOfTokens(input, `w${s.worker} call ${n}`);
    const sentAt = Date.now();
    const inputTokens = estimateTokens(text);
    let admitted;
    try {
      admitted = await s.limiter.acquire({ inputTokens, outputTokens: maxTokens }, { signal: s.signal });
    } catch (error) {
      if (!s.signal.aborted) s.errors.push(`acquire: ${String(error)}`);
      return;
    }
    const { path, body } = buildRequest(s.protocol, { model: s.model, prefix: '', text, maxTokens });
    try {
      const res = await fetch(s.emulatorUrl + path, { method: 'POST', body: JSON.stringify(body) });
      const call = {
        worker: s.worker,
        sentAt,
        slotTime: admitted.slotTime,
        waitTime: admitted.waitTime,
        degraded: admitted.degraded,
        tokens: inputTokens + maxTokens,
        settledTokens: 0,
        status: res.status,
      };
      if (res.status === 429) {
        await res.arrayBuffer();
        const wait = retryAfterMs(res.headers);
        let pause = {};
        if (s.observe) {
          const observed = await s.limiter.observe(res.headers, { status: 429 });
          if (observed.pausedUntil !== undefined) pause = { pausedUntil: observed.pausedUntil, pauseMs: wait, observedAt: Date.now() };
        }
        s.calls.push({ ...call, ...pause });
        await s.limiter.release(admitted.recordId, { reachedProvider: true });
        if (!s.observe && wait !== undefined && !s.signal.aborted) await new Promise((resolve) => setTimeout(resolve, wait));
        continue;
      }
      if (res.status !== 200) {
        s.calls.push(call);
        s.errors.push(`provider answered ${res.status}`);
        continue;
      }
      if (s.observe) await s.limiter.observe(res.headers, { status: 200 });
      const usage = readUsage(s.protocol, (await res.json()) as Record<string, unknown>);
      const actualInput = usage.input + usage.cacheRead + usage.cacheWrite;
      s.calls.push({ ...call, settledTokens: actualInput + usage.output });
      await s.limiter.adjust(admitted.recordId, { actualInput, actualOutput: usage.output });
    } catch (error) {
      s.errors.push(`call: ${String(error)}`);
    }
  }
}

/**
 * `lanes` callers on each limiter (limiter i is worker `firstWorker + i`), each with its own
 * generator drawn from `seed`; resolves when every lane has stopped.
 */
export async function runLanes(
  limiters: readonly RateLimiter[],
  lanes: number,
  seed: number,
  setup: Omit<LaneSetup, 'worker' | 'limiter' | 'random'>,
  firstWorker = 0,
): Promise<void> {
  await Promise.all(
    limiters.flatMap((limiter, i) =>
      Array.from({ length: lanes }, (_, lane) =>
        runLane({ ...setup, worker: firstWorker + i, limiter, random: seededRandom(seed + (firstWorker + i) * 100 + lane) }),
      ),
    ),
  );
}
