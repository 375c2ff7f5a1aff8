'use strict';
/**
 * `Lane`: the driver loop around the core's engine. It holds no rule of the protocol:
 *
 *     op = submit(entity, now, {expected, deadline, holder, no_read: no read function})
 *     loop: take the op's command
 *         read / write(attempt) -> call the user's function -> feed what it returned or threw
 *         store(operation)      -> the store adapter carries it out -> feed the reply
 *         finish                -> resolve or reject with the outcome
 *     no command: wait for one; the lane's one sleep fires the engine's timers
 *
 * Commands of every op are drained in one place (`#pump`) and handed to the op's run, so a
 * change made by one run (the lane freed, a timer fired) wakes only the runs that got a
 * command. One sleep on the lane's clock, until the engine's next timeout, serves every
 * waiting run; an idle lane sleeps on nothing, so it never holds the process open.
 *
 * Hot-path rule: strings cost far more to copy into WebAssembly than a decision takes, so
 * entity names and error codes are interned once and passed as integer handles.
 *
 * @module writelane/lane
 */

const {
  native, STATUS_ERROR, nativeError, jsonText, seedOf, ownerOf, holderOf, checkOptions,
} = require('./native.js');
const {
  WritelaneError, UsageError, GaveUpError, StaleRevisionError, argumentError,
} = require('./errors.js');
const { resolvePolicy, policyForStore } = require('./policy.js');
const { failureOf, checkClassify, feedFailure } = require('./failure.js');
const { WriteContext, settleContext, Run } = require('./run.js');
const { clockOf, startTimer } = require('./clock.js');
const { checkStore, carryOut, defaultOwner } = require('./lease.js');
const { RetryStrategy } = require('./strategy.js');

/** Command kinds of the native register (see `bindings-wasm/src/lib.rs`). */
const [CMD_NONE, CMD_READ, CMD_WRITE, CMD_FINISH, CMD_STORE] = [0, 1, 2, 3, 4];
const READ = Object.freeze({ kind: CMD_READ });
const COMMITTED = Object.freeze({ kind: CMD_FINISH, committed: true });
/** The key of the hook `writelane/otel` instruments a lane through (not public API). */
const TELEMETRY = Symbol('writelane.telemetry');
/** The option a refused submit is about, by the core's usage-error kind. */
const SUBMIT_FIELDS = {
  invalid_entity: 'entity', expected_needs_read: 'options.expected', invalid_token: 'options.expected', invalid_owner: 'options.holder',
};

/**
 * One writer per entity at a time, FIFO, for every async task of this process that writes
 * through it (and, with a lease store, across every process sharing the store); re-read
 * and change-token check before every retry; jittered backoff; retry budgets;
 * conflict-spike cool-downs; telemetry.
 */
class Lane {
  #raw;
  #policy;
  #seed;
  #classify;
  #clock;
  #store;
  #storeTimeoutMs;
  #owner;
  #holder;
  #entities = new Map();
  #codes = new Map();
  #runs = new Map();
  #cancelTimer = null;
  #timerAt = -1;
  #strategy = null;
  /** The OpenTelemetry instrumentation (`writelane/otel`), or null. */
  #telemetry = null;

  /**
   * @param {string | object | Policy} [policy] a preset name, overrides, JSON text or a Policy
   * @param {object} [options] `seed`, `classify`, `store` (lanes are then shared, the core's
   *   `Policy::for_store`), `owner`, `holder`, `clock`, `telemetry` (`true` or the options
   *   of `instrument` from `writelane/otel`) (see `LaneOptions` in index.d.ts)
   */
  constructor(policy, options) {
    checkOptions(options);
    let resolved = resolvePolicy(policy);
    this.#seed = seedOf(options);
    this.#classify = checkClassify(options?.classify, 'options.classify');
    this.#clock = clockOf(options);
    this.#store = checkStore(options?.store, 'options.store');
    this.#holder = holderOf(options);
    if (options?.storeTimeoutMs !== undefined) {
      throw new UsageError('options.storeTimeoutMs is replaced by the policy field lease.store_timeout_ms', 'invalid_argument', 'options.storeTimeoutMs');
    }
    if (this.#store !== undefined) {
      resolved = policyForStore(resolved);
    } else if (resolved._object.lanes.mode === 'shared') {
      throw new UsageError('shared lanes need a lease store: pass options.store', 'invalid_argument', 'options.store');
    }
    this.#policy = resolved;
    this.#storeTimeoutMs = resolved._object.lease.store_timeout_ms;
    this.#owner = ownerOf(options) ?? (this.#store === undefined ? undefined : defaultOwner());
    const raw = native.RawEngine.create(resolved.toString(), this.#seed, this.#owner);
    if (raw === undefined) throw new UsageError('the engine could not be created', 'internal');
    this.#raw = raw;
    const telemetry = options?.telemetry;
    if (telemetry !== undefined && telemetry !== null && telemetry !== false) {
      if (telemetry !== true && typeof telemetry !== 'object') throw argumentError('options.telemetry', 'must be true or the options of instrument()', telemetry);
      let otel;
      try {
        otel = require('./otel.js');
      } catch (e) {
        if (e?.code !== 'MODULE_NOT_FOUND') throw e;
        throw new UsageError(`options.telemetry needs @opentelemetry/api (npm install @opentelemetry/api): ${e.message.split('\n')[0]}`, 'invalid_argument', 'options.telemetry');
      }
      otel.instrument(this, telemetry === true ? {} : telemetry);
    }
  }

  /** Hook of `writelane/otel`: `make(hooks)` builds the instrumentation, installed once. */
  [TELEMETRY](make) {
    if (this.#telemetry !== null) throw new UsageError('telemetry is already on for this lane', 'invalid_argument', 'lane');
    this.#telemetry = make({
      events: () => this.events(),
      nowMs: () => this.#clock.nowMs(),
      shared: this.#store !== undefined,
    });
  }

