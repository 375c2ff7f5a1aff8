'use strict';
/**
 * `RetryStrategy`: the AWS SDK v3 `RetryStrategyV2` with writelane's decisions, for
 * clients whose calls do not go through `Lane.run`. Tokens live here as plain numbers and
 * every decision is one call into the core's decision-only strategy.
 *
 * @module writelane/strategy
 */

const {
  native, STATUS_ERROR, nativeError, isWhole, seedOf, checkOptions,
} = require('./native.js');
const { UsageError, RetryRefusedError, argumentError } = require('./errors.js');
const { resolvePolicy } = require('./policy.js');
const { failureOf, checkClassify, internCode } = require('./failure.js');
const { systemClock } = require('./clock.js');

const REFRESH_ERROR = -9;
const CLASSES = ['conflict', 'throttle', 'transient', 'unknown', 'fatal'];
const REFUSALS = {
  '-1': 'not_retryable',
  '-2': 'attempts_exhausted',
  '-3': 'budget_exhausted',
  '-4': 'deadline_exceeded',
};

/** The state of one SDK call between decisions, as the SDK's retry middleware expects. */
class RetryToken {
  /**
   * @param {RetryStrategy} owner
   * @param {string} scope
   * @param {number} slot
   * @param {number} attempts
   * @param {number} cost
   * @param {number} delayMs
   * @param {number} startedMs
   * @param {string | null} errorClass
   */
  constructor(owner, scope, slot, attempts, cost, delayMs, startedMs, errorClass) {
    this._owner = owner;
    this._slot = slot;
    /** The retry scope (budget partition) the token draws from. */
    this.scope = scope;
    /** Attempts made so far, counting the first call. */
    this.attempts = attempts;
    /** Budget tokens the last retry took (refunded on success). */
    this.cost = cost;
    /** The delay before the next attempt, in milliseconds. */
    this.delayMs = delayMs;
    /** When the call started, on the strategy's clock. */
    this.startedMs = startedMs;
    /** The class of the failure that led to the last retry, if any. */
    this.errorClass = errorClass;
  }

  /** Retries granted so far (0 before the first retry). */
  getRetryCount() {
    return this.attempts - 1;
  }

  /** Milliseconds to wait before the next attempt. */
  getRetryDelay() {
    return this.delayMs;
  }

  /** Budget tokens the last retry took. */
  getRetryCost() {
    return this.cost;
  }
}

const SDK_ERROR_TYPES = {
  THROTTLING: { status: 429 },
  TRANSIENT: { status: 503 },
  SERVER_ERROR: { status: 500 },
  CLIENT_ERROR: { status: 400 },
};

/**
 * The AWS SDK v3 `RetryStrategyV2` with writelane's decisions: error classes by code
 * (so `ConcurrentModification` is retried), per-class backoff, attempts and deadlines,
 * and a retry budget per scope. With the `aws-standard` preset it behaves as the SDK's
 * standard mode.
 */
class RetryStrategy {
  /** The retry mode reported to the SDK. */
  mode = 'standard';
  #raw;
  #policy;
  #clock;
  #classify;
  #timeless;
  #scopes = new Map();
  #codes = new Map();

