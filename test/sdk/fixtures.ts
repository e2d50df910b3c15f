import type { LlmRateLimiterModuleOptions } from '../../lib/index.js';

/** The models of the SDK suite, as every process configures them. */
export const MODELS = {
  'gpt-4o': { tpm: 1_000_000, rpm: 1000 },
  // Counted as OpenAI counts: every request that reaches it, refused ones included.
  'gpt-4o-counted': { provider: 'openai', tpm: 1_000_000, rpm: 1000 },
  'text-embedding-3-small': { tpm: 1_000_000, rpm: 1000 },
  claude: { inputTpm: 1_000_000, outputTpm: 100_000, rpm: 1000 },
  gemini: { tpm: 1_000_000, rpm: 1000 },
  'gemini-embedding': { tpm: 1_000_000, rpm: 1000 },
} satisfies LlmRateLimiterModuleOptions['models'];

export const CHAT = {
  model: 'gpt-4o',
  messages: [{ role: 'user' as const, content: 'say something short about limits' }],
  max_tokens: 500,
};
export const CLAUDE = {
  model: 'claude-sonnet-4-5',
  max_tokens: 500,
  messages: [{ role: 'user' as const, content: 'say something short about limits' }],
};