  /** The policy in force. */
  get policy() { return this.#policy; }

  /** The seed of the jitter generator. */
  get seed() { return this.#seed; }

  /** This lane's name in lease records (shared lanes), or `null`. */
  get owner() { return this.#owner ?? null; }

  /** The lease store shared with other writers, or `null`. */
  get store() { return this.#store ?? null; }

  #entity(entity) {
    let h = this.#entities.get(entity);
    if (h !== undefined) return h;
    if (typeof entity !== 'string') throw argumentError('entity', 'must be a string', entity);
    h = this.#raw.internEntity(entity);
    if (h < 0) throw nativeError(this.#raw, 'entity');
    this.#entities.set(entity, h);
    return h;
  }

  /** Hand every ready command to its run, then keep the one sleep. */
  #pump() {
    const raw = this.#raw;
    for (let kind = raw.pollCommand(); kind !== CMD_NONE; kind = raw.pollCommand()) {
      const run = this.#runs.get(raw.cmdOp());
      if (run === undefined) continue;
      if (kind === CMD_READ) {
        run.deliver(READ);
      } else if (kind === CMD_WRITE) {
        const fence = raw.cmdFence();
        run.deliver({ kind, attempt: raw.cmdAttempt(), baseToken: raw.cmdBaseToken() ?? null, fence: fence < 0 ? null : fence });
      } else if (kind === CMD_STORE) {
        run.deliver({ kind, operation: JSON.parse(raw.cmdStoreJson()) });
      } else {
        run.deliver(raw.cmdOutcomeStatus() === 1 ? COMMITTED : { kind, outcome: JSON.parse(raw.cmdOutcomeJson()) });
      }
    }
    this.#arm();
  }

  /** Sleep until the engine's next timeout, while any run is live. */
  #arm() {
    const at = this.#runs.size === 0 ? -1 : this.#raw.pollTimeout();
    if (at === this.#timerAt) return;
    this.#cancelTimer?.();
    this.#cancelTimer = null;
    this.#timerAt = -1;
    if (at < 0) return;
    const now = this.#clock.nowMs();
    if (at <= now) {
      this.#fire();
      return;
    }
    this.#timerAt = at;
    this.#cancelTimer = startTimer(this.#clock, at - now, this.#onTimer);
  }

  #onTimer = () => {
    this.#cancelTimer = null;
    this.#timerAt = -1;
    this.#fire();
  };

  /** Fire the engine's due timers and hand out what they made ready. */
  #fire() {
    if (this.#raw.handleTimeout(this.#clock.nowMs()) === STATUS_ERROR) this.#raw.takeError();
    else this.#pump();
  }

  #cancel(run) {
    run.phase = 'cancelled';
    if (this.#raw.cancel(this.#clock.nowMs(), run.op) === STATUS_ERROR) this.#raw.takeError();
    this.#pump();
  }

  /** Go on after an input; one the engine refused ends the run with the usage error. */
  #fed(run, status, field) {
    if (status !== STATUS_ERROR) {
      this.#pump();
      return;
    }
    run.error = nativeError(this.#raw, field);
    this.#cancel(run);
  }

  #failed(run, isWrite, error) {
    run.lastError = error;
    let f;
    try {
      f = failureOf(error, run.classify);
    } catch (e) {
      run.error = e instanceof WritelaneError ? e : new UsageError(`classify threw: ${e}`, 'invalid_argument', 'classify');
      this.#cancel(run);
      return;
    }
    this.#fed(run, feedFailure(this.#raw, this.#codes, this.#clock.nowMs(), run.op, isWrite, f), null);
  }

  /** Call the user's read or write and feed back what came of it. */
  async #call(run, cmd) {
    const raw = this.#raw;
    const context = cmd.kind === CMD_WRITE ? new WriteContext(cmd.baseToken, cmd.fence, run.signal) : undefined;
    run.phase = 'calling';
    let value;
    let error;
    let ok = false;
    try {
      value = context === undefined ? await run.read() : await run.write(cmd.attempt, context);
      ok = true;
    } catch (e) {
      error = e;
    }
    run.phase = 'waiting';
    const settled = context === undefined ? null : settleContext(context);
    if (settled !== null && settled.misuse !== null) {
      run.error = settled.misuse;
      this.#cancel(run);
    } else if (run.signal?.aborted) {
      if (!ok) run.lastError = error;
      this.#cancel(run);
    } else if (!ok) {
      this.#failed(run, context !== undefined, error);
    } else if (context !== undefined) {
      run.phase = 'committing';
      run.result = value;
      this.#fed(run, raw.writeDone(this.#clock.nowMs(), run.op, settled.token), settled.token === undefined ? null : 'token');
    } else if (value !== null && value !== undefined && typeof value !== 'string') {
      run.error = argumentError('read()', 'must resolve to a change token (string) or null', value);
      this.#cancel(run);
    } else {
      this.#fed(run, raw.readDone(this.#clock.nowMs(), run.op, value ?? undefined), 'read()');
    }
  }

