'use strict';
/**
 * writelane for Node: the write discipline for cloud control planes.
 *
 * The decisions (lanes, backoff, budgets, change-token checks, error classes) are made by
 * writelane-core compiled to WebAssembly; this file only drives it. A `Lane` runs each
 * write as a small loop: take the engine's command, carry it out with the caller's async
 * `read`/`write`, feed back what happened, and sleep on a timer when the engine says so.
 * One timer per lane serves every waiting write; nothing here busy-waits.
 *
 * Hot-path rule: strings cost far more to copy into WebAssembly than a decision takes,
 * so entity names, error codes and retry scopes are interned once and passed as integer
 * handles afterwards.
 *
 * @module writelane
 */

const os = require('node:os');
const { randomBytes } = require('node:crypto');
const native = require('../pkg/writelane_wasm.js');

const CMD_NONE = 0;
const CMD_READ = 1;
const CMD_WRITE = 2;
const CMD_FINISH = 3;
const CMD_STORE = 4;
const STATUS_ERROR = -1;
const REFRESH_ERROR = -9;
/** Error codes interned per engine before codes are sent as text instead. */
const MAX_INTERNED_CODES = 4096;
const MAX_CODE_LENGTH = 256;
const CLASSES = ['conflict', 'throttle', 'transient', 'unknown', 'fatal'];
const REFUSALS = {
  '-1': 'not_retryable',
  '-2': 'attempts_exhausted',
  '-3': 'budget_exhausted',
  '-4': 'deadline_exceeded',
};

/* ------------------------------------------------------------------------------------ */
/* Errors                                                                               */
/* ------------------------------------------------------------------------------------ */
const {
  WritelaneError, PolicyError, UsageError, TokenError, GaveUpError, StaleRevisionError,
  RetryRefusedError, StoreError, describe, argumentError,
} = require('./errors.js');
const stores = require('./stores.js');

/** A store adapter given to a Lane: the three primitives as functions. */
function checkStore(store, field) {
  if (store === undefined || store === null) return undefined;
  if (typeof store !== 'object' || ['get', 'putIfAbsent', 'compareAndSwap'].some((m) => typeof store[m] !== 'function')) {
    throw argumentError(field, 'must be a lease store (get, putIfAbsent, compareAndSwap)', store);
  }
  return store;
}

/** An owner name unique to this process and lane: `host:pid:random`. */
function defaultOwner() {
  const host = os.hostname().slice(0, 200) || 'host';
  return `${host}:${process.pid}:${randomBytes(6).toString('hex')}`;
}

/** Turn the native layer's kept error into a UsageError. */
function nativeError(raw, field = null) {
  const text = raw.takeError();
  if (text === undefined) {
    return new UsageError('the engine refused the call', 'internal', field);
  }
  const { kind, message } = JSON.parse(text);
  return new UsageError(message, kind, field);
}

/** JSON text of an argument, or a UsageError naming it when it is not JSON. */
function jsonText(value, field) {
  let text;
  try {
    text = JSON.stringify(value);
  } catch (e) {
    throw new UsageError(`${field} is not JSON: ${e.message}`, 'invalid_argument', field);
  }
  if (typeof text !== 'string') throw argumentError(field, 'must be an object or JSON text', value);
  return text;
}

/* ------------------------------------------------------------------------------------ */
/* Numbers and the clock                                                                */
/* ------------------------------------------------------------------------------------ */

function isWhole(value) {
  return typeof value === 'number' && Number.isSafeInteger(value) && value >= 0;
}

function wholeArg(value, field) {
  if (!isWhole(value)) {
    throw argumentError(field, 'must be a whole number of milliseconds from 0 to 2^53-1', value);
  }
  return value;
}

function seedOf(options, field = 'options.seed') {
  const seed = options?.seed;
  if (seed === undefined || seed === null) {
    return Math.floor(Math.random() * 2 ** 53);
  }
  if (!isWhole(seed)) throw argumentError(field, 'must be a whole number from 0 to 2^53-1', seed);
  return seed;
}

/** An engine's owner in lease records: 1 to 256 bytes, or undefined for none. */
function ownerOf(options, field = 'options.owner') {
  const owner = options?.owner;
  if (owner === undefined || owner === null) return undefined;
  if (typeof owner !== 'string') throw argumentError(field, 'must be a string', owner);
  const bytes = Buffer.byteLength(owner, 'utf8');
  if (bytes < 1 || bytes > 256) {
    throw new UsageError(`${field} must be 1 to 256 bytes long, got ${bytes}`, 'invalid_owner', field);
  }
  return owner;
}

/** A writer's description in lease records, or undefined for none. */
function holderOf(options, field = 'options.holder') {
  const holder = options?.holder;
  if (holder === undefined || holder === null) return undefined;
  if (typeof holder !== 'string') throw argumentError(field, 'must be a string', holder);
  return holder;
}

const clockOrigin = performance.now();
/** Milliseconds on a monotonic clock, as whole numbers. */
function monotonicMs() {
  return Math.floor(performance.now() - clockOrigin);
}

