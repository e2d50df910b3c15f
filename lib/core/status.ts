import type { ResolvedConfig } from './config.js';
import type { RateLimitStatus } from './results.js';
import { type Charge, type ModelSettings, scaledLimit, type StatusReply } from './store.js';

/** What getStatus reports of a store's status reply: the figures against the configured limits and those in force. */
export function statusOf(model: string, resolved: ResolvedConfig, reply: StatusReply): RateLimitStatus {
  const { limits } = resolved;
  const inForce = (limit: number) => scaledLimit(limit, reply.limitFactor);
  return {
    model,
    windowSeconds: resolved.windowMs / 1000,
    tokensUsed: reply.used.tokens,
    tokensLimit: limits.tokens,
    inputTokensUsed: reply.used.inputTokens,
    inputTokensLimit: limits.inputTokens,
    outputTokensUsed: reply.used.outputTokens,
    outputTokensLimit: limits.outputTokens,
    requestsUsed: reply.used.requests,
    requestsLimit: limits.requests,
    queueDepth: reply.queueDepth,
    pausedUntil: reply.pausedUntil,
    limitFactor: reply.limitFactor,
    limitsInForce: {
      tokens: inForce(limits.tokens),
      inputTokens: inForce(limits.inputTokens),
      outputTokens: inForce(limits.outputTokens),
      requests: inForce(limits.requests),
    },
    learning: resolved.learn !== undefined,
  };
}

/**
 * When a request of `cost` could be admitted, ms from the status's reading, if the window freed
 * its limits evenly: the pause, and what is used beyond each limit in force (0: now).
 */
export function waitEstimateMs(settings: ModelSettings, status: StatusReply, cost: Charge): number {
  const { windowMs, limits } = settings;
  let ms = status.pausedUntil - status.nowMs;
  const figures = [
    [status.used.tokens, cost.tokens, limits.tokens],
    [status.used.inputTokens, cost.inputTokens, limits.inputTokens],
    [status.used.outputTokens, cost.outputTokens, limits.outputTokens],
    [status.used.requests, cost.requests, limits.requests],
  ] as const;
  for (const [used, need, configured] of figures) {
    const limit = scaledLimit(configured, status.limitFactor);
    if (limit > 0) ms = Math.max(ms, Math.ceil(((used + need - limit) * windowMs) / limit));
  }
  return Math.max(0, ms);
}
