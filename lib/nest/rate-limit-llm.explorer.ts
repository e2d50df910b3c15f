import { Inject, Injectable, Logger, type OnModuleInit } from '@nestjs/common';
import { DiscoveryService, MetadataScanner, Reflector } from '@nestjs/core';
import { RateLimitConfigError } from '../core/errors.js';
import { UnknownModelError } from './errors/unknown-model.error.js';
import { bindRateLimitedMethod } from './rate-limit-llm.binding.js';
import { RATE_LIMIT_LLM_METADATA } from './rate-limit-llm.decorator.js';
import type { RateLimitLlmMetadata } from './rate-limit-llm.options.js';
import { RateLimitedCall } from '../providers/rate-limited-call.js';
import { RATE_LIMITER_REGISTRY, RateLimiterRegistry } from './rate-limiter.registry.js';

/**
 * Finds `@RateLimitLlm()` methods on every provider and controller at bootstrap and binds each
 * instance's methods to the model's limiter; an unknown model fails the bootstrap.
 */
@Injectable()
export class RateLimitLlmExplorer implements OnModuleInit {
  private readonly logger = new Logger('LlmRateLimiter');

  constructor(
    private readonly discovery: DiscoveryService,
    private readonly scanner: MetadataScanner,
    private readonly reflector: Reflector,
    @Inject(RATE_LIMITER_REGISTRY) private readonly registry: RateLimiterRegistry,
  ) {}

  onModuleInit(): void {
    for (const wrapper of [...this.discovery.getProviders(), ...this.discovery.getControllers()]) {
      const instance: unknown = wrapper.instance;
      if (instance === null || typeof instance !== 'object') continue;
      const decorated = this.decoratedMethods(Object.getPrototypeOf(instance) as object | null);
      if (decorated.length === 0) continue;
      if (!wrapper.isDependencyTreeStatic()) {
        this.logger.warn(
          `${decorated.map((m) => m.label).join(', ')}: ${wrapper.name} is request-scoped, so its @RateLimitLlm() methods cannot be bound and will throw; make it a singleton or use RateLimiterRegistry`,
        );
        continue;
      }
      const instances = wrapper.isTransient
        ? wrapper.getStaticTransientInstances().map((entry) => entry?.instance as object | undefined)
        : [instance];
      const calls = decorated.map((metadata) => ({ metadata, call: this.callFor(metadata) }));
      for (const target of instances) {
        if (!target) continue;
        for (const { metadata, call } of calls) bindRateLimitedMethod(target, metadata, call);
      }
    }
  }

  /** Decorated methods along the prototype chain, overridden ones included (for `super` calls). */
  private decoratedMethods(prototype: object | null): RateLimitLlmMetadata[] {
    const found = new Set<RateLimitLlmMetadata>();
    if (!prototype) return [];
    for (const name of this.scanner.getAllMethodNames(prototype)) {
      for (let p: object | null = prototype; p && p !== Object.prototype; p = Object.getPrototypeOf(p) as object | null) {
        const method: unknown = Object.getOwnPropertyDescriptor(p, name)?.value;
        if (typeof method !== 'function') continue;
        const metadata = this.reflector.get<RateLimitLlmMetadata | undefined>(RATE_LIMIT_LLM_METADATA, method);
        if (metadata) found.add(metadata);
      }
    }
    return [...found];
  }

  private callFor(metadata: RateLimitLlmMetadata): RateLimitedCall {
    const { options, label } = metadata;
    const model = options.model ?? this.registry.defaultModel;
    if (model === undefined) {
      throw new RateLimitConfigError(
        `@RateLimitLlm() on ${label} needs a model, since several are configured (${this.registry.models.join(', ')}); ` +
          `for example @RateLimitLlm({ model: ${JSON.stringify(this.registry.models[0])} })`,
      );
    }
    if (!this.registry.has(model)) throw new UnknownModelError(model, this.registry.models, `@RateLimitLlm() on ${label}: `);
    return new RateLimitedCall(this.registry.get(model), options, label, this.logger);
  }
}