/* ------------------------------------------------------------------------------------ */
/* Policies                                                                             */
/* ------------------------------------------------------------------------------------ */

/** Check that a value is plain JSON (no NaN, BigInt, functions or class instances). */
function checkJson(value, path) {
  switch (typeof value) {
    case 'string':
    case 'boolean':
      return;
    case 'number':
      if (!Number.isFinite(value)) throw new PolicyError(path, `expected a finite number, found ${value}`);
      return;
    case 'object':
      if (value === null) return;
      if (Array.isArray(value)) {
        value.forEach((item, i) => checkJson(item, `${path}[${i}]`));
        return;
      }
      {
        const proto = Object.getPrototypeOf(value);
        if (proto !== Object.prototype && proto !== null) {
          throw new PolicyError(path, `expected a plain object, found ${proto?.constructor?.name ?? 'object'}`);
        }
        for (const [key, item] of Object.entries(value)) {
          if (item === undefined) continue;
          checkJson(item, path === '$' ? key : `${path}.${key}`);
        }
      }
      return;
    default:
      throw new PolicyError(path, `expected a JSON value, found ${typeof value}`);
  }
}

const POLICY_KEY = Symbol('writelane.policy');

/** A complete, validated policy. Build one with `Policy.preset` or `Policy.fromJSON`. */
class Policy {
  /** @param {symbol} key @param {string} text @param {object} object */
  constructor(key, text, object) {
    if (key !== POLICY_KEY) {
      throw new UsageError('use Policy.preset() or Policy.fromJSON() to build a Policy', 'invalid_argument');
    }
    this._text = text;
    this._object = object;
    Object.freeze(this);
  }

  /**
   * The named preset (`iam`, `aws-standard`) with optional overrides, merged field by
   * field as the core merges them.
   * @param {string} name
   * @param {object} [overrides]
   * @returns {Policy}
   */
  static preset(name, overrides) {
    if (typeof name !== 'string') {
      throw new PolicyError('preset', `expected a preset name (string), found ${describe(name)}`);
    }
    if (overrides === undefined || overrides === null) {
      return Policy.fromJSON(JSON.stringify(name));
    }
    if (typeof overrides !== 'object' || Array.isArray(overrides)) {
      throw new PolicyError('$', `expected an object of overrides, found ${describe(overrides)}`);
    }
    checkJson(overrides, '$');
    if (overrides.preset !== undefined && overrides.preset !== name) {
      throw new PolicyError('preset', `overrides name preset ${JSON.stringify(overrides.preset)}, not ${JSON.stringify(name)}`);
    }
    return Policy.fromJSON(JSON.stringify({ ...overrides, preset: name }));
  }

  /**
   * A policy from JSON text: a preset name as a JSON string, an object of overrides with
   * optional `preset` and `service`, or `null` for the default preset.
   * @param {string} text
   * @returns {Policy}
   */
  static fromJSON(text) {
    if (typeof text !== 'string') {
      throw new PolicyError('$', `expected JSON text, found ${describe(text)}`);
    }
    const result = JSON.parse(native.parsePolicy(text));
    if (!result.ok) throw new PolicyError(result.path, result.rule);
    return new Policy(POLICY_KEY, JSON.stringify(result.policy), result.policy);
  }

  /** The preset this policy started from. */
  get preset() {
    return this._object.preset;
  }

  /** The complete effective policy as a plain object (a copy). */
  toJSON() {
    return JSON.parse(this._text);
  }

  /** The complete effective policy as JSON text. */
  toString() {
    return this._text;
  }
}

/** Accept a preset name, JSON text, a plain object, a Policy or nothing (the default). */
function resolvePolicy(policy) {
  if (policy instanceof Policy) return policy;
  if (policy === undefined || policy === null) return Policy.fromJSON('null');
  if (typeof policy === 'string') {
    const t = policy.trim();
    if (t.startsWith('{') || t.startsWith('"') || t.startsWith('[') || t === 'null') {
      return Policy.fromJSON(policy);
    }
    return Policy.fromJSON(JSON.stringify(policy));
  }
  if (typeof policy === 'object' && !Array.isArray(policy)) {
    checkJson(policy, '$');
    return Policy.fromJSON(JSON.stringify(policy));
  }
  throw new PolicyError('$', `expected a preset name, JSON text, an object or a Policy, found ${describe(policy)}`);
}

/**
 * The canonical change token of an IAM policy document (`c1:sha256:...`): semantically
 * equal documents (URL-encoded or not, statements reordered, scalar or list fields,
 * action case, ...) get equal tokens.
 * @param {string | object} document
 * @returns {string}
 */
function policyToken(document) {
  let text = document;
  if (typeof document === 'object' && document !== null) {
    text = JSON.stringify(document);
  } else if (typeof document !== 'string') {
    throw new TokenError('$', `expected the document as text or an object, found ${describe(document)}`);
  }
  const result = JSON.parse(native.policyToken(text));
  if (!result.ok) throw new TokenError(result.path, result.rule);
  return result.token;
}

/* ------------------------------------------------------------------------------------ */
/* Understanding errors                                                                 */
/* ------------------------------------------------------------------------------------ */

