import type { ActualUsage } from '../core/charges.js';
import type { CallEstimate, LlmUsage } from './llm-usage.js';

/** What `adjust` takes for a call's reported usage; missing output keeps the estimate's. */
export function actualUsageOf(usage: LlmUsage, estimate: CallEstimate): ActualUsage {
  return {
    actualOutput: usage.output ?? estimate.outputTokens,
    actualInput: usage.input,
    actualCacheRead: usage.cacheRead,
    actualCacheWrite: usage.cacheWrite,
  };
}
