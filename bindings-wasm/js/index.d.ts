// Type definitions for writelane (hand-written; checked by `tsc --noEmit --strict` in the
// tests). Milliseconds are plain numbers (whole, non-negative, at most 2^53 - 1), never
// BigInt. Policies, events, stats and the sans-IO engine's commands and inputs use the
// language-neutral JSON form of writelane-core (snake_case fields), the same form as the
// conformance vectors.

/* ---------------------------------------------------------------------------------- */
/* Policies                                                                           */
/* ---------------------------------------------------------------------------------- */

/** How a delay is randomised. */
export type Jitter = 'none' | 'full' | 'equal' | 'decorrelated' | 'sawtooth';

/** The class of a failed call, which decides whether and how it is retried. */
export type ErrorClass = 'conflict' | 'throttle' | 'transient' | 'unknown' | 'fatal';

/** Retry rule for one error class. */
export interface RetryRule {
  /** Attempts allowed, counting the first call; `1` never retries the class. */
  max_attempts: number;
  /** Base delay: retry `i` (from 0) backs off up to `base_ms * 2^i`. */
  base_ms: number;
  /** Cap on any one delay. */
  cap_ms: number;
  /** How the delay is randomised. */
  jitter: Jitter;
  /** Budget tokens one retry of this class costs. */
  cost: number;
}

/** A complete policy, as `Policy.toJSON()` returns it. */
export interface PolicyDocument {
  /** The preset it started from (`iam`, `aws-standard`). */
  preset: string;
  /** Service defaults applied (`dynamodb`), or null. */
  service: string | null;
  /** Time allowed for one logical write, or null for none. */
  deadline_ms: number | null;
  /** Retry rules per error class. */
  retry: { conflict: RetryRule; throttle: RetryRule; transient: RetryRule; unknown: RetryRule };
  /** Whether retry-after hints are honoured, and how far past the computed delay. */
  retry_after: { honour: boolean; max_extra_ms: number };
  /** Retry budgets (token buckets). */
  budget: {
    enabled: boolean;
    capacity: number;
    initial: number;
    success_reward: number;
    per_entity_capacity: number | null;
  };
  /**
   * `local`: one writer per entity at a time in this process; `shared`: one at a time
   * across every process sharing a lease store; `none`: no serialisation.
   */
  lanes: { mode: 'local' | 'shared' | 'none' };
  /** Lease timing of shared lanes, in milliseconds. */
  lease: {
    lease_ms: number;
    renew_ms: number;
    lock_delay_ms: number;
    poll_ms: number;
    unavailable_ms: number;
    max_write_ms: number;
    /**
     * The longest one store operation may take before it counts as a lost reply: 2000, or
     * (lease_ms - renew_ms) / 2 when that is shorter, unless set.
     */
    store_timeout_ms: number;
  };
  /** Change-token validation and hand-off between lane holders. */
  tokens: { validate: boolean; handoff: boolean };
  /** Conflict-spike detection and cool-down. */
  spike: { enabled: boolean; window_ms: number; threshold: number; cooldown_ms: number };
  /**
   * Group commit (`lane.update`): at most `max_changes` updates (1..=1024, default 64)
   * ride in one write; the holder waits `linger_ms` (default 0) for more to queue.
   */
  batch: { max_changes: number; linger_ms: number };
  /** Which codes and HTTP statuses belong to which class. */
  codes: {
    conflict: string[];
    throttle: string[];
    transient: string[];
    fatal: string[];
    throttle_statuses: number[];
    transient_statuses: number[];
  };
}

/** Every field optional, recursively: the shape of policy overrides. */
export type DeepPartial<T> = {
  [K in keyof T]?: T[K] extends (infer U)[] ? U[] : T[K] extends object ? DeepPartial<T[K]> : T[K];
};

/** Overrides merged field by field into a preset (`preset` defaults to `iam`). */
export type PolicyOverrides = DeepPartial<PolicyDocument>;

/** What a `Lane`, `Engine` or `RetryStrategy` accepts as a policy. */
export type PolicyInput = Policy | string | PolicyOverrides | null | undefined;

/** A complete, validated policy. */
export declare class Policy {
  private constructor();
  /** A preset (`iam`, `aws-standard`) with optional overrides. Throws `PolicyError`. */
  static preset(name: string, overrides?: PolicyOverrides): Policy;
  /** A policy from JSON text (a preset name as a JSON string, an object, or `null`). Throws `PolicyError`. */
  static fromJSON(text: string): Policy;
  /** The preset this policy started from. */
  readonly preset: string;
  /** The complete effective policy (a copy). */
  toJSON(): PolicyDocument;
  /** The complete effective policy as JSON text. */
  toString(): string;
}

/* ---------------------------------------------------------------------------------- */
/* Errors                                                                             */
/* ---------------------------------------------------------------------------------- */

/** Base class of every error writelane throws. */
export declare class WritelaneError extends Error {
  /** Stable machine-readable code. */
  readonly code:
    | 'ERR_WRITELANE_POLICY'
    | 'ERR_WRITELANE_USAGE'
    | 'ERR_WRITELANE_TOKEN'
    | 'ERR_WRITELANE_GAVE_UP'
    | 'ERR_WRITELANE_STALE_REVISION'
    | 'ERR_WRITELANE_RETRY_REFUSED'
    | 'ERR_WRITELANE_STORE'
    | 'ERR_WRITELANE_DOCUMENT'
    | 'ERR_WRITELANE_ENTITY';
}