/** Node socket errors raised before the request was sent: a retry is safe. */
const BEFORE_SEND = new Set(['ECONNREFUSED', 'ENOTFOUND', 'EAI_AGAIN', 'EHOSTUNREACH', 'ENETUNREACH', 'EADDRNOTAVAIL']);
/** Errors after the request may have been sent: the outcome is unknown. */
const AFTER_SEND = new Set(['ECONNRESET', 'EPIPE', 'ETIMEDOUT', 'ECONNABORTED', 'ERR_HTTP2_STREAM_ERROR', 'UND_ERR_SOCKET']);
/** The SDK's Node handler names a request that timed out after sending `TimeoutError`. */
const TIMEOUT_NAMES = new Set(['TimeoutError']);

function headerValue(headers, name) {
  if (!headers || typeof headers !== 'object') return undefined;
  if (typeof headers.get === 'function' && !(name in headers)) {
    const v = headers.get(name);
    return v === null ? undefined : v;
  }
  if (headers[name] !== undefined) return headers[name];
  for (const key of Object.keys(headers)) {
    if (key.toLowerCase() === name) return headers[key];
  }
  return undefined;
}

function retryAfterOf(error) {
  const value = headerValue(error.$response?.headers, 'x-amz-retry-after');
  if (typeof value === 'string') {
    const ms = native.parseRetryAfter(value);
    return ms < 0 ? null : ms;
  }
  if (typeof value === 'number' && isWhole(value)) return value;
  return null;
}

function codeOf(error) {
  const c = typeof error.Code === 'string' && error.Code ? error.Code : error.name;
  if (typeof c !== 'string' || c === '' || c === 'Error' || c.length > MAX_CODE_LENGTH) return null;
  return c;
}

/**
 * What writelane understands of an error thrown by an AWS SDK v3 call (or by a Node
 * socket): `{code, status, retryAfterMs, outcomeUnknown}`. Errors it does not recognise
 * give `{code: null, status: null, ...}`, which the engine treats as fatal.
 * @param {unknown} error
 * @returns {{code: string | null, status: number | null, retryAfterMs: number | null, outcomeUnknown: boolean}}
 */
function failureFromError(error) {
  const failure = { code: null, status: null, retryAfterMs: null, outcomeUnknown: false };
  if (error === null || typeof error !== 'object') return failure;
  const meta = error.$metadata;
  const isSdk = (meta !== null && typeof meta === 'object') || error.$fault !== undefined;
  const status = meta?.httpStatusCode;
  const hasStatus = Number.isInteger(status) && status >= 0 && status <= 65535;
  const sysCode = typeof error.code === 'string' ? error.code : undefined;
  if (!hasStatus) {
    // No response: a network error. Before sending, retry; after, the outcome is unknown.
    if (error.name === 'AbortError') return failure;
    if (sysCode !== undefined && BEFORE_SEND.has(sysCode)) {
      failure.code = 'ConnectionError';
      return failure;
    }
    if ((sysCode !== undefined && AFTER_SEND.has(sysCode)) || TIMEOUT_NAMES.has(error.name)) {
      failure.outcomeUnknown = true;
      return failure;
    }
    if (!isSdk) return failure;
  }
  if (!isSdk) return failure;
  failure.code = codeOf(error);
  if (hasStatus) failure.status = status;
  const retryable = error.$retryable;
  if (retryable && typeof retryable === 'object') {
    // A modelled retryable error: listed codes still win, an unlisted one follows the hint.
    failure.status = retryable.throttling ? 429 : 503;
  }
  failure.retryAfterMs = retryAfterOf(error);
  return failure;
}

/** Check and normalise what a user's `classify` returned. */
function checkFailure(f) {
  if (typeof f !== 'object' || Array.isArray(f)) {
    throw argumentError('classify()', 'must return a failure object or null', f);
  }
  const out = { code: null, status: null, retryAfterMs: null, outcomeUnknown: false, intendedToken: null };
  if (f.code !== undefined && f.code !== null) {
    if (typeof f.code !== 'string') throw argumentError('classify().code', 'must be a string', f.code);
    out.code = f.code;
  }
  if (f.status !== undefined && f.status !== null) {
    if (!Number.isInteger(f.status) || f.status < 0 || f.status > 65535) {
      throw argumentError('classify().status', 'must be an HTTP status (0 to 65535)', f.status);
    }
    out.status = f.status;
  }
  if (f.retryAfterMs !== undefined && f.retryAfterMs !== null) {
    out.retryAfterMs = wholeArg(f.retryAfterMs, 'classify().retryAfterMs');
  }
  if (f.outcomeUnknown !== undefined) {
    if (typeof f.outcomeUnknown !== 'boolean') {
      throw argumentError('classify().outcomeUnknown', 'must be a boolean', f.outcomeUnknown);
    }
    out.outcomeUnknown = f.outcomeUnknown;
  }
  if (f.intendedToken !== undefined && f.intendedToken !== null) {
    if (typeof f.intendedToken !== 'string') {
      throw argumentError('classify().intendedToken', 'must be a string', f.intendedToken);
    }
    out.intendedToken = f.intendedToken;
  }
  return out;
}

