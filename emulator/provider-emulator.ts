import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { type Clock, systemClock } from './clock.js';
import { anthropicHeaders, openAiHeaders, retryAfterHeaders } from './headers.js';
import { createPolicy, type PolicyConfig } from './policies/index.js';
import type { Admission, CallFigures, Figures, Policy, Rejection, Ticket } from './policies/policy.js';
import {
  BadRequestError,
  type ParsedRequest,
  parseRequest,
  type Protocol,
  rateLimitBody,
  serverErrorBody,
  successBody,
  type Usage,
} from './protocols.js';
import { type CallRecord, EmulatorRecorder } from './recorder.js';
import { countTokens, estimateTokens, fnv1a, seededRandom } from './tokens.js';

export interface ProviderEmulatorOptions {
  /** How the provider counts calls against its limits. */
  readonly policy: PolicyConfig;
  /** Response time: `fixedMs` + `perOutputTokenMs` x output tokens (default 0 and 0). */
  readonly latency?: { readonly fixedMs?: number; readonly perOutputTokenMs?: number };
  /** Real output as a fraction of `max_tokens`, drawn uniformly (default 0.1 to 1). */
  readonly outputFraction?: { readonly min: number; readonly max: number };
  /** The tokenizer differs from the 4-characters-per-token estimate by up to this fraction (default 0). */
  readonly inputError?: number;
  /** How long a cached prefix stays cached, ms (default 5 windows: five minutes, scaled). */
  readonly cacheTtlMs?: number;
  /** Another consumer of the same key spends this share of every limit, continuously. */
  readonly foreign?: { readonly share: number; readonly tickMs?: number };
  /** Share of admitted calls that fail with a 500 after their latency (default 0). */
  readonly errorRate?: number;
  /** Seed of the draws of output and failures (default 1). */
  readonly seed?: number;
  readonly clock?: Clock;
  /** Port on 127.0.0.1 (default: a free one). */
  readonly port?: number;
}

/** What the emulator decided for one request, before any waiting. */
export type Decision =
  | { readonly status: 429; readonly rejection: Rejection; readonly record: CallRecord }
  | { readonly status: 200 | 500; readonly ticket: Ticket; readonly usage: Usage; readonly latencyMs: number; readonly record: CallRecord };

const ROUTES: ReadonlyArray<[RegExp, Protocol]> = [
  [/^\/v1\/chat\/completions$/, 'openai'],
  [/^\/v1\/messages$/, 'anthropic'],
  [/^\/model\/([^/]+)\/converse$/, 'bedrock-converse'],
  [/^\/model\/([^/]+)\/invoke$/, 'bedrock-invoke'],
  [/^\/v1\/projects\/[^/]+\/locations\/[^/]+\/publishers\/[^/]+\/models\/([^/:]+):generateContent$/, 'vertex'],
];

const MAX_BODY_BYTES = 8 << 20;

/**
 * An LLM provider on loopback for tests and benchmarks: OpenAI-, Anthropic-, Bedrock- and
 * Vertex-shaped endpoints in front of one rate-limit policy, answering 429 with `retry-after` and
 * the providers' rate-limit headers, and recording every admitted and refused call.
 *
 * @example
 * const emulator = await ProviderEmulator.start({ policy: { kind: 'sliding-window', windowMs: 6000, tpm: 100_000 } });
 * await fetch(`${emulator.url}/v1/chat/completions`, { method: 'POST', body: JSON.stringify(request) });
 */
export class ProviderEmulator {
  readonly policy: Policy;
  readonly recorder = new EmulatorRecorder();
  private readonly clock: Clock;
  private readonly random: () => number;
  private readonly cache = new Map<number, number>();
  private readonly timers = new Set<NodeJS.Timeout>();
  private foreignTimer?: NodeJS.Timeout;
  private foreignLast = 0;
  private nextId = 1;
  private refusingUntil = 0;
  private server?: Server;
  private address?: AddressInfo;

  constructor(readonly options: ProviderEmulatorOptions) {
    this.clock = options.clock ?? systemClock;
    this.policy = createPolicy(options.policy, this.recorder.sink, this.clock.now());
    this.random = seededRandom(options.seed ?? 1);
    const { min, max } = options.outputFraction ?? { min: 0.1, max: 1 };
    if (!(min >= 0 && max <= 1 && min <= max)) throw new Error(`outputFraction must satisfy 0 <= min <= max <= 1, got ${min}..${max}`);
    const share = options.foreign?.share ?? 0;
    if (!(share >= 0 && share < 1)) throw new Error(`foreign.share must be in [0, 1), got ${share}`);
  }

