import { AnthropicPolicy, type AnthropicPolicyConfig } from './anthropic.js';
import { BedrockPolicy, type BedrockPolicyConfig } from './bedrock.js';
import { OpenAiPolicy, type OpenAiPolicyConfig } from './openai.js';
import type { ChargeSink, Policy } from './policy.js';
import { SlidingWindowPolicy, type SlidingWindowPolicyConfig } from './sliding-window.js';

export type PolicyConfig = SlidingWindowPolicyConfig | OpenAiPolicyConfig | AnthropicPolicyConfig | BedrockPolicyConfig;

/** Builds the policy a config names. `now` starts the token buckets full. */
export function createPolicy(config: PolicyConfig, sink?: ChargeSink, now = Date.now()): Policy {
  switch (config.kind) {
    case 'sliding-window':
      return new SlidingWindowPolicy(config, sink);
    case 'openai':
      return new OpenAiPolicy(config, sink, now);
    case 'anthropic':
      return new AnthropicPolicy(config, sink, now);
    case 'bedrock':
      return new BedrockPolicy(config, sink);
    default:
      throw new Error(`emulator policy: unknown kind ${JSON.stringify((config as { kind: unknown }).kind)}`);
  }
}

export * from './policy.js';
export type { AnthropicPolicyConfig, BedrockPolicyConfig, OpenAiPolicyConfig, SlidingWindowPolicyConfig };