/** A policy was refused. */
export declare class PolicyError extends WritelaneError {
  readonly code: 'ERR_WRITELANE_POLICY';
  /** Dotted path of the offending field (`retry.conflict.base_ms`), `$` for the whole. */
  readonly path: string;
  /** The rule it broke. */
  readonly rule: string;
}

/** The API was misused; nothing was changed. */
export declare class UsageError extends WritelaneError {
  readonly code: 'ERR_WRITELANE_USAGE';
  /**
   * `invalid_argument`, `invalid_record` (from `checkRecord`), or the core's kind:
   * `time_went_backwards`, `unknown_op`, `unexpected_input`, `command_not_drained`,
   * `invalid_entity`, `invalid_token`, `invalid_code`, `invalid_owner`,
   * `expected_needs_read` (an `expected` token without a `read`), `invalid_state`,
   * `unknown_scope`, `too_many_scopes`.
   */
  readonly kind: string;
  /** The argument or option at fault (`options.deadlineMs`), when one is. */
  readonly field: string | null;
}

/** A policy document could not be canonicalised by `policyToken`. */
export declare class TokenError extends WritelaneError {
  readonly code: 'ERR_WRITELANE_TOKEN';
  /** Path inside the document (`Statement[1].Effect`), `$` for the whole. */
  readonly path: string;
  /** What is wrong. */
  readonly rule: string;
}

/**
 * A document (or argument) given to a helper of `iam` does not have the shape the change
 * needs. Thrown inside an update's `change`, it refuses that update (code `DocumentError`).
 */
export declare class DocumentError extends WritelaneError {
  readonly code: 'ERR_WRITELANE_DOCUMENT';
  /** The field at fault, as a path into the document (`Statement[2].Sid`), or the argument. */
  readonly path: string;
  /** What is wrong with it. */
  readonly rule: string;
}

/**
 * The entity of an SDK call cannot be determined from its request (`LanePlugin.keys`).
 * The lane plugin itself never throws it: such a call goes through unserialised and is
 * counted.
 */
export declare class EntityError extends WritelaneError {
  readonly code: 'ERR_WRITELANE_ENTITY';
  /** The API operation (`PutRolePolicy`). */
  readonly operation: string;
  /** The request parameter at fault (`RoleName`; `params` for the request as a whole,
   * `caller` for the calling user, `service` for a service with no entity table). */
  readonly parameter: string;
  /** What is wrong with it. */
  readonly reason: string;
}

/** Why a write gave up (besides a stale revision, which is `StaleRevisionError`). */
export type GiveUpReason =
  | 'attempts_exhausted'
  | 'budget_exhausted'
  | 'deadline_exceeded'
  | 'fatal'
  | 'cancelled'
  /** Shared lanes: the lease was lost (taken over, or a renewal failed); nothing was written without it. */
  | 'lease_lost'
  /** Shared lanes: the lease store stayed unreachable; nothing was written. */
  | 'lock_unavailable';

/** A write gave up. */
export declare class GaveUpError extends WritelaneError {
  readonly code: 'ERR_WRITELANE_GAVE_UP';
  /** The entity written. */
  readonly entity: string;
  /** Why. */
  readonly reason: GiveUpReason;
  /** Write attempts made. */
  readonly attempts: number;
  /**
   * The last error seen (the SDK error), the abort reason for `cancelled`, or the store's
   * `StoreError` for `lease_lost` and `lock_unavailable` when one was seen.
   */
  readonly cause: unknown;
  /** The class of the last failure, when the reason has one. */
  readonly errorClass: ErrorClass | null;
  /** For `budget_exhausted`: the budget that was empty. */
  readonly scope: 'engine' | 'entity' | null;
  /** The last error code, when known (`ConcurrentModification`). */
  readonly errorCode: string | null;
  /** For `fatal`: the HTTP status, when known. */
  readonly httpStatus: number | null;
}

/** The entity is at a revision the writer has not seen; nothing was written on it. */
export declare class StaleRevisionError extends WritelaneError {
  readonly code: 'ERR_WRITELANE_STALE_REVISION';
  /** The entity written. */
  readonly entity: string;
  /** The token the writer based its change on. */
  readonly expected: string | null;
  /** The token found. */
  readonly found: string | null;
  /** Write attempts made. */
  readonly attempts: number;
}

/** Why a `RetryStrategy` refused a retry. */
export type RefusalReason = 'not_retryable' | 'attempts_exhausted' | 'budget_exhausted' | 'deadline_exceeded';

/** A `RetryStrategy` refused a retry. */
export declare class RetryRefusedError extends WritelaneError {
  readonly code: 'ERR_WRITELANE_RETRY_REFUSED';
  /** Why. */
  readonly reason: RefusalReason;
  /** Attempts made, counting the first call. */
  readonly attempts: number;
  /** The class of the failure. */
  readonly errorClass: ErrorClass | null;
  /** The error of the failed call. */
  readonly cause: unknown;
}

/* ---------------------------------------------------------------------------------- */
/* Failures                                                                           */
/* ---------------------------------------------------------------------------------- */

