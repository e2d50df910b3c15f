import { BUCKETS, type Charge, type ModelSettings } from '../core/store.js';

/** The arguments of lua/handback.lua after its key, as its header lists them. */
export function handBackArgs(
  s: ModelSettings,
  admissions: readonly { readonly ageMs: number; readonly cost: Charge }[],
  clock: number,
): (string | number)[] {
  const tokenBucket = s.algorithm === 'token-bucket';
  const l = s.limits;
  const args: (string | number)[] = [
    tokenBucket ? 'b' : 'w',
    s.windowMs,
    tokenBucket ? s.bucketMs : BUCKETS,
    l.tokens,
    l.inputTokens,
    l.outputTokens,
    l.requests,
    clock,
    admissions.length,
  ];
  for (const { ageMs, cost } of admissions) args.push(ageMs, cost.tokens, cost.inputTokens, cost.outputTokens, cost.requests);
  return args;
}
