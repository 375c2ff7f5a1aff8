'use strict';
/**
 * One `lane.run`: its arguments, where it is (its phase), and the context each write
 * attempt receives.
 *
 * @module writelane/run
 */

const { wholeArg, holderOf } = require('./native.js');
const { argumentError } = require('./errors.js');
const { checkClassify } = require('./failure.js');

/** Mark a context's attempt settled; returns the token its write reported, or a misuse. */
let settleContext;

/**
 * What `write` receives besides the attempt number, one per attempt: a `setToken` call
 * from an attempt that has settled reaches no later attempt.
 */
class WriteContext {
  #token;
  #misuse = null;
  #settled = false;

  constructor(baseToken, fence, signal) {
    /** The revision the write must be based on, when known. */
    this.baseToken = baseToken;
    /** Shared lanes: the lease epoch the write is made under (a fence), else null. */
    this.fence = fence;
    /** The run's abort signal, to pass on to the SDK call. */
    this.signal = signal;
  }

  /**
   * Report the change token of the revision this write produced: the lane hands it to the
   * next writer of the entity (which then writes without reading first) and, with a
   * lease store, keeps it in the lease record for the next holder on any machine.
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

/**
 * One `lane.run` in progress. `phase` is where it is, and decides what an abort does:
 *
 * - `waiting` for a command (the lane, a timer): cancel at once;
 * - `calling` the user's read or write: cancel once it settles, its result unseen;
 * - `storing`: cancel once the lease protocol is between store operations;
 * - `committing`: the write landed (a release may follow): carry on;
 * - `cancelled`: the engine was told to cancel; drain to the finish.
 */
class Run {
  /**
   * Check the arguments of `lane.run(entity, write, options)`; `classify` and `holder`
   * are the lane's, which the options may override.
   */
  constructor(write, options, classify, holder) {
    if (typeof write !== 'function') throw argumentError('write', 'must be a function', write);
    this.write = write;
    this.read = undefined;
    this.expected = undefined;
    this.deadline = -1;
    this.signal = undefined;
    this.classify = classify;
    this.holder = holder;
    if (options !== undefined && options !== null) this.#options(options);
    this.op = -1;
    this.phase = 'waiting';
    /** The command handed over and not yet taken (a finish supersedes any other). */
    this.cmd = null;
    this.wake = null;
    /** A usage error to reject with once the engine has finished the op. */
    this.error = null;
    this.result = undefined;
    this.lastError = undefined;
    this.storeError = undefined;
  }

  #options(options) {
    if (typeof options !== 'object') throw argumentError('options', 'must be an object', options);
    const { read, expected, deadlineMs, signal } = options;
    if (read !== undefined && read !== null && typeof read !== 'function') throw argumentError('options.read', 'must be a function', read);
    this.read = read ?? undefined;
    if (expected !== undefined && expected !== null && typeof expected !== 'string') throw argumentError('options.expected', 'must be a string', expected);
    this.expected = expected ?? undefined;
    if (deadlineMs !== undefined && deadlineMs !== null) this.deadline = wholeArg(deadlineMs, 'options.deadlineMs');
    if (signal !== undefined && signal !== null && (typeof signal !== 'object'
      || typeof signal.addEventListener !== 'function' || typeof signal.aborted !== 'boolean')) {
      throw argumentError('options.signal', 'must be an AbortSignal', signal);
    }
    this.signal = signal ?? undefined;
    if (options.classify !== undefined) this.classify = checkClassify(options.classify, 'options.classify');
    this.holder = holderOf(options) ?? this.holder;
  }

  deliver(cmd) {
    this.cmd = cmd;
    const wake = this.wake;
    if (wake !== null) {
      this.wake = null;
      wake();
    }
  }

  next() {
    return new Promise((resolve) => { this.wake = resolve; });
  }
}

module.exports = { WriteContext, settleContext, Run };