/** What writelane understood of an error. */
export interface Failure {
  /** The error code as the service sent it (`ConcurrentModification`), or null. */
  code: string | null;
  /** The HTTP status, or null when there was no response. */
  status: number | null;
  /** The service's retry-after hint in milliseconds, or null. */
  retryAfterMs: number | null;
  /** The request was sent and no reply came back: the write may have landed. */
  outcomeUnknown: boolean;
}

/** What a `classify` function returns for an error it recognises. */
export interface FailureInput {
  code?: string | null;
  status?: number | null;
  retryAfterMs?: number | null;
  outcomeUnknown?: boolean;
  /** After an unknown outcome: the token the write would have produced, to detect that it landed. */
  intendedToken?: string | null;
}

/**
 * Maps an error to a failure; return `null`/`undefined` to fall back to writelane's own
 * understanding of AWS SDK v3 errors (other errors are fatal).
 */
export type Classify = (error: unknown) => FailureInput | null | undefined;

/** What writelane understands of an AWS SDK v3 error (or a Node socket error). */
export declare function failureFromError(error: unknown): Failure;

/**
 * The canonical change token of an IAM policy document (`c1:sha256:...`); semantically
 * equal documents get equal tokens. Throws `TokenError`.
 */
export declare function policyToken(document: string | object): string;

/** The version of writelane-core inside this package. */
export declare const coreVersion: string;

/* ---------------------------------------------------------------------------------- */
/* Telemetry                                                                          */
/* ---------------------------------------------------------------------------------- */

/** Counters, globally and per entity. */
export interface Counters {
  submitted: number;
  committed: number;
  gave_up: number;
  reads: number;
  writes: number;
  conflicts: number;
  retries: number;
  budget_refusals: number;
  stale_revisions: number;
  lane_waits: number;
  lane_wait_ms: number;
  spikes: number;
  /** Lease-store operations issued (shared lanes). */
  store_ops: number;
}

/** Per-entity view in `Stats`. */
export interface EntityStats {
  counters: Counters;
  /** Tokens in the entity's budget, when per-entity budgets are on. */
  budget: number | null;
  /** Writes waiting for the lane. */
  queued: number;
  /** Whether a write holds the lane. */
  busy: boolean;
  /** Whether a conflict cool-down is running. */
  cooling: boolean;
  /** The last committed change token known. */
  committed_token: string | null;
}

/** A snapshot of counters and budget levels. */
export interface Stats {
  global: Counters;
  /** Tokens in the engine's budget, when budgets are on. */
  budget: number | null;
  /** Writes live now. */
  active_ops: number;
  /** Events dropped because nobody drained them. */
  dropped_events: number;
  /** Per entity, by name. */
  entities: Record<string, EntityStats>;
}

interface EventBase {
  /** The entity. */
  entity: string;
  /** When, on the lane's clock (milliseconds). */
  at: number;
}

/** One telemetry record per decision. */
export type WritelaneEvent =
  | (EventBase & { type: 'submitted'; op: number })
  | (EventBase & { type: 'lane_wait_started'; op: number; ahead: number })
  | (EventBase & { type: 'lane_wait_ended'; op: number; waited_ms: number })
  | (EventBase & { type: 'conflict'; op: number; attempt: number; code: string | null })
  | (EventBase & { type: 'retry_scheduled'; op: number; failures: number; delay_ms: number; class: ErrorClass; cost: number })
  | (EventBase & { type: 'budget_refused'; op: number; scope: 'engine' | 'entity'; needed: number; available: number })
  | (EventBase & { type: 'stale_revision'; op: number; expected: string | null; found: string | null })
  | (EventBase & { type: 'committed'; op: number; attempts: number })
  | (EventBase & { type: 'gave_up'; op: number; attempts: number; reason: GiveUpReason | 'stale_revision' })
  | (EventBase & { type: 'spike_started'; conflicts: number; until: number })
  | (EventBase & { type: 'spike_ended' })
  | (EventBase & { type: 'lease_acquired'; op: number; epoch: number; takeover: boolean })
  | (EventBase & { type: 'lease_lost'; op: number });

/** What a lane learned, to persist and import later. */
export interface EngineState {
  version: number;
  budget?: number | null;
  entities?: Record<string, { committed_token?: string | null; budget?: number | null }>;
}

/* ---------------------------------------------------------------------------------- */
/* Lane                                                                               */
/* ---------------------------------------------------------------------------------- */

/** The subset of `AbortSignal` writelane uses. */
export interface AbortSignalLike {
  readonly aborted: boolean;
  readonly reason?: unknown;
  addEventListener(type: 'abort', listener: () => void, options?: { once?: boolean }): void;
  removeEventListener(type: 'abort', listener: () => void): void;
}

/**
 * The clock a `Lane` reads and sleeps on: the process's monotonic clock and `setTimeout`
 * by default. Inject one to run lanes in virtual time (tests, simulations).
 */
export interface Clock {
  /** Whole milliseconds on a clock that never goes back. */
  nowMs(): number;
  /**
   * Resolve after `ms` milliseconds on this clock, or soon after `signal` aborts (the lane
   * aborts a sleep it no longer needs).
   */
  sleep(ms: number, signal: AbortSignal): Promise<void>;
}

