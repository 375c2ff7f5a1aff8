'use strict';
/**
 * `Engine`: the sans-IO engine of writelane-core for hosts that run their own loop (and
 * for the conformance vectors). Inputs, commands, events and stats are plain objects in
 * the core's JSON form.
 *
 * @module writelane/engine
 */

const {
  native, STATUS_ERROR, nativeError, jsonText, wholeArg, seedOf, ownerOf, holderOf, checkOptions,
} = require('./native.js');
const { UsageError, argumentError } = require('./errors.js');
const { resolvePolicy } = require('./policy.js');

/** No command is ready (the native layer's `CMD_NONE`). */
const CMD_NONE = 0;

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
    checkOptions(options);
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
   * @param {{expected?: string | null, deadlineMs?: number | null, holder?: string | null,
   *   noRead?: boolean}} [options] `holder` describes the writer in lease records (shared
   *   lanes); `noRead`: the writer has no read function, so the engine never commands a
   *   read (and refuses `expected`, which cannot be checked without one)
   * @returns {number}
   */
  submit(entity, now, options) {
    if (typeof entity !== 'string') throw argumentError('entity', 'must be a string', entity);
    wholeArg(now, 'now');
    let expected;
    let deadline = -1;
    let holder;
    let noRead = false;
    if (options !== undefined && options !== null) {
      expected = options.expected ?? undefined;
      if (expected !== undefined && typeof expected !== 'string') throw argumentError('options.expected', 'must be a string', expected);
      if (options.deadlineMs !== undefined && options.deadlineMs !== null) deadline = wholeArg(options.deadlineMs, 'options.deadlineMs');
      holder = holderOf(options);
      noRead = options.noRead ?? false;
      if (typeof noRead !== 'boolean') throw argumentError('options.noRead', 'must be a boolean', noRead);
    }
    const op = this.#raw.submitNamed(entity, now, expected, deadline, holder, noRead);
    if (op < 0) throw nativeError(this.#raw);
    return op;
  }

  /**
   * Start one update of `entity` at `now` (group commit): a change the host applies to the
   * entity's document when the engine says so (an `apply` action, drained with
   * `pollAction`). Updates always read, so they take no `expected`. Returns its op id.
   * @param {string} entity
   * @param {number} now
   * @param {{deadlineMs?: number | null, holder?: string | null}} [options]
   * @returns {number}
   */
  submitUpdate(entity, now, options) {
    if (typeof entity !== 'string') throw argumentError('entity', 'must be a string', entity);
    wholeArg(now, 'now');
    let deadline = -1;
    let holder;
    if (options !== undefined && options !== null) {
      if (typeof options !== 'object') throw argumentError('options', 'must be an object', options);
      if (options.deadlineMs !== undefined && options.deadlineMs !== null) deadline = wholeArg(options.deadlineMs, 'options.deadlineMs');
      holder = holderOf(options);
    }
    const op = this.#raw.submitUpdateNamed(entity, now, deadline, holder);
    if (op < 0) throw nativeError(this.#raw);
    return op;
  }

  /**
   * Feed what the host observed: `{type: "read_done" | "read_failed" | "write_done" |
   * "write_failed" | "store_reply" | "apply_done" | "cancel", op, token?, failure?,
   * reply?, results?}` (a `store_reply` carries what `applyStoreOp` resolved to; an
   * `apply_done` one `{op, applied, code?}` per op of the `apply`, in its order).
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

  /**
   * The next command or batch `apply` step (`{type: "apply", op, ops}`) of any operation,
   * or `null`: `pollCommand` for hosts that submit updates.
   */
  pollAction() {
    return this.#raw.pollAction() === CMD_NONE ? null : JSON.parse(this.#raw.cmdJson());
  }

  /**
   * The pending command or `apply` step of one operation, or `null`.
   * @param {number} op
   */
  pollActionFor(op) {
    wholeArg(op, 'op');
    return this.#raw.pollActionFor(op) === CMD_NONE ? null : JSON.parse(this.#raw.cmdJson());
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

module.exports = { Engine };
