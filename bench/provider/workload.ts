import { estimateTokens, seededRandom } from '../../emulator/tokens.js';
import { textOfTokens } from '../../emulator/provider-requests.js';

/** One call a worker will make: the prompt it sends and its own estimates. */
export interface WorkloadCall {
  readonly id: string;
  /** Index of the shared system prompt, -1 for none. */
  readonly prefixIndex: number;
  readonly prefix: string;
  readonly text: string;
  readonly maxTokens: number;
  readonly prefixEstimate: number;
  readonly textEstimate: number;
}

/** Shared system prompts (the cacheable prefixes), about 1,200 to 3,000 tokens. */
export const PREFIX_TOKENS = [1200, 1800, 2400, 3000];
const PREFIX_SHARE = 0.5;
const MAX_TOKENS = [256, 512, 1024, 2048];
const MAX_TOKENS_WEIGHTS = [0.3, 0.35, 0.25, 0.1];
/** Log-normal prompt size: median 700 tokens, sigma 0.9 (long-tailed), clamped to 50..8000. */
const INPUT_MEDIAN = 700;
const INPUT_SIGMA = 0.9;

const prefixes = PREFIX_TOKENS.map((tokens, i) => textOfTokens(tokens, `system prompt ${i}`));

/** Long-tailed calls, the same sequence for the same seed. */
export class Workload {
  private readonly random: () => number;
  private n = 0;

  constructor(
    private readonly seed: number,
    private readonly worker: number,
  ) {
    this.random = seededRandom(seed * 1000 + worker + 1);
  }

  next(): WorkloadCall {
    const r = this.random;
    // Box-Muller for a standard normal draw.
    const normal = Math.sqrt(-2 * Math.log(1 - r())) * Math.cos(2 * Math.PI * r());
    const input = Math.min(8000, Math.max(50, Math.round(INPUT_MEDIAN * Math.exp(INPUT_SIGMA * normal))));
    let pick = r();
    let m = 0;
    while (m < MAX_TOKENS.length - 1 && pick >= MAX_TOKENS_WEIGHTS[m]) pick -= MAX_TOKENS_WEIGHTS[m++];
    const prefixIndex = r() < PREFIX_SHARE ? Math.floor(r() * prefixes.length) : -1;
    const id = `s${this.seed}w${this.worker}c${this.n++}`;
    const prefix = prefixIndex >= 0 ? prefixes[prefixIndex] : '';
    const text = textOfTokens(input, id);
    return {
      id,
      prefixIndex,
      prefix,
      text,
      maxTokens: MAX_TOKENS[m],
      prefixEstimate: estimateTokens(prefix),
      textEstimate: estimateTokens(text),
    };
  }
}