/** Options of a `Lane`. */
export interface LaneOptions {
  /** Seed of the jitter generator (whole number below 2^53); random by default. */
  seed?: number;
  /** Maps errors writelane does not understand. */
  classify?: Classify;
  /**
   * A lease store shared with writers in other processes and on other machines: with
   * one, lanes are shared whatever the policy said (`lanes.mode` becomes `shared`, for
   * `aws-standard` too). Each store operation is bounded by the policy's
   * `lease.store_timeout_ms`.
   */
  store?: LeaseStore;
  /**
   * This lane's name in lease records, 1 to 256 bytes; `HOST:PID:16-hex-digits` (64
   * random bits) by default. Unique per lane.
   */
  owner?: string;
  /** Who writes, in words (host, pipeline, run id), shown in the lease record. */
  holder?: string;
  /** Replaces the monotonic clock and its timers. */
  clock?: Clock;
  /**
   * OpenTelemetry metrics and a span per run (`instrument` of `writelane/otel`): `true`
   * for the global providers, or its options. Needs `@opentelemetry/api` (an optional peer
   * dependency); off by default.
   */
  telemetry?: boolean | TelemetryOptions;
}

/** `entityAttribute` of `TelemetryOptions`: what metrics say of the entity. */
export type EntityAttribute = 'none' | 'name' | 'hash';

/**
 * Options of `instrument` (`writelane/otel`) and of `LaneOptions.telemetry`. The providers
 * are `@opentelemetry/api`'s `MeterProvider` and `TracerProvider` (typed here by the one
 * method used, so this file needs no OpenTelemetry types).
 */
export interface TelemetryOptions {
  /** The meter provider; the global one by default. */
  meterProvider?: { getMeter(name: string, version?: string, options?: object): unknown };
  /** The tracer provider; the global one by default. */
  tracerProvider?: { getTracer(name: string, version?: string, options?: object): unknown };
  /**
   * What metrics carry of the entity: nothing (`'none'`, the default: entities are
   * unbounded), `writelane.entity` (`'name'`) or `writelane.entity.hash` (`'hash'`: the
   * first 16 hex digits of the SHA-256 of the name).
   */
  entityAttribute?: EntityAttribute;
  /** Entities whose metrics carry `writelane.entity` whatever the mode. */
  entityAllowlist?: Iterable<string>;
}

/** What `write` receives besides the attempt number (a new one for every attempt). */
export interface WriteContext {
  /** The revision the write must be based on, when known. */
  baseToken: string | null;
  /** Shared lanes: the lease epoch the write is made under (a fence), else null. */
  fence: number | null;
  /** The run's abort signal, to pass on to the SDK call. */
  signal: AbortSignalLike | undefined;
  /**
   * Report the change token of the revision this write produced: the lane hands it to the
   * next writer of the entity (which then skips its read) and, with a store, keeps it in
   * the lease record. Throws `UsageError` (field `token`) for a non-string, and the run
   * then rejects with it.
   */
  setToken(token: string): void;
}

/** Options of one `lane.run`. */
export interface RunOptions {
  /** Resolves to the entity's current change token, or null when it does not exist. */
  read?: () => Promise<string | null | undefined>;
  /**
   * The token the change was based on; a different revision is refused. Needs `read`
   * (without one, `run` rejects with `UsageError` kind `expected_needs_read`).
   */
  expected?: string;
  /** Overrides the policy's deadline for this write. */
  deadlineMs?: number;
  /** Abandons the write (and releases the lane) when aborted. */
  signal?: AbortSignalLike;
  /** Maps errors for this write; overrides the lane's. */
  classify?: Classify;
  /** Who writes, in the lease record; overrides the lane's `holder`. */
  holder?: string;
}

/** What an update's `read` resolves to: the entity's document and its change token. */
export interface UpdateRead<D> {
  /** The current document (for example `null` when there is none yet). */
  document: D;
  /** Its change token, or null when the entity does not exist. */
  token: string | null | undefined;
}

/** The functions and options of one `lane.update`. */
export interface UpdateOptions<D> {
  /** Resolves to the entity's current document and its change token. */
  read: () => Promise<UpdateRead<D>> | UpdateRead<D>;
  /**
   * The change: returns the new document and must not modify its argument. It must be a
   * pure function of the document: the leader of the batch calls it (on its own task),
   * and it may be called more than once, on fresher documents (after a conflict, or when
   * a write refused as fatal is split in halves to find the change that breaks it). A
   * change that throws refuses its own update only.
   */
  change: (document: D) => D;
  /**
   * Writes the final document; reports its new change token with `context.setToken` or
   * by resolving to it (any other value is ignored).
   */
  write: (document: D, attempt: number, context: WriteContext) => Promise<string | null | undefined | void> | string | null | undefined | void;
  /** Overrides the policy's deadline for this update (while it waits in the queue). */
  deadlineMs?: number;
  /** Abandons the update when aborted. */
  signal?: AbortSignalLike;
  /** Maps errors of `read` and `write`; overrides the lane's. */
  classify?: Classify;
  /** Who writes, in the lease record; overrides the lane's `holder`. */
  holder?: string;
}

/**
 * One writer per entity at a time (FIFO) for the async tasks of this process, a re-read
 * and change-token check before every retry, jittered backoff, retry budgets and
 * telemetry. Use one Lane per process (or per account) and share it.
 */