/** The failure for an error: the user's classify first (when it returns one), then ours. */
function failureOf(error, classify) {
  if (classify !== undefined) {
    const f = classify(error);
    if (f !== undefined && f !== null) return checkFailure(f);
  }
  return failureFromError(error);
}

function checkClassify(classify, field) {
  if (classify !== undefined && classify !== null && typeof classify !== 'function') {
    throw argumentError(field, 'must be a function', classify);
  }
  return classify ?? undefined;
}

/** Intern a code in a native engine or strategy; `-2` when it must go as text. */
function internCode(raw, map, code) {
  let h = map.get(code);
  if (h !== undefined) return h;
  if (map.size >= MAX_INTERNED_CODES) return -2;
  h = raw.internCode(code);
  if (h < 0) return -2;
  map.set(code, h);
  return h;
}

/* ------------------------------------------------------------------------------------ */
/* Lane                                                                                 */
/* ------------------------------------------------------------------------------------ */

const READ_COMMAND = Object.freeze({ kind: CMD_READ });

/** Mark a context's attempt settled; returns the token its write reported, or a misuse. */
let settleContext;

/**
 * What `write` receives besides the attempt number. One per attempt, as Go's `Attempt`:
 * a `setToken` call from an attempt that has settled reaches no later attempt.
 */
class WriteContext {
  #token;
  #misuse = null;
  #settled = false;

  /**
   * @param {string | null} baseToken
   * @param {number | null} fence
   * @param {AbortSignal | undefined} signal
   */
  constructor(baseToken, fence, signal) {
    /** The revision the write must be based on, when known. */
    this.baseToken = baseToken;
    /** Shared lanes: the lease epoch the write is made under (a fence), else null. */
    this.fence = fence;
    /** The run's abort signal, to pass on to the SDK call. */
    this.signal = signal;
  }