  /** Starts an emulator listening on 127.0.0.1. */
  static async start(options: ProviderEmulatorOptions): Promise<ProviderEmulator> {
    const emulator = new ProviderEmulator(options);
    await emulator.listen();
    return emulator;
  }

  get url(): string {
    if (!this.address) throw new Error('the emulator is not listening');
    return `http://127.0.0.1:${this.address.port}`;
  }

  /** Figures of one call as the provider counts them, the prompt cache consulted (and filled). */
  figuresOf(request: ParsedRequest, now: number): CallFigures {
    const error = this.options.inputError ?? 0;
    const input = countTokens(request.text, error);
    let cacheRead = 0;
    let cacheWrite = 0;
    if (request.prefix.length > 0) {
      const tokens = countTokens(request.prefix, error);
      const key = fnv1a(request.prefix);
      if ((this.cache.get(key) ?? -Infinity) > now) cacheRead = tokens;
      else cacheWrite = tokens;
    }
    return {
      estimatedInput: estimateTokens(request.prefix) + estimateTokens(request.text),
      input,
      cacheRead,
      cacheWrite,
      maxTokens: request.maxTokens,
    };
  }

  /** Admits or refuses one request now, and draws what it will use; no waiting, no HTTP. */
  decide(protocol: Protocol, request: ParsedRequest, clientSentAt?: number): Decision {
    const now = this.clock.now();
    const figures = this.figuresOf(request, now);
    const admission: Admission =
      now < this.refusingUntil
        ? {
            admitted: false,
            dimension: 'requests',
            limit: this.policy.limits.requests ?? 0,
            used: 0,
            requested: 1,
            retryAfterMs: this.refusingUntil - now,
          }
        : this.policy.admit(now, figures);
    const id = this.nextId++;
    if (!admission.admitted) {
      const { dimension, limit, used, requested, retryAfterMs } = admission;
      const record: CallRecord = {
        id,
        arrivedAt: now,
        protocol,
        status: 429,
        dimension,
        limit,
        used,
        requested,
        retryAfterMs,
        clientSentAt,
      };
      this.recorder.calls.push(record);
      return { status: 429, rejection: admission, record };
    }
    if (request.prefix.length > 0) this.cache.set(fnv1a(request.prefix), now + (this.options.cacheTtlMs ?? 5 * this.policy.windowMs));
    const { min, max } = this.options.outputFraction ?? { min: 0.1, max: 1 };
    const output = Math.max(1, Math.min(request.maxTokens, Math.floor(request.maxTokens * (min + (max - min) * this.random()))));
    const failed = this.random() < (this.options.errorRate ?? 0);
    const latencyMs = (this.options.latency?.fixedMs ?? 0) + (this.options.latency?.perOutputTokenMs ?? 0) * output;
    const usage: Usage = {
      input: figures.input,
      cacheRead: figures.cacheRead,
      cacheWrite: figures.cacheWrite,
      output,
      stoppedAtMax: output >= request.maxTokens,
    };
    const record: CallRecord = { id, arrivedAt: now, protocol, status: failed ? 500 : 200, clientSentAt };
    this.recorder.calls.push(record);
    return { status: failed ? 500 : 200, ticket: admission.ticket, usage, latencyMs, record };
  }

  /**
   * Answers every call 429 for the next `durationMs`, with a retry-after of the time left,
   * whatever the limits say: a provider that is overloaded, or cut a shared quota for a while.
   * Refused calls are not charged.
   */
  refuseFor(durationMs: number): void {
    this.refusingUntil = this.clock.now() + durationMs;
  }

  /** Completes an admitted call: settles it with the policy (or fails it). */
  finish(decision: Extract<Decision, { status: 200 | 500 }>): void {
    const now = this.clock.now();
    if (decision.status === 500) this.policy.fail(now, decision.ticket);
    else this.policy.complete(now, decision.ticket, decision.usage.output);
    decision.record.completedAt = now;
    decision.record.outputTokens = decision.usage.output;
  }

  /**
   * The foreign consumer's spending for `elapsedMs` ending now: its share of every limit, pro rata.
   * Returns whether the provider let it through.
   */
  spendForeign(elapsedMs: number): boolean {
    const share = this.options.foreign?.share ?? 0;
    if (share === 0 || elapsedMs <= 0) return true;
    const amounts: Figures = {};
    for (const [dimension, limit] of Object.entries(this.policy.limits)) {
      if (limit) amounts[dimension as keyof Figures] = (share * limit * elapsedMs) / this.policy.windowMs;
    }
    return this.policy.spend(this.clock.now(), amounts);
  }