export declare class Lane {
  /** @param policy a preset name, overrides, JSON text or a Policy; `iam` by default. */
  constructor(policy?: PolicyInput, options?: LaneOptions);
  /** The policy in force. */
  readonly policy: Policy;
  /** The seed of the jitter generator. */
  readonly seed: number;
  /** This lane's name in lease records (shared lanes), or null. */
  readonly owner: string | null;
  /** The lease store shared with other writers, or null. */
  readonly store: LeaseStore | null;
  /**
   * Run one logical write of `entity`. Resolves to what `write` resolved to. Rejects with
   * `GaveUpError`, `StaleRevisionError`, or `UsageError` for bad arguments.
   */
  run<T>(
    entity: string,
    write: (attempt: number, context: WriteContext) => Promise<T> | T,
    options?: RunOptions,
  ): Promise<T>;
  /**
   * Apply `change` to `entity`'s document with group commit: updates queued behind the
   * lane's holder ride in one write. Resolves to the change token of the write that
   * committed the change (null if none was reported). Rejects with `GaveUpError` (a
   * refused change: reason `fatal`, `errorCode` the error's name, `cause` the error) or
   * `UsageError` for bad arguments.
   */
  update<D>(entity: string, options: UpdateOptions<D>): Promise<string | null>;
  /** Counters and budget levels. */
  stats(): Stats;
  /** Drain the telemetry events recorded since the last call. */
  events(): WritelaneEvent[];
  /** What the lane learned (committed tokens, budget levels). */
  exportState(): EngineState;
  /** Restore state exported earlier. Throws `UsageError`. */
  importState(state: EngineState | string): void;
  /** An AWS SDK v3 retry strategy under this lane's policy (the same object every call). */
  retryStrategy(): RetryStrategy;
  /**
   * The AWS SDK v3 lane middleware: `client.middlewareStack.use(lane.plugin())` runs every
   * write operation of the client in its entity's lane(s), retried inside it; reads and
   * clients of services with no entity table pass straight through. Throws `UsageError`.
   */
  plugin(options?: PluginOptions): LanePlugin;
}

/** Options of `lane.plugin()`. */
export interface PluginOptions {
  /** The account the client acts in: entity keys become ARNs (default: none, keys are
   * `role/name`; right while the lane's store is not shared between accounts). */
  account?: string;
  /** The partition of ARN keys (default `aws`). */
  partition?: string;
  /** Each write's bound in its lane, in milliseconds. */
  deadlineMs?: number;
}

/** Which lanes an SDK call takes. */
export interface EntityKeys {
  /** `write`: runs in the lanes of `keys`; `read` and `unknown`: no lane. */
  access: 'write' | 'read' | 'unknown';
  /** The entity keys, sorted: the order the lanes are taken in. */
  keys: string[];
}

/** The AWS SDK v3 middleware-stack plugin `lane.plugin()` returns, with its counters. */
export declare class LanePlugin {
  private constructor();
  /** Write calls that ran in their lanes. */
  serialised: number;
  /** Calls that went through unserialised because their entity could not be determined
   * (an operation the table does not know, a parameter missing), by operation name. */
  unserialised: Record<string, number>;
  /** Why the last unserialised call could not be keyed. */
  lastUnserialised: string | null;
  /** Which lanes a call takes; throws `EntityError` naming the parameter. */
  keys(service: string, operation: string, input: object): EntityKeys;
  /** The middleware itself (initialize step). */
  middleware(): (next: (args: any) => Promise<any>, context: any) => (args: any) => Promise<any>;
  /** What `client.middlewareStack.use(plugin)` calls. */
  applyToStack(stack: { add(middleware: any, options: any): void }): void;
}

/* ---------------------------------------------------------------------------------- */
/* RetryStrategy                                                                      */
/* ---------------------------------------------------------------------------------- */

/** The state of one SDK call between decisions. */
export declare class RetryToken {
  private constructor();
  /** The retry scope (budget partition). */
  readonly scope: string;
  /** Attempts made so far, counting the first call. */
  readonly attempts: number;
  /** Budget tokens the last retry took. */
  readonly cost: number;
  /** Milliseconds to wait before the next attempt. */
  readonly delayMs: number;
  /** When the call started, on the strategy's clock. */
  readonly startedMs: number;
  /** The class of the failure behind the last retry. */
  readonly errorClass: ErrorClass | null;
  /** Retries granted so far. */
  getRetryCount(): number;
  /** Milliseconds to wait before the next attempt. */
  getRetryDelay(): number;
  /** Budget tokens the last retry took. */
  getRetryCost(): number;
}

/** What the SDK's retry middleware passes to `refreshRetryTokenForRetry`. */
export interface RetryErrorInfo {
  error?: unknown;
  errorType?: 'THROTTLING' | 'TRANSIENT' | 'SERVER_ERROR' | 'CLIENT_ERROR' | string;
  retryAfterHint?: Date;
}

/** Options of a `RetryStrategy`. */
export interface RetryStrategyOptions {
  /** Seed of the jitter generator; random by default. */
  seed?: number;
  /** Maps errors writelane does not understand. */
  classify?: Classify;
  /** Replaces the monotonic clock: whole milliseconds that never go back. */
  now?: () => number;
}

/**
 * The AWS SDK v3 `RetryStrategyV2` with writelane's decisions:
 * `new IAMClient({ retryStrategy: new RetryStrategy('iam') })`.
 */
