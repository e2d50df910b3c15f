/**
 * The part of an OpenTelemetry `Meter` (package `@opentelemetry/api`) the limiter's metrics use,
 * written out here so that the library neither imports that package nor needs its types: an
 * application that wants metrics passes its own `Meter`, one that does not never loads it.
 *
 * @example
 * import { metrics } from '@opentelemetry/api';
 * const meter: LimiterMeter = metrics.getMeter('nestjs-llm-rate-limiter');
 */
export interface LimiterMeter {
  createCounter(name: string, options?: InstrumentOptions): { add(value: number, attributes?: MetricAttributes): void };
  createHistogram(name: string, options?: InstrumentOptions): { record(value: number, attributes?: MetricAttributes): void };
  createObservableGauge(name: string, options?: InstrumentOptions): object;
  addBatchObservableCallback(callback: BatchCallback, observables: object[]): void;
  removeBatchObservableCallback(callback: BatchCallback, observables: object[]): void;
}

/** Labels of one series. */
export type MetricAttributes = Record<string, string>;

/** What an instrument is created with. */
export interface InstrumentOptions {
  description?: string;
  unit?: string;
  advice?: { explicitBucketBoundaries?: number[] };
}

/** Reports the observable gauges' values at a collection. */
export type BatchCallback = (result: {
  observe(observable: object, value: number, attributes?: MetricAttributes): void;
}) => void | Promise<void>;