  /**
   * @param {string | object | Policy} [policy] as for `Lane`; the `iam` preset by default
   * @param {{seed?: number, classify?: (error: unknown) => object | null | undefined, now?: () => number}} [options]
   *   `now` replaces the monotonic clock (whole milliseconds that never go back)
   */
  constructor(policy, options) {
    checkOptions(options);
    this.#policy = resolvePolicy(policy);
    const seed = seedOf(options);
    this.#classify = checkClassify(options?.classify, 'options.classify');
    const now = options?.now ?? undefined;
    if (now !== undefined && typeof now !== 'function') throw argumentError('options.now', 'must be a function', now);
    this.#clock = now ?? systemClock.nowMs;
    this.#timeless = now === undefined && this.#policy.toJSON().deadline_ms === null;
    const raw = native.RawStrategy.create(this.#policy.toString(), seed);
    if (raw === undefined) throw new UsageError('the strategy could not be created', 'internal');
    this.#raw = raw;
  }

  /** The policy in force. */
  get policy() {
    return this.#policy;
  }

  #now() {
    // Without a deadline no decision depends on time: the monotonic clock is not read.
    if (this.#timeless) return 0;
    const now = this.#clock();
    if (!isWhole(now)) throw argumentError('options.now()', 'must return whole milliseconds from 0 to 2^53-1', now);
    return now;
  }

  /**
   * Start an SDK call in `scope` (the SDK passes its partition id).
   * @param {string} [scope]
   * @returns {Promise<RetryToken>}
   */
  async acquireInitialRetryToken(scope) {
    const name = scope === undefined || scope === null ? '' : String(scope);
    const now = this.#now();
    let slot = this.#scopes.get(name);
    if (slot === undefined) {
      // The first call in a scope creates its budget; later tokens only need its index,
      // which never changes, so they are made here without a call into the engine.
      const h = this.#raw.internScope(name);
      if (h < 0) throw nativeError(this.#raw, 'scope');
      slot = this.#raw.acquire(h, now);
      if (slot < 0) throw nativeError(this.#raw, 'scope');
      this.#scopes.set(name, slot);
    }
    return new RetryToken(this, name, slot, 1, 0, 0, now, null);
  }

  /**
   * Decide a retry of the call that just failed. Resolves to the token for the next
   * attempt (wait `getRetryDelay()` first), or rejects with `RetryRefusedError`.
   * @param {RetryToken} token
   * @param {{error?: unknown, errorType?: string, retryAfterHint?: Date}} errorInfo
   * @returns {Promise<RetryToken>}
   */
  async refreshRetryTokenForRetry(token, errorInfo) {
    if (!(token instanceof RetryToken) || token._owner !== this) {
      throw argumentError('token', 'must be a token issued by this strategy', token);
    }
    const error = errorInfo?.error;
    let f;
    if (error !== undefined && error !== null) {
      f = failureOf(error, this.#classify);
    } else {
      const t = SDK_ERROR_TYPES[errorInfo?.errorType];
      f = { code: null, status: t ? t.status : null, retryAfterMs: null, outcomeUnknown: false };
    }
    let retryAfter = f.retryAfterMs ?? -1;
    const hint = errorInfo?.retryAfterHint;
    if (retryAfter < 0 && hint instanceof Date && !Number.isNaN(hint.getTime())) {
      retryAfter = Math.max(0, Math.ceil(hint.getTime() - Date.now()));
    }
    const raw = this.#raw;
    let code = -1;
    let codeText;
    if (f.code !== null) {
      code = internCode(raw, this.#codes, f.code);
      if (code === -2) codeText = f.code;
    }
    const now = this.#now();
    const r = raw.refresh(token._slot, token.attempts, token.cost, token.delayMs, token.startedMs,
      code, codeText, f.status ?? -1, retryAfter, f.outcomeUnknown, now);
    if (r >= 0) {
      return new RetryToken(this, token.scope, token._slot, token.attempts + 1, raw.lastCost(), r,
        token.startedMs, CLASSES[raw.lastClass()]);
    }
    if (r === REFRESH_ERROR) throw nativeError(raw, 'token');
    const refusal = JSON.parse(raw.lastRefusalJson() ?? '{}');
    throw new RetryRefusedError(REFUSALS[r], token.attempts, refusal.class ?? null, error);
  }

  /**
   * The call succeeded: refund the last retry's cost, or add the success reward.
   * @param {RetryToken} token
   */
  recordSuccess(token) {
    if (!(token instanceof RetryToken) || token._owner !== this) {
      throw argumentError('token', 'must be a token issued by this strategy', token);
    }
    if (this.#raw.recordSuccess(token._slot, token.attempts, token.cost, token.delayMs, token.startedMs) === STATUS_ERROR) {
      throw nativeError(this.#raw, 'token');
    }
  }

  /**
   * Budget tokens left in `scope`.
   * @param {string} [scope]
   * @returns {number}
   */
  capacity(scope) {
    return this.#raw.capacity(scope === undefined || scope === null ? '' : String(scope));
  }
}

module.exports = { RetryStrategy, RetryToken };
