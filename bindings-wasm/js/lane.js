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
 * Updates (group commit, `lane.update`) run through the same loop, drained with the core's
 * `poll_action`: a batch's leader gets an `apply` step, runs every member's `change` (each
 * member's run keeps its own, found by op id) in order on the document it read, reports
 * each applied or refused, and then writes the result.
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
const { LanePlugin, held } = require('./sdk.js');

/** Command kinds of the native register (see `bindings-wasm/src/lib.rs`). */
const [CMD_NONE, CMD_READ, CMD_WRITE, CMD_FINISH, CMD_STORE, CMD_APPLY] = [0, 1, 2, 3, 4, 5];
/** The longest code the core takes for a refused change. */
const MAX_CODE_BYTES = 256;
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
    for (let kind = raw.pollAction(); kind !== CMD_NONE; kind = raw.pollAction()) {
      const run = this.#runs.get(raw.cmdOp());
      if (run === undefined) continue;
      if (kind === CMD_READ) {
        run.deliver(READ);
      } else if (kind === CMD_WRITE) {
        const fence = raw.cmdFence();
        run.deliver({ kind, attempt: raw.cmdAttempt(), baseToken: raw.cmdBaseToken() ?? null, fence: fence < 0 ? null : fence });
      } else if (kind === CMD_STORE) {
        run.deliver({ kind, operation: JSON.parse(raw.cmdStoreJson()) });
      } else if (kind === CMD_APPLY) {
        run.deliver({ kind, ops: Array.from(raw.cmdApplyOps()) });
      } else if (raw.cmdOutcomeStatus() !== 1) {
        run.deliver({ kind, outcome: JSON.parse(raw.cmdOutcomeJson()) });
      } else {
        // An update resolves to the committed token; a run to what its write returned.
        run.deliver(run.change === undefined ? COMMITTED : { kind, committed: true, token: raw.cmdOutcomeToken() ?? null });
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
    const update = run.change !== undefined;
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
      if (update && context !== undefined) {
        // The members this write carried may give up on it (a fatal write): its error is theirs.
        for (const m of run.carried) {
          const member = this.#runs.get(m);
          if (member !== undefined && member !== run) member.writeError = error;
        }
      }
      this.#failed(run, context !== undefined, error);
    } else if (context !== undefined) {
      run.phase = 'committing';
      run.result = value;
      // An update's write may report its token by resolving to it.
      const token = settled.token === undefined && update && typeof value === 'string' ? value : settled.token;
      this.#fed(run, raw.writeDone(this.#clock.nowMs(), run.op, token), token === undefined ? null : 'token');
    } else if (update) {
      if (value === null || typeof value !== 'object' || !('document' in value)
        || (value.token !== null && value.token !== undefined && typeof value.token !== 'string')) {
        run.error = argumentError('read()', 'an update\'s read must resolve to { document, token } (token a string or null)', value);
        this.#cancel(run);
      } else {
        run.doc = value.document;
        this.#fed(run, raw.readDone(this.#clock.nowMs(), run.op, value.token ?? undefined), 'read()');
      }
    } else if (value !== null && value !== undefined && typeof value !== 'string') {
      run.error = argumentError('read()', 'must resolve to a change token (string) or null', value);
      this.#cancel(run);
    } else {
      this.#fed(run, raw.readDone(this.#clock.nowMs(), run.op, value ?? undefined), 'read()');
    }
  }

  /**
   * A batch's apply step, on its leader: each op's change in order on the document the
   * leader read (the first on that document, each next on the previous result); a change
   * that throws is refused with the error's name as the code, and the error kept for its
   * own run. Then the leader writes the result.
   */
  #apply(run, ops) {
    let doc = run.doc;
    const applied = new Uint8Array(ops.length);
    const codes = new Array(ops.length).fill(null);
    run.carried = [];
    ops.forEach((m, i) => {
      const member = this.#runs.get(m);
      if (member?.change === undefined) {
        codes[i] = 'Cancelled'; // its run is gone since the engine planned the batch
        return;
      }
      try {
        const next = member.change(doc);
        if (next !== null && typeof next === 'object' && typeof next.then === 'function') {
          throw new TypeError('change must be a plain function of the document, it returned a promise');
        }
        doc = next;
        applied[i] = 1;
        run.carried.push(m);
      } catch (e) {
        member.refused = e;
        codes[i] = codeOf(e);
      }
    });
    run.doc = doc;
    this.#fed(run, this.#raw.applyDone(this.#clock.nowMs(), run.op, Float64Array.from(ops), applied, JSON.stringify(codes)), null);
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
    if (held.active) run.write = held.marking(this, entity, run.write);
    run.op = raw.submit(this.#entity(entity), this.#clock.nowMs(), run.expected, run.deadline, run.holder, run.read === undefined);
    return this.#drive(run, entity);
  }

  /**
   * Apply `change` to `entity`'s document under the discipline, with group commit: updates
   * of one entity queued behind the one holding its lane ride in that one's write. The
   * batch's leader calls its own `read` once, runs every member's `change` in FIFO order
   * on the document, and calls its `write` once with the result; every update of the batch
   * resolves to that write's token (or rejects with its `GaveUpError`).
   *
   * `read()` resolves to `{ document, token }`. `change(document)` returns the new
   * document without modifying its argument; it must be a pure function of the document,
   * because it is called by whichever update leads the batch, and may be called more than
   * once, on fresher documents (after a conflict, or when a write refused as fatal is
   * split in halves to find the change that breaks it). `write(document, attempt,
   * context)` writes the final document and reports its token with
   * `context.setToken(token)` or by resolving to it. A `change` that throws excludes its
   * own update, which rejects with `GaveUpError` (reason `fatal`, code the error's name,
   * `cause` the error); the others go on. Options: `deadlineMs`, `signal`, `classify`,
   * `holder` (`UpdateOptions` in index.d.ts).
   */
  async update(entity, options) {
    if (options === null || typeof options !== 'object') throw argumentError('options', 'must be an object with read, change and write', options);
    const { read, change, write } = options;
    if (typeof read !== 'function') throw argumentError('options.read', 'must be a function', read);
    if (typeof change !== 'function') throw argumentError('options.change', 'must be a function', change);
    if (typeof write !== 'function') throw argumentError('options.write', 'must be a function', write);
    if (options.expected !== undefined) throw argumentError('options.expected', 'an update reads what it changes: it takes no expected token', options.expected);
    const raw = this.#raw;
    // The run's write is `run`'s shape (attempt, context), so telemetry wraps it as any
    // other; it writes the document the batch's apply made.
    const run = new Run((attempt, context) => write(run.doc, attempt, context), options, this.#classify, this.#holder);
    if (held.active) run.write = held.marking(this, entity, run.write);
    run.change = change;
    run.doc = undefined;
    run.carried = [];
    run.refused = undefined;
    run.writeError = undefined;
    run.op = raw.submitUpdate(this.#entity(entity), this.#clock.nowMs(), run.deadline, run.holder);
    return this.#drive(run, entity);
  }

  async #drive(run, entity) {
    const raw = this.#raw;
    const { signal } = run;
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
        else if (cmd.kind === CMD_APPLY) this.#apply(run, cmd.ops);
        else if (cmd.kind !== CMD_FINISH) await this.#call(run, cmd);
        else if (run.error !== null) throw run.error;
        else if (cmd.committed) {
          if (rec !== null) telemetry.end(rec, null);
          return run.change === undefined ? run.result : cmd.token;
        } else {
          if (run.change !== undefined) run.lastError = run.refused ?? run.lastError ?? run.writeError;
          throw this.#gaveUp(run, entity, cmd.outcome);
        }
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

  /**
   * The AWS SDK v3 lane middleware: `client.middlewareStack.use(lane.plugin())` runs every
   * write operation of the client in its entity's lane(s) of this lane (across processes
   * with a store), retried inside it; reads and services with no entity table pass
   * straight through. Options: `account` and `partition` (keys become ARNs; without an
   * account they are `role/name`), `deadlineMs` (each write's bound in its lane).
   */
  plugin(options) {
    return new LanePlugin(this, options);
  }
}

/** The code a refused change reports: its error's name (a class's own name when the
 * error keeps `Error`), at most 256 bytes. */
function codeOf(error) {
  let name = typeof error?.name === 'string' && error.name !== 'Error' ? error.name : undefined;
  if (name === undefined && typeof error?.constructor?.name === 'string' && error.constructor.name !== 'Object') name = error.constructor.name;
  if (!name) return 'ChangeRefused';
  while (Buffer.byteLength(name, 'utf8') > MAX_CODE_BYTES) name = name.slice(0, -1);
  return name;
}

module.exports = { Lane, TELEMETRY };