export declare class RetryStrategy {
  constructor(policy?: PolicyInput, options?: RetryStrategyOptions);
  /** The retry mode reported to the SDK. */
  readonly mode: string;
  /** The policy in force. */
  readonly policy: Policy;
  /** Start a call in `scope`. */
  acquireInitialRetryToken(scope?: string): Promise<RetryToken>;
  /** Decide a retry; rejects with `RetryRefusedError` when there is none. */
  refreshRetryTokenForRetry(token: RetryToken, errorInfo: RetryErrorInfo): Promise<RetryToken>;
  /** The call succeeded: refund or reward the scope's budget. */
  recordSuccess(token: RetryToken): void;
  /** Budget tokens left in `scope`. */
  capacity(scope?: string): number;
}

/* ---------------------------------------------------------------------------------- */
/* Engine (sans-IO)                                                                   */
/* ---------------------------------------------------------------------------------- */

/** What a host observed when a call failed (the core's JSON form). */
export interface FailureJson {
  code?: string | null;
  status?: number | null;
  /** Milliseconds, or the `x-amz-retry-after` header text. */
  retry_after_ms?: number | string | null;
  outcome_unknown?: boolean;
  intended_token?: string | null;
}

/** An input for `Engine.handle`. */
export type Input =
  | { type: 'read_done'; op: number; token?: string | null }
  | { type: 'read_failed'; op: number; failure: FailureJson }
  | { type: 'write_done'; op: number; token?: string | null }
  | { type: 'write_failed'; op: number; failure: FailureJson }
  | { type: 'store_reply'; op: number; reply: StoreReply }
  | { type: 'apply_done'; op: number; results: ApplyResult[] }
  | { type: 'cancel'; op: number };

/** What the host's change made of one update, in an `apply_done` (one per op of the `apply`, in order). */
export interface ApplyResult {
  op: number;
  applied: boolean;
  /** For a refused change: why (an error's name); the update gives up as `fatal` with it. */
  code?: string | null;
}

/** A batch's apply step (from `Engine.pollAction`): run each op's change, in order, on the document the leader read. */
export interface Apply {
  type: 'apply';
  /** The batch's leader: it carries the batch's read, apply and write. */
  op: number;
  /** The updates whose changes to apply, in FIFO order. */
  ops: number[];
}

/** How a write ended. */
export type Outcome =
  | { status: 'committed'; token: string | null; attempts: number }
  | {
      status: 'gave_up';
      reason: GiveUpReason | 'stale_revision';
      attempts: number;
      class?: ErrorClass;
      scope?: 'engine' | 'entity';
      code?: string | null;
      http_status?: number | null;
      expected?: string | null;
      found?: string | null;
    };

/** A command from `Engine.pollCommand`. */
export type Command =
  | { type: 'read'; op: number }
  | { type: 'write'; op: number; attempt: number; base_token: string | null; fence?: number }
  | { type: 'store'; op: number; operation: StoreOp }
  | { type: 'finish'; op: number; outcome: Outcome };

/**
 * The sans-IO engine: no clock, no timers, no IO. Pass `now` in; carry out the commands;
 * feed back inputs; call `handleTimeout` when `pollTimeout` says.
 */
export declare class Engine {
  /** `owner` names the engine in lease records; shared lanes need one. */
  constructor(policy?: PolicyInput, options?: { seed?: number; owner?: string });
  /** The policy in force. */
  readonly policy: Policy;
  /** Start one logical write; returns its operation id. Throws `UsageError`. */
  submit(
    entity: string,
    now: number,
    options?: {
      expected?: string | null;
      deadlineMs?: number | null;
      holder?: string | null;
      /** The writer has no read function: the engine never commands a read. */
      noRead?: boolean;
    },
  ): number;
  /** Feed what the host observed. Throws `UsageError`. */
  handle(now: number, input: Input): void;
  /** Fire every timer due at or before `now`. */
  handleTimeout(now: number): void;
  /**
   * Start one update (group commit); returns its operation id. Drain with `pollAction`.
   * Throws `UsageError`.
   */
  submitUpdate(entity: string, now: number, options?: { deadlineMs?: number | null; holder?: string | null }): number;
  /** The next command of any operation. */
  pollCommand(): Command | null;
  /** The next command or batch apply step of any operation: `pollCommand` for hosts that submit updates. */
  pollAction(): Command | Apply | null;
  /** The pending command or apply step of one operation. */
  pollActionFor(op: number): Command | Apply | null;
  /** The pending command of one operation. */
  pollCommandFor(op: number): Command | null;
  /** When `handleTimeout` must next be called. */
  pollTimeout(): number | null;
  /** When one operation's timer fires. */
  pollTimeoutFor(op: number): number | null;
  /** The next telemetry event. */
  pollEvent(): WritelaneEvent | null;
  /** Counters and budget levels. */
  stats(): Stats;
  /** What the engine learned. */
  exportState(): EngineState;
  /** Restore state exported earlier. */
  importState(state: EngineState | string): void;
}

/* ---------------------------------------------------------------------------------- */
/* Lease stores                                                                        */
/* ---------------------------------------------------------------------------------- */

/** One waiter in a version 2 record's queue. */
export interface Ticket {
  /** The waiting process's owner id. */
  owner: string;
  /** Its ticket number: the record's `next_ticket` when it registered. */
  ticket: number;
  /** Its progress counter, bumped by the waiter every renewal interval. */
  beat: number;
}

