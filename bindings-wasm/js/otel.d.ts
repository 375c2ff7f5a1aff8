// Types of writelane/otel: OpenTelemetry metrics and a span per run for a Lane.
import type { EntityAttribute, Lane, TelemetryOptions } from './index.js';

export type { EntityAttribute, TelemetryOptions };

/** The values `entityAttribute` takes. */
export declare const ENTITY_ATTRIBUTES: readonly EntityAttribute[];

/** The instrumentation of one lane. */
export declare class Telemetry {
  private constructor();
  /** Drain the lane's events into the metrics and spans now (runs do it as they end). */
  flush(): void;
}

/**
 * Send `lane`'s telemetry to OpenTelemetry: the `writelane.*` metrics, a `writelane.run`
 * span per `lane.run` with attempt, conflict, backoff and spike events, give-ups as the
 * span's error. Throws `UsageError` for a bad option or a lane already instrumented.
 */
export declare function instrument(lane: Lane, options?: TelemetryOptions): Telemetry;