  /** Rate-limit headers in the shape of `protocol`. */
  headersFor(protocol: Protocol): Record<string, string> {
    const now = this.clock.now();
    const states = this.policy.state(now);
    if (protocol === 'openai') return openAiHeaders(states);
    if (protocol === 'anthropic') return anthropicHeaders(states, now);
    return {};
  }

  async close(): Promise<void> {
    if (this.foreignTimer) clearInterval(this.foreignTimer);
    for (const timer of this.timers) clearTimeout(timer);
    this.timers.clear();
    const server = this.server;
    if (!server) return;
    this.server = undefined;
    await new Promise<void>((resolve) => {
      server.close(() => resolve());
      server.closeAllConnections();
    });
  }

  private async listen(): Promise<void> {
    const server = createServer({ keepAliveTimeout: 30_000 }, (req, res) => this.onRequest(req, res));
    this.server = server;
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(this.options.port ?? 0, '127.0.0.1', () => {
        server.off('error', reject);
        resolve();
      });
    });
    this.address = server.address() as AddressInfo;
    if ((this.options.foreign?.share ?? 0) > 0) {
      const tickMs = this.options.foreign?.tickMs ?? Math.max(10, this.policy.windowMs / 120);
      this.foreignLast = this.clock.now();
      this.foreignTimer = setInterval(() => {
        const now = this.clock.now();
        this.spendForeign(now - this.foreignLast);
        this.foreignLast = now;
      }, tickMs);
      this.foreignTimer.unref();
    }
  }

  private onRequest(req: IncomingMessage, res: ServerResponse): void {
    const path = (req.url ?? '').split('?')[0];
    const route = ROUTES.find(([pattern]) => pattern.test(path));
    if (req.method !== 'POST' || !route) {
      this.send(res, 404, { error: { message: `no route for ${req.method} ${path}` } });
      return;
    }
    const [pattern, protocol] = route;
    const model = decodeURIComponent(pattern.exec(path)?.[1] ?? '');
    const chunks: Buffer[] = [];
    let size = 0;
    req.on('data', (chunk: Buffer) => {
      size += chunk.length;
      if (size <= MAX_BODY_BYTES) chunks.push(chunk);
    });
    req.on('end', () => {
      if (size > MAX_BODY_BYTES) {
        this.send(res, 413, { error: { message: `request body over ${MAX_BODY_BYTES} bytes` } });
        return;
      }
      let request: ParsedRequest;
      try {
        request = parseRequest(protocol, JSON.parse(Buffer.concat(chunks).toString('utf8')), model);
      } catch (error) {
        const message = error instanceof BadRequestError || error instanceof SyntaxError ? error.message : String(error);
        this.send(res, 400, { error: { message } });
        return;
      }
      const sentAt = Number(req.headers['x-client-sent-at']);
      this.serve(protocol, request, res, Number.isFinite(sentAt) && sentAt > 0 ? sentAt : undefined);
    });
  }

  private serve(protocol: Protocol, request: ParsedRequest, res: ServerResponse, clientSentAt?: number): void {
    const decision = this.decide(protocol, request, clientSentAt);
    if (decision.status === 429) {
      const headers = { ...this.headersFor(protocol), ...retryAfterHeaders(decision.rejection.retryAfterMs) };
      if (protocol.startsWith('bedrock')) headers['x-amzn-errortype'] = 'ThrottlingException';
      this.send(res, 429, rateLimitBody(protocol, decision.rejection, request.model), headers);
      return;
    }
    const timer = setTimeout(() => {
      this.timers.delete(timer);
      this.finish(decision);
      if (decision.status === 500) {
        this.send(res, 500, serverErrorBody(protocol), this.headersFor(protocol));
        return;
      }
      const headers = this.headersFor(protocol);
      if (protocol === 'bedrock-invoke') {
        headers['x-amzn-bedrock-input-token-count'] = String(decision.usage.input);
        headers['x-amzn-bedrock-output-token-count'] = String(decision.usage.output);
      }
      this.send(res, 200, successBody(protocol, request, decision.usage, String(decision.record.id), this.clock.now()), headers);
    }, decision.latencyMs);
    this.timers.add(timer);
  }

  private send(res: ServerResponse, status: number, body: unknown, headers: Record<string, string> = {}): void {
    if (res.destroyed) return;
    const text = JSON.stringify(body);
    res.writeHead(status, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(text), ...headers });
    res.end(text);
  }
}