/**
 * The one record a lease store keeps per entity (the core's JSON form). Version 2 records
 * (the queue-like hand-off) carry `version: 2` and, when not zero or empty, `beat`,
 * `next_ticket`, `hold_ms` and `queue`; a store must keep every field it is given.
 */
export interface LeaseRecord {
  /** The record's format: absent in version 1 records, 2 in version 2 records. */
  version?: number;
  /** Who holds the lease; empty when released. */
  owner: string;
  /** The fence: bumped by every new holder, never decreases. */
  epoch: number;
  /** Record version number: changes on every write of the record. */
  rvn: number;
  /** How long the holder may go without renewing, in milliseconds. */
  lease_ms: number;
  /** The last committed change token of the entity. */
  committed_token: string | null;
  /** Who holds it in words (host, pipeline, run id), for people debugging. */
  holder: string | null;
  /** Version 2: the holding's progress counter (0, left out, while a grant is not accepted). */
  beat?: number;
  /** Version 2: the next ticket number to give out. */
  next_ticket?: number;
  /** Version 2: the expected hold in milliseconds (a moving average; left out when unknown). */
  hold_ms?: number;
  /** Version 2: the waiters, oldest first, at most 64. */
  queue?: Ticket[];
}

/** What a conditional write of a store resolves to. */
export type WriteResult = { done: true } | { done: false; current: LeaseRecord | null };

/**
 * A lease store adapter: three strongly consistent primitives. A failing operation
 * throws `StoreError` (`unavailable`: surely not carried out; `lost`: no reply).
 */
export interface LeaseStore {
  /** The record at `key`, or `null`. */
  get(key: string): Promise<LeaseRecord | null>;
  /** Create the record if there is none; refused with the record found. */
  putIfAbsent(key: string, record: LeaseRecord): Promise<WriteResult>;
  /** Replace the whole record if its rvn is `expectedRvn`; refused with the record found. */
  compareAndSwap(key: string, expectedRvn: number, record: LeaseRecord): Promise<WriteResult>;
}

/** A store operation as the engine emits it. */
export type StoreOp =
  | { op: 'get'; key: string }
  | { op: 'put_if_absent'; key: string; record: LeaseRecord }
  | { op: 'compare_and_swap'; key: string; expected_rvn: number; record: LeaseRecord };

/** A store reply as the engine takes it. */
export type StoreReply =
  | { reply: 'found'; record: LeaseRecord | null }
  | { reply: 'done' }
  | { reply: 'refused'; current: LeaseRecord | null }
  | { reply: 'lost' }
  | { reply: 'unavailable' };

/** A lease store operation failed: `unavailable` (surely not carried out) or `lost` (no reply). */
export declare class StoreError extends WritelaneError {
  constructor(kind: 'unavailable' | 'lost', message: string, options?: { cause?: unknown });
  readonly code: 'ERR_WRITELANE_STORE';
  /** `unavailable`: surely not carried out; `lost`: sent, and no reply came. */
  readonly kind: 'unavailable' | 'lost';
}

/** What a force-release came to (the core's result, the same in every binding). */
export type ForceReleaseResult =
  /** The store holds no record for the key. */
  | { result: 'no_record' }
  /** The record has no owner already; left unchanged. */
  | { result: 'already_free'; record: LeaseRecord }
  /** The record written: owner empty, epoch plus one, a new rvn, no token, no holder. */
  | { result: 'released'; record: LeaseRecord }
  /** Not at the expected rvn, or changed under the release: nothing written. */
  | { result: 'changed'; current: LeaseRecord | null };

/**
 * Free a stuck lease by compare-and-swap (owner cleared, epoch bumped, never deleted), as
 * the core plans it. With `expectedRvn`, only the holding you inspected. Rejects with
 * `StoreError` when the store failed and the outcome is unknown.
 */
export declare function forceRelease(store: LeaseStore, key: string, options?: { expectedRvn?: number }): Promise<ForceReleaseResult>;

/**
 * Carry out one store operation with `store`; adapter failures, and no reply within
 * `timeoutMs` (default: the default policy's `lease.store_timeout_ms`), become
 * `lost`/`unavailable`. A malformed operation throws `UsageError` naming the field.
 */
export declare function applyStoreOp(store: LeaseStore, operation: StoreOp, options?: { timeoutMs?: number }): Promise<StoreReply>;

/**
 * Check a lease record by the core's rules and return the core's copy; throws `UsageError`
 * (`invalid_record`) naming the field (`record.epoch`).
 */
export declare function checkRecord(record: unknown, what?: string): LeaseRecord;

/** A lease store in this process's memory (tests; lanes of one process). */
export declare class MemoryStore implements LeaseStore {
  get(key: string): Promise<LeaseRecord | null>;
  putIfAbsent(key: string, record: LeaseRecord): Promise<WriteResult>;
  compareAndSwap(key: string, expectedRvn: number, record: LeaseRecord): Promise<WriteResult>;
  /** Every record as stored (not checked), by key. */
  snapshot(): Record<string, LeaseRecord>;
}

/** Options of `RedisStore`. */
export interface RedisStoreOptions {
  /** An ioredis client of yours (with `enableOfflineQueue: false`). */
  client?: unknown;
  /** `redis://host:port/db` for a client the store makes. */
  url?: string;
  host?: string;
  port?: number;
  /** Goes before every key (default `writelane:lease:`, as in every writelane binding). */
  prefix?: string;
  /** Command timeout of a client the store makes (default: the core's store timeout, 2000). */
  commandTimeoutMs?: number;
  /** How long an operation waits for a connection before `unavailable` (default as above). */
  connectTimeoutMs?: number;
}