  /**
   * Report the change token of the revision this write produced. The lane hands it to
   * the next writer of the entity, which then writes without reading first; with a lease
   * store it is stored in the lease record, for the next holder on any machine.
   * @param {string} token
   */
  setToken(token) {
    if (typeof token !== 'string') {
      const error = argumentError('token', 'must be a string', token);
      // Recorded as well as thrown, so that a write which catches it still fails the run.
      if (!this.#settled && this.#misuse === null) this.#misuse = error;
      throw error;
    }
    if (!this.#settled) this.#token = token;
  }

  static {
    settleContext = (context) => {
      context.#settled = true;
      return { token: context.#token, misuse: context.#misuse };
    };
  }
}

/** Per-write state of a running `lane.run`. */
class Run {
  constructor(op) {
    this.op = op;
    /** A delivered command not yet taken by the run loop. */
    this.cmd = null;
    /** Resolves the run loop's wait for its next command. */
    this.wake = null;
    /** The run is inside the caller's read or write, or a store operation. */
    this.busy = false;
    this.abortRequested = false;
    /** The engine was told to cancel the op. */
    this.cancelled = false;
    /** A write succeeded: the op commits, an abort no longer cancels it. */
    this.wrote = false;
    /** A usage error to reject with once the engine has finished the op. */
    this.misuse = null;
  }

  deliver(cmd) {
    const wake = this.wake;
    if (wake !== null) {
      this.wake = null;
      wake(cmd);
    } else {
      this.cmd = cmd;
    }
  }

  next() {
    const cmd = this.cmd;
    if (cmd !== null) {
      this.cmd = null;
      return cmd;
    }
    return new Promise((resolve) => {
      this.wake = resolve;
    });
  }
}

/**
 * One writer per entity at a time, FIFO, for every async task of this process that writes
 * through it; re-read and change-token check before every retry; jittered backoff; retry
 * budgets; conflict-spike cool-downs; telemetry.
 */
class Lane {
  #raw;
  #policy;
  #seed;
  #classify;
  #entities = new Map();
  #codes = new Map();
  #runs = new Map();
  #timer = null;
  #timerAt = -1;
  #strategy = null;
  #store;
  #storeTimeoutMs;
  #owner;
  #holder;
  #onTimer = () => {
    this.#timer = null;
    this.#timerAt = -1;
    this.#raw.handleTimeout(monotonicMs());
    this.#pump();
  };

  /**
   * @param {string | object | Policy} [policy] a preset name, an object of overrides,
   *   JSON text or a Policy; the `iam` preset by default
   * @param {{seed?: number, classify?: (error: unknown) => object | null | undefined,
   *   store?: object, owner?: string, holder?: string}} [options]
   *   `store`: a lease store shared with writers on other processes or machines
   *   (`RedisStore`, `DynamoDBStore`, ...); with one the lane runs shared lanes (the
   *   policy's `lanes.mode` becomes `shared`), without one it serialises this process
   *   only. `owner` names this lane in lease records (default `host:pid:random`, which
   *   must stay unique per lane); `holder` describes the writer for people debugging a
   *   stuck lease (host, pipeline, run id), per run overridable. `storeTimeoutMs`
   *   (default 10000) bounds each store operation: an adapter that has not answered by
   *   then counts as a lost reply.
   */
  constructor(policy, options) {
    if (options !== undefined && options !== null && typeof options !== 'object') {
      throw argumentError('options', 'must be an object', options);
    }
    let resolved = resolvePolicy(policy);
    this.#seed = seedOf(options);
    this.#classify = checkClassify(options?.classify, 'options.classify');
    this.#store = checkStore(options?.store, 'options.store');
    this.#holder = holderOf(options);
    this.#storeTimeoutMs = options?.storeTimeoutMs === undefined || options?.storeTimeoutMs === null
      ? 10000
      : wholeArg(options.storeTimeoutMs, 'options.storeTimeoutMs');
    if (this.#storeTimeoutMs === 0) throw argumentError('options.storeTimeoutMs', 'must be above 0', 0);
    const mode = resolved.toJSON().lanes?.mode;
    if (this.#store !== undefined && mode !== 'shared') {
      const object = resolved.toJSON();
      object.lanes = { ...object.lanes, mode: 'shared' };
      resolved = Policy.fromJSON(JSON.stringify(object));
    } else if (this.#store === undefined && mode === 'shared') {
      throw new UsageError('shared lanes need a lease store: pass options.store', 'invalid_argument', 'options.store');
    }
    this.#policy = resolved;
    this.#owner = this.#store === undefined ? ownerOf(options) : (ownerOf(options) ?? defaultOwner());
    const raw = native.RawEngine.create(this.#policy.toString(), this.#seed, this.#owner);
    if (raw === undefined) throw new UsageError('the engine could not be created', 'internal');
    this.#raw = raw;
  }

  /** The policy in force. */
  get policy() {
    return this.#policy;
  }

  /** The seed of the jitter generator. */
  get seed() {
    return this.#seed;
  }

  /** This lane's name in lease records (shared lanes), or `null`. */
  get owner() {
    return this.#owner ?? null;
  }

  /** The lease store shared with other writers, or `null`. */
  get store() {
    return this.#store ?? null;
  }

  #entity(entity) {
    let h = this.#entities.get(entity);
    if (h !== undefined) return h;
    if (typeof entity !== 'string') throw argumentError('entity', 'must be a string', entity);
    h = this.#raw.internEntity(entity);
    if (h < 0) throw nativeError(this.#raw, 'entity');
    this.#entities.set(entity, h);
    return h;
  }

  /** Drain every ready command to its run, then arm the one timer. */
  #pump() {
    const raw = this.#raw;
    for (;;) {
      const kind = raw.pollCommand();
      if (kind === CMD_NONE) break;
      const run = this.#runs.get(raw.cmdOp());
      let cmd;
      if (kind === CMD_READ) {
        cmd = READ_COMMAND;
      } else if (kind === CMD_WRITE) {
        const fence = raw.cmdFence();
        cmd = { kind, attempt: raw.cmdAttempt(), baseToken: raw.cmdBaseToken() ?? null, fence: fence < 0 ? null : fence };
      } else if (kind === CMD_STORE) {
        cmd = { kind, operation: JSON.parse(raw.cmdStoreJson()) };
      } else {
        const status = raw.cmdOutcomeStatus();
        cmd = status === 1
          ? { kind, committed: true, attempts: raw.cmdOutcomeAttempts() }
          : { kind, committed: false, outcome: JSON.parse(raw.cmdOutcomeJson()) };
      }
      if (run !== undefined) run.deliver(cmd);
    }
    this.#arm();
  }

  #arm() {
    const at = this.#raw.pollTimeout();
    if (at < 0) {
      if (this.#timer !== null) {
        clearTimeout(this.#timer);
        this.#timer = null;
        this.#timerAt = -1;
      }
      return;
    }
    if (at !== this.#timerAt || this.#timer === null) {
      if (this.#timer !== null) clearTimeout(this.#timer);
      const now = monotonicMs();
      if (at <= now) {
        this.#timer = null;
        this.#timerAt = -1;
        this.#raw.handleTimeout(now);
        this.#pump();
        return;
      }
      this.#timer = setTimeout(this.#onTimer, at - now);
      this.#timerAt = at;
    }
    // Timers of idle lanes (a cool-down ending) must not keep the process alive.
    if (this.#runs.size === 0) this.#timer.unref();
    else this.#timer.ref();
  }

  #cancel(run) {
    run.cancelled = true;
    if (this.#raw.cancel(monotonicMs(), run.op) === STATUS_ERROR) this.#raw.takeError();
    this.#pump();
  }

  #abort(run) {
    if (run.abortRequested) return;
    run.abortRequested = true;
    // After a successful write the op commits (its lease is being released): let it.
    if (!run.busy && !run.wrote) this.#cancel(run);
  }

  /** The engine refused an input: give the op up and reject with the usage error. */
  #misuse(run, error) {
    run.misuse = error;
    this.#cancel(run);
  }

  #failed(run, isWrite, error, classify) {
    let f;
    try {
      f = failureOf(error, classify);
    } catch (e) {
      this.#misuse(run, e instanceof WritelaneError ? e : new UsageError(`classify threw: ${e}`, 'invalid_argument', 'classify'));
      return;
    }
    const raw = this.#raw;
    const now = monotonicMs();
    const code = f.code === null ? -1 : internCode(raw, this.#codes, f.code);
    let status;
    if (code === -2) {
      const failure = { code: f.code, outcome_unknown: f.outcomeUnknown };
      if (f.status !== null) failure.status = f.status;
      if (f.retryAfterMs !== null) failure.retry_after_ms = f.retryAfterMs;
      if (f.intendedToken) failure.intended_token = f.intendedToken;
      status = raw.handleJson(now, JSON.stringify({ type: isWrite ? 'write_failed' : 'read_failed', op: run.op, failure }));
    } else {
      const args = [now, run.op, code, f.status ?? -1, f.retryAfterMs ?? -1, f.outcomeUnknown, f.intendedToken ?? undefined];
      status = isWrite ? raw.writeFailed(...args) : raw.readFailed(...args);
    }
    if (status === STATUS_ERROR) this.#misuse(run, nativeError(raw));
    else this.#pump();
  }

  /**
   * Run one logical write of `entity`. Writes to one entity from concurrent tasks go one
   * at a time, FIFO; with a lease store, one at a time across every process and machine
   * sharing the store (the lane holds the entity's lease while it writes). Resolves to
   * what `write(attempt)` resolved to; rejects with `GaveUpError` or
   * `StaleRevisionError` (or `UsageError` for bad arguments).
   *
   * @template T
   * @param {string} entity the entity name (an ARN or `role/NAME`)
   * @param {(attempt: number, context: WriteContext) => Promise<T>} write
   *   `context.fence` is the lease epoch the write is made under (shared lanes), for
   *   services that can check one; `context.setToken(token)` reports the revision the
   *   write produced
   * @param {{read?: () => Promise<string | null>, expected?: string, deadlineMs?: number, signal?: AbortSignal, classify?: (error: unknown) => object | null | undefined, holder?: string}} [options]
   *   `holder` overrides the lane's description of the writer in the lease record
   * @returns {Promise<T>}
   */
  async run(entity, write, options) {
    const raw = this.#raw;
    if (typeof write !== 'function') throw argumentError('write', 'must be a function', write);
    let read;
    let expected;
    let deadline = -1;
    let signal;
    let classify = this.#classify;
    let holder = this.#holder;
    if (options !== undefined && options !== null) {
      if (typeof options !== 'object') throw argumentError('options', 'must be an object', options);
      read = options.read ?? undefined;
      if (read !== undefined && typeof read !== 'function') throw argumentError('options.read', 'must be a function', read);
      expected = options.expected ?? undefined;
      if (expected !== undefined) {
        if (typeof expected !== 'string') throw argumentError('options.expected', 'must be a string', expected);
        if (read === undefined) {
          throw new UsageError('options.expected needs options.read: without a read the revision cannot be checked', 'invalid_argument', 'options.expected');
        }
      }
      if (options.deadlineMs !== undefined && options.deadlineMs !== null) {
        deadline = wholeArg(options.deadlineMs, 'options.deadlineMs');
      }
      signal = options.signal ?? undefined;
      if (signal !== undefined && (typeof signal !== 'object' || typeof signal.addEventListener !== 'function' || typeof signal.aborted !== 'boolean')) {
        throw argumentError('options.signal', 'must be an AbortSignal', signal);
      }
      if (options.classify !== undefined) classify = checkClassify(options.classify, 'options.classify');
      holder = holderOf(options) ?? this.#holder;
    }
    const handle = this.#entity(entity);
    const op = raw.submit(handle, monotonicMs(), expected, deadline, holder);
    if (op < 0) throw nativeError(raw, 'entity');
    const run = new Run(op);
    this.#runs.set(op, run);
    let onAbort;
    if (signal !== undefined) {
      onAbort = () => this.#abort(run);
      signal.addEventListener('abort', onAbort, { once: true });
    }
    let result;
    let lastError;
    let lastStoreError;
    try {
      if (signal?.aborted) this.#abort(run);
      else this.#pump();
      for (;;) {
        let cmd = run.cmd ?? (await run.next());
        // A finish delivered while this loop was waking up (an abort cancelled the op)
        // supersedes the command it woke for.
        if (run.cmd !== null) cmd = run.cmd;
        run.cmd = null;
        if (cmd.kind === CMD_READ) {
          if (read === undefined) {
            if (raw.readDone(monotonicMs(), op, undefined) === STATUS_ERROR) this.#misuse(run, nativeError(raw));
            else this.#pump();
            continue;
          }
          run.busy = true;
          let token;
          let failed = false;
          let error;
          try {
            token = await read();
          } catch (e) {
            failed = true;
            error = e;
          }
          run.busy = false;
          if (run.abortRequested) {
            this.#cancel(run);
          } else if (failed) {
            lastError = error;
            this.#failed(run, false, error, classify);
          } else if (token !== null && token !== undefined && typeof token !== 'string') {
            this.#misuse(run, argumentError('read()', 'must resolve to a change token (string) or null', token));
          } else if (raw.readDone(monotonicMs(), op, token ?? undefined) === STATUS_ERROR) {
            this.#misuse(run, nativeError(raw, 'read()'));
          } else {
            this.#pump();
          }
        } else if (cmd.kind === CMD_STORE) {
          // Always carried out and answered, even after an abort: the engine's view of
          // the lease must stay true (a release must not be abandoned).
          run.busy = true;
          const { reply, error } = await stores.applyStoreOpDetailed(this.#store, cmd.operation, true, this.#storeTimeoutMs);
          run.busy = false;
          if (error !== undefined) lastStoreError = error;
          if (raw.storeReply(monotonicMs(), op, JSON.stringify(reply)) === STATUS_ERROR) {
            this.#misuse(run, nativeError(raw));
          } else {
            this.#pump();
            // An abort during the store call: cancel once the lease protocol has no
            // operation in flight (the engine then releases a lease it holds).
            const next = run.cmd;
            if (run.abortRequested && !run.cancelled && !run.wrote && (next === null || next.kind !== CMD_STORE)) {
              this.#cancel(run);
            }
          }
        } else if (cmd.kind === CMD_WRITE) {
          const context = new WriteContext(cmd.baseToken, cmd.fence, signal);
          run.busy = true;
          let ok = false;
          let error;
          try {
            result = await write(cmd.attempt, context);
            ok = true;
          } catch (e) {
            error = e;
          }
          run.busy = false;
          const { token, misuse } = settleContext(context);
          if (misuse !== null) {
            this.#misuse(run, misuse);
          } else if (ok) {
            run.wrote = true;
            // The write landed, even if an abort came meanwhile: report it.
            if (raw.writeDone(monotonicMs(), op, token) === STATUS_ERROR) {
              this.#misuse(run, nativeError(raw, token === undefined ? null : 'token'));
            } else {
              this.#pump();
            }
          } else if (run.abortRequested) {
            lastError = error;
            this.#cancel(run);
          } else {
            lastError = error;
            this.#failed(run, true, error, classify);
          }
        } else {
          if (run.misuse !== null) throw run.misuse;
          if (cmd.committed) return result;
          const outcome = cmd.outcome;
          if (outcome.reason === 'stale_revision') {
            throw new StaleRevisionError(entity, outcome.expected ?? null, outcome.found ?? null, outcome.attempts);
          }
          let cause = outcome.reason === 'cancelled' && signal?.aborted ? signal.reason : lastError;
          if (outcome.reason === 'lease_lost' || outcome.reason === 'lock_unavailable') cause = lastStoreError ?? cause;
          throw new GaveUpError(entity, outcome, cause);
        }
      }
    } finally {
      this.#runs.delete(op);
      if (onAbort !== undefined) signal.removeEventListener('abort', onAbort);
      if (this.#runs.size === 0 && this.#timer !== null) this.#timer.unref();
    }
  }

  /** Counters and budget levels, globally and per entity (the core's JSON form). */
  stats() {
    return JSON.parse(this.#raw.stats());
  }

  /** Drain the telemetry events recorded since the last call (the core's JSON form). */
  events() {
    return JSON.parse(this.#raw.drainEvents());
  }

  /** What the lane learned (committed tokens, budget levels), to persist. */
  exportState() {
    return JSON.parse(this.#raw.exportState());
  }

  /**
   * Restore state exported earlier (by this or another binding).
   * @param {object} state
   */
  importState(state) {
    const text = typeof state === 'string' ? state : jsonText(state, 'state');
    if (this.#raw.importState(text) === STATUS_ERROR) throw nativeError(this.#raw, 'state');
  }

  /**
   * An AWS SDK v3 retry strategy under this lane's policy and seed, for clients whose
   * calls do not go through `run`: `new IAMClient({ retryStrategy: lane.retryStrategy() })`.
   * The same strategy is returned on every call, so its budgets are shared.
   * @returns {RetryStrategy}
   */
  retryStrategy() {
    if (this.#strategy === null) {
      this.#strategy = new RetryStrategy(this.#policy, { seed: this.#seed, classify: this.#classify });
    }
    return this.#strategy;
  }
}

/* ------------------------------------------------------------------------------------ */
/* RetryStrategy (AWS SDK v3 RetryStrategyV2)                                           */
/* ------------------------------------------------------------------------------------ */

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
    if (options !== undefined && options !== null && typeof options !== 'object') {
      throw argumentError('options', 'must be an object', options);
    }
    this.#policy = resolvePolicy(policy);
    const seed = seedOf(options);
    this.#classify = checkClassify(options?.classify, 'options.classify');
    const now = options?.now ?? undefined;
    if (now !== undefined && typeof now !== 'function') throw argumentError('options.now', 'must be a function', now);
    this.#clock = now ?? monotonicMs;
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

/* ------------------------------------------------------------------------------------ */
/* Engine (sans-IO)                                                                     */
/* ------------------------------------------------------------------------------------ */

/**
 * The sans-IO engine itself, for hosts that run their own loop (and for the conformance
 * vectors). Time is passed in; inputs, commands, events and stats are plain objects in the
 * core's JSON form (`{"type": "write", "op": 1, "attempt": 1, "base_token": "v1"}`).
 */
class Engine {
  #raw;
  #policy;

  /**
   * @param {string | object | Policy} [policy]
   * @param {{seed?: number, owner?: string}} [options] `owner` names this engine in lease
   *   records (unique per process, such as `host:pid:random`); shared lanes need one
   */
  constructor(policy, options) {
    if (options !== undefined && options !== null && typeof options !== 'object') {
      throw argumentError('options', 'must be an object', options);
    }
    this.#policy = resolvePolicy(policy);
    const raw = native.RawEngine.create(this.#policy.toString(), seedOf(options), ownerOf(options));
    if (raw === undefined) throw new UsageError('the engine could not be created', 'internal');
    this.#raw = raw;
  }

  /** The policy in force. */
  get policy() {
    return this.#policy;
  }

  /**
   * Start one logical write of `entity` at `now`; returns its operation id.
   * @param {string} entity
   * @param {number} now
   * @param {{expected?: string | null, deadlineMs?: number | null, holder?: string | null}} [options]
   *   `holder` describes the writer in lease records (shared lanes)
   * @returns {number}
   */
  submit(entity, now, options) {
    if (typeof entity !== 'string') throw argumentError('entity', 'must be a string', entity);
    wholeArg(now, 'now');
    let expected;
    let deadline = -1;
    let holder;
    if (options !== undefined && options !== null) {
      expected = options.expected ?? undefined;
      if (expected !== undefined && typeof expected !== 'string') throw argumentError('options.expected', 'must be a string', expected);
      if (options.deadlineMs !== undefined && options.deadlineMs !== null) deadline = wholeArg(options.deadlineMs, 'options.deadlineMs');
      holder = holderOf(options);
    }
    const op = this.#raw.submitNamed(entity, now, expected, deadline, holder);
    if (op < 0) throw nativeError(this.#raw);
    return op;
  }

  /**
   * Feed what the host observed: `{type: "read_done" | "read_failed" | "write_done" |
   * "write_failed" | "store_reply" | "cancel", op, token?, failure?, reply?}` (a
   * `store_reply` carries what `applyStoreOp` resolved to).
   * @param {number} now
   * @param {object} input
   */
  handle(now, input) {
    wholeArg(now, 'now');
    if (input === null || typeof input !== 'object') throw argumentError('input', 'must be an object', input);
    if (this.#raw.handleJson(now, jsonText(input, 'input')) === STATUS_ERROR) throw nativeError(this.#raw, 'input');
  }

  /**
   * Fire every timer due at or before `now`.
   * @param {number} now
   */
  handleTimeout(now) {
    wholeArg(now, 'now');
    if (this.#raw.handleTimeout(now) === STATUS_ERROR) throw nativeError(this.#raw);
  }

  /** The next command of any operation, or `null`. */
  pollCommand() {
    return this.#raw.pollCommand() === CMD_NONE ? null : JSON.parse(this.#raw.cmdJson());
  }

  /**
   * The pending command of one operation, or `null`.
   * @param {number} op
   */
  pollCommandFor(op) {
    wholeArg(op, 'op');
    return this.#raw.pollCommandFor(op) === CMD_NONE ? null : JSON.parse(this.#raw.cmdJson());
  }

  /** When `handleTimeout` must next be called, or `null`. */
  pollTimeout() {
    const t = this.#raw.pollTimeout();
    return t < 0 ? null : t;
  }

  /**
   * When one operation's timer fires, or `null`.
   * @param {number} op
   */
  pollTimeoutFor(op) {
    wholeArg(op, 'op');
    const t = this.#raw.pollTimeoutFor(op);
    return t < 0 ? null : t;
  }

  /** The next telemetry event, or `null`. */
  pollEvent() {
    const e = this.#raw.pollEvent();
    return e === undefined ? null : JSON.parse(e);
  }

  /** Counters and budget levels. */
  stats() {
    return JSON.parse(this.#raw.stats());
  }

  /** What the engine learned: committed tokens and budget levels. */
  exportState() {
    return JSON.parse(this.#raw.exportState());
  }

  /**
   * Restore state exported earlier.
   * @param {object} state
   */
  importState(state) {
    const text = typeof state === 'string' ? state : jsonText(state, 'state');
    if (this.#raw.importState(text) === STATUS_ERROR) throw nativeError(this.#raw, 'state');
  }
}

/** The version of the writelane core inside this package. */
const coreVersion = native.coreVersion();

module.exports = {
  Lane,
  Engine,
  RetryStrategy,
  RetryToken,
  Policy,
  policyToken,
  failureFromError,
  coreVersion,
  WritelaneError,
  PolicyError,
  UsageError,
  TokenError,
  GaveUpError,
  StaleRevisionError,
  RetryRefusedError,
  StoreError,
  MemoryStore: stores.MemoryStore,
  RedisStore: stores.RedisStore,
  DynamoDBStore: stores.DynamoDBStore,
  applyStoreOp: stores.applyStoreOp,
  forceRelease: stores.forceRelease,
  checkRecord: stores.checkRecord,
};