  /** Carry out a store operation, always to its reply (the engine's view of the lease must stay true). */
  async #storeOp(run, cmd) {
    if (run.phase === 'waiting') run.phase = 'storing';
    const { reply, error } = await carryOut(this.#store, cmd.operation, this.#storeTimeoutMs, this.#clock);
    if (error !== undefined) run.storeError = error;
    if (run.phase === 'storing') run.phase = 'waiting';
    this.#fed(run, this.#raw.storeReply(this.#clock.nowMs(), run.op, JSON.stringify(reply)), null);
    // Aborted meanwhile: cancel once no store operation is next (the engine then releases).
    if (run.phase === 'waiting' && run.signal?.aborted && run.cmd?.kind !== CMD_STORE) this.#cancel(run);
  }

  /**
   * Run one logical write of `entity` (one at a time per entity, FIFO; with a store, across
   * every process sharing it). Resolves to what `write(attempt, context)` resolved to;
   * rejects with `GaveUpError`, `StaleRevisionError` or `UsageError`. Options: `read`,
   * `expected`, `deadlineMs`, `signal`, `classify`, `holder` (`RunOptions` in index.d.ts).
   */
  async run(entity, write, options) {
    const raw = this.#raw;
    const run = new Run(write, options, this.#classify, this.#holder);
    const { signal } = run;
    run.op = raw.submit(this.#entity(entity), this.#clock.nowMs(), run.expected, run.deadline, run.holder, run.read === undefined);
    if (run.op < 0) {
      const { kind, message } = JSON.parse(raw.takeError());
      throw new UsageError(message, kind, SUBMIT_FIELDS[kind] ?? null);
    }
    this.#runs.set(run.op, run);
    const telemetry = this.#telemetry;
    const rec = telemetry === null ? null : telemetry.start(entity, run);
    const onAbort = signal === undefined ? undefined : () => { if (run.phase === 'waiting') this.#cancel(run); };
    signal?.addEventListener('abort', onAbort, { once: true });
    try {
      if (signal?.aborted) this.#cancel(run);
      else this.#pump();
      for (;;) {
        if (run.cmd === null) await run.next();
        const cmd = run.cmd;
        run.cmd = null;
        if (cmd.kind === CMD_STORE) await this.#storeOp(run, cmd);
        else if (cmd.kind !== CMD_FINISH) await this.#call(run, cmd);
        else if (run.error !== null) throw run.error;
        else if (cmd.committed) {
          if (rec !== null) telemetry.end(rec, null);
          return run.result;
        } else throw this.#gaveUp(run, entity, cmd.outcome);
      }
    } catch (e) {
      if (rec !== null) telemetry.end(rec, e);
      throw e;
    } finally {
      this.#runs.delete(run.op);
      signal?.removeEventListener('abort', onAbort);
      if (this.#runs.size === 0) this.#arm();
    }
  }

  #gaveUp(run, entity, outcome) {
    if (outcome.reason === 'stale_revision') {
      return new StaleRevisionError(entity, outcome.expected ?? null, outcome.found ?? null, outcome.attempts);
    }
    let cause = outcome.reason === 'cancelled' && run.signal?.aborted ? run.signal.reason : run.lastError;
    if (outcome.reason === 'lease_lost' || outcome.reason === 'lock_unavailable') cause = run.storeError ?? cause;
    return new GaveUpError(entity, outcome, cause);
  }

  /** Counters and budget levels, globally and per entity (the core's JSON form). */
  stats() { return JSON.parse(this.#raw.stats()); }

  /** Drain the telemetry events recorded since the last call (the core's JSON form). */
  events() { return JSON.parse(this.#raw.drainEvents()); }

  /** What the lane learned (committed tokens, budget levels), to persist. */
  exportState() { return JSON.parse(this.#raw.exportState()); }

  /** Restore state exported earlier (by this or another binding). */
  importState(state) {
    const text = typeof state === 'string' ? state : jsonText(state, 'state');
    if (this.#raw.importState(text) === STATUS_ERROR) throw nativeError(this.#raw, 'state');
  }

  /** The AWS SDK v3 retry strategy under this lane's policy and seed (one, so budgets are shared). */
  retryStrategy() {
    if (this.#strategy === null) {
      this.#strategy = new RetryStrategy(this.#policy, { seed: this.#seed, classify: this.#classify });
    }
    return this.#strategy;
  }
}

module.exports = { Lane, TELEMETRY };