/** A lease store in Redis (ioredis): a JSON string per key, SET NX and a Lua compare-and-swap. */
export declare class RedisStore implements LeaseStore {
  constructor(options?: RedisStoreOptions);
  /** The ioredis client in use. */
  readonly client: any;
  get(key: string): Promise<LeaseRecord | null>;
  putIfAbsent(key: string, record: LeaseRecord): Promise<WriteResult>;
  compareAndSwap(key: string, expectedRvn: number, record: LeaseRecord): Promise<WriteResult>;
  /** Close the connection if the store made the client. */
  close(): Promise<void>;
}

/** Options of `DynamoDBStore`. */
export interface DynamoDBStoreOptions {
  /** The table (partition key `key`, type S). */
  table: string;
  /** A DynamoDBClient of yours (give it `maxAttempts: 1`). */
  client?: unknown;
  region?: string;
  endpoint?: string;
  credentials?: unknown;
  /** Request timeout of a client the store makes (default: the core's store timeout, 2000). */
  requestTimeoutMs?: number;
}

/** A lease store in a DynamoDB table: consistent reads and conditional PutItem. */
export declare class DynamoDBStore implements LeaseStore {
  constructor(options: DynamoDBStoreOptions);
  /** The table name. */
  readonly table: string;
  /** The DynamoDBClient in use. */
  readonly client: any;
  /** Create the table (on-demand) if it does not exist and wait until it is active. */
  createTable(options?: { waitMs?: number }): Promise<void>;
  get(key: string): Promise<LeaseRecord | null>;
  putIfAbsent(key: string, record: LeaseRecord): Promise<WriteResult>;
  compareAndSwap(key: string, expectedRvn: number, record: LeaseRecord): Promise<WriteResult>;
  /** Close the client if the store made it. */
  close(): void;
}

/** Options of `S3Store`. */
export interface S3StoreOptions {
  /** The bucket (it must exist). */
  bucket: string;
  /** Goes before every key (default none; end it with `/` for a folder). */
  prefix?: string;
  /** An S3Client of yours (give it `maxAttempts: 1`). */
  client?: unknown;
  region?: string;
  /** A local server's URL (the client the store makes then addresses buckets by path). */
  endpoint?: string;
  credentials?: unknown;
  /** Request timeout of a client the store makes (default: the core's store timeout, 2000). */
  requestTimeoutMs?: number;
}

/**
 * A lease store in an S3 bucket: one object per entity at `prefix + key` holding the
 * record's JSON (rvn inside); conditional PutObject with `If-None-Match: *` or
 * `If-Match: <etag>`; never a delete.
 */
export declare class S3Store implements LeaseStore {
  constructor(options: S3StoreOptions);
  /** The bucket name. */
  readonly bucket: string;
  /** What goes before every key. */
  readonly prefix: string;
  /** The S3Client in use. */
  readonly client: any;
  /** The object that holds the record of `key`: `prefix + key`. */
  objectKey(key: string): string;
  get(key: string): Promise<LeaseRecord | null>;
  putIfAbsent(key: string, record: LeaseRecord): Promise<WriteResult>;
  compareAndSwap(key: string, expectedRvn: number, record: LeaseRecord): Promise<WriteResult>;
  /** Close the client if the store made it. */
  close(): void;
}

/* ---------------------------------------------------------------------------------- */
/* IAM shapes                                                                          */
/* ---------------------------------------------------------------------------------- */

/** An IAM policy document (as `JSON.parse` of IAM's text gives it). */
export interface IamPolicyDocument {
  Version?: string;
  Statement?: IamStatement[] | IamStatement;
  [field: string]: unknown;
}

/** One statement of a policy document. */
export interface IamStatement {
  Sid?: string;
  [field: string]: unknown;
}

/** One IAM tag. */
export interface IamTag {
  Key: string;
  Value: string;
}

/**
 * Changes for the common IAM shapes, for `lane.update`: thin wrappers over the core's, so
 * every language changes a document the same way. Each returns a new document (the
 * argument is never modified) and is idempotent. A document of the wrong shape throws
 * `DocumentError` naming the field.
 */
export declare const iam: {
  /** Append `statement`, or replace the statement with its `Sid` (which it must have). `doc` null: none yet. */
  putStatement(doc: IamPolicyDocument | null, statement: IamStatement): IamPolicyDocument;
  /** Remove the statement with this `Sid`, if there is one. */
  removeStatement(doc: IamPolicyDocument, sid: string): IamPolicyDocument;
  /** Add a principal (`kind` `AWS`, `Service` or `Federated`) to the trust statement with this `Sid`, created when missing. */
  addTrustPrincipal(doc: IamPolicyDocument | null, sid: string, kind: 'AWS' | 'Service' | 'Federated', principal: string): IamPolicyDocument;
  /** Set tags: a key present gets its new value in place, a new key is appended. */
  setTags(tags: IamTag[] | null, values: Record<string, string> | Array<[string, string]>): IamTag[];
  /** The `change` of an update that puts `statement`. */
  statementPutter(statement: IamStatement): (doc: IamPolicyDocument | null) => IamPolicyDocument;
};
