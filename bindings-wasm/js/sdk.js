'use strict';
/**
 * Lane middleware for the AWS SDK for JavaScript v3: `client.middlewareStack.use(lane.plugin())`
 * makes every write operation of the client run in the lane of the entity it touches, with
 * no call-site changes.
 *
 * Which entity is the core's table (`writelane_core::iam`, the one `writelane trail` uses),
 * asked through `entityKeys`: an operation that touches two entities (`AddUserToGroup`)
 * takes both lanes in canonical key order. Reads pass straight through. The middleware sits
 * in the `initialize` step, outside the SDK's retry middleware, so the whole call (every
 * attempt) runs inside the lane; a conflict that reaches it is retried by `Lane.run`, with
 * writelane's backoff and budget, without leaving the lane. A call whose entity cannot be
 * determined goes through unserialised and is counted; clients of services with no table
 * (S3, DynamoDB) are not touched at all.
 *
 * @module writelane/sdk
 */

const { AsyncLocalStorage } = require('node:async_hooks');
const { native } = require('./native.js');
const { EntityError, GaveUpError, argumentError } = require('./errors.js');

const SMITHY_CONTEXT_KEY = '__smithy_context';
const CACHE_SIZE = 1024;
const NAME = 'writelaneLanes';

/**
 * Which lanes the running code holds: a client with the plugin called from inside a
 * `lane.run` or `lane.update` write, on the entity that write holds, must not wait for that
 * lane again (it would wait for itself until its deadline). `Lane` marks its writes only
 * once a plugin exists (`held.active`), so lanes without one pay nothing; the marks follow
 * the write's async context.
 */
const HELD = new AsyncLocalStorage();
const held = {
  active: false,
  /** Whether the running code holds `entity`'s lane of `lane`. */
  holds(lane, entity) {
    const marks = HELD.getStore();
    return marks !== undefined && marks.some(([l, e]) => l === lane && e === entity);
  },
  /** `write` marked as holding `entity`'s lane of `lane` while it runs. */
  marking(lane, entity, write) {
    return (...args) => HELD.run([...(HELD.getStore() ?? []), [lane, entity]], () => write(...args));
  },
};

/** Operations known not to be writes, by `service/operation`: `read` or `unknown` (the
 * table's answer for them does not depend on the request). */
const passing = new Map();

let services = null;
function tables() {
  if (services === null) services = new Set(JSON.parse(native.entityServices()));
  return services;
}

/** The SDK service id of a call (`iam`), from the client's name (`IAMClient`). */
function serviceOf(context) {
  const name = context?.clientName;
  if (typeof name !== 'string') return undefined;
  return name.replace(/Client$/, '').toLowerCase();
}

/** The API operation of a call (`PutRolePolicy`). */
function operationOf(context) {
  const op = context?.[SMITHY_CONTEXT_KEY]?.operation;
  if (typeof op === 'string' && op !== '') return op;
  const command = context?.commandName;
  return typeof command === 'string' ? command.replace(/Command$/, '') : undefined;
}

/** The parameters that name a write's entities, by `service/operation` (`null`: not a
 * write of the table), as the core's table gives them. */
const paramNames = new Map();

function namesOf(service, operation) {
  const key = `${service}/${operation}`;
  let names = paramNames.get(key);
  if (names === undefined) {
    names = JSON.parse(native.entityParams(service, operation));
    paramNames.set(key, names);
  }
  return names;
}

/** The parameters of an input that name its entities, as JSON: only those the table names
 * are copied (a value that is not a string stands as `true`, which the core refuses as not
 * text). */
function paramsText(input, names) {
  if (input === null || typeof input !== 'object') return 'null';
  if (names === null) return '{}';
  const out = {};
  for (const name of names) {
    const v = input[name];
    if (v !== undefined && v !== null) out[name] = typeof v === 'string' ? v : true;
  }
  return JSON.stringify(out);
}

/** The SDK's own error a give-up carries, or the give-up when no attempt was made. */
function unwrap(error) {
  let inner = error;
  while (inner instanceof GaveUpError && inner.cause instanceof GaveUpError) inner = inner.cause;
  if (inner instanceof GaveUpError && inner.cause !== undefined && inner.cause !== null) return inner.cause;
  return inner;
}

/**
 * The plugin `lane.plugin(options)` returns. Besides `applyToStack` (what
 * `middlewareStack.use` calls) it counts: `serialised` (write calls run in their lanes),
 * `unserialised` (calls that went through without a lane because their entity could not be
 * determined, by operation), `lastUnserialised` (why the last one could not be keyed).
 */
class LanePlugin {
  #lane;
  #account;
  #partition;
  #deadlineMs;
  #cache = new Map();

  /**
   * @param {import('./lane.js').Lane} lane
   * @param {{account?: string, partition?: string, deadlineMs?: number}} [options]
   */
  constructor(lane, options) {
    if (options !== undefined && options !== null && typeof options !== 'object') throw argumentError('options', 'must be an object', options);
    const { account, partition, deadlineMs } = options ?? {};
    if (account !== undefined && account !== null && typeof account !== 'string') throw argumentError('options.account', 'must be a string', account);
    if (partition !== undefined && partition !== null && typeof partition !== 'string') throw argumentError('options.partition', 'must be a string', partition);
    if (deadlineMs !== undefined && deadlineMs !== null && !(Number.isSafeInteger(deadlineMs) && deadlineMs >= 0)) {
      throw argumentError('options.deadlineMs', 'must be a non-negative integer', deadlineMs);
    }
    this.#lane = lane;
    this.#account = account ?? '';
    this.#partition = partition ?? '';
    this.#deadlineMs = deadlineMs ?? undefined;
    held.active = true;
    /** Write calls that ran in their lanes. */
    this.serialised = 0;
    /** Calls that went through unserialised, by operation name. */
    this.unserialised = {};
    /** Why the last unserialised call could not be keyed. */
    this.lastUnserialised = null;
  }

  /**
   * Which lanes a call takes: `{access: 'write', keys}` (sorted: the order they are
   * taken in), `{access: 'read', keys: []}` or `{access: 'unknown', keys: []}`; throws
   * `EntityError` naming the parameter when a write's entity cannot be determined.
   * @param {string} service e.g. `iam`
   * @param {string} operation e.g. `PutRolePolicy`
   * @param {object} input the command's input
   */
  keys(service, operation, input) {
    const r = JSON.parse(native.entityKeys(service, operation, paramsText(input, namesOf(service, operation)), this.#account, this.#partition));
    if (!r.ok) {
      throw new EntityError(r.operation, r.parameter, r.reason);
    }
    return { access: r.access, keys: r.keys };
  }

  /** The table's answer for a call, remembered for the last `CACHE_SIZE` distinct
   * requests (the answer depends only on the operation and the parameters that name its
   * entities). */
  #lookup(service, operation, params) {
    const key = `${service}/${operation}/${params}`;
    let r = this.#cache.get(key);
    if (r === undefined) {
      r = JSON.parse(native.entityKeys(service, operation, params, this.#account, this.#partition));
      if (this.#cache.size >= CACHE_SIZE) this.#cache.clear();
      this.#cache.set(key, r);
    }
    return r;
  }

  #unserialised(operation, why) {
    this.unserialised[operation] = (this.unserialised[operation] ?? 0) + 1;
    this.lastUnserialised = why;
  }

  /** The middleware (initialize step). */
  middleware() {
    return (next, context) => async (args) => {
      const service = serviceOf(context);
      if (service === undefined || !tables().has(service)) return next(args);
      const operation = operationOf(context) ?? '';
      const known = passing.get(`${service}/${operation}`);
      if (known !== undefined) {
        if (known === 'unknown') this.#unserialised(operation, 'unknown operation');
        return next(args);
      }
      const r = this.#lookup(service, operation, paramsText(args?.input, namesOf(service, operation)));
      if (!r.ok) {
        this.#unserialised(operation, r.reason);
        return next(args);
      }
      if (r.access !== 'write' || r.keys.length === 0) {
        if (r.access !== 'write') passing.set(`${service}/${operation}`, r.access);
        if (r.access === 'unknown') this.#unserialised(operation, 'unknown operation');
        return next(args);
      }
      this.serialised += 1;
      // Lanes the caller already holds (a lane.run or update write calling this client on
      // its own entity) are not waited for again; the caller's lane retries such a call.
      const free = r.keys.filter((k) => !held.holds(this.#lane, k));
      if (free.length === 0) return next(args);
      const signal = context?.[SMITHY_CONTEXT_KEY]?.abortSignal;
      try {
        return await this.#nest(free, 0, () => next(args), signal);
      } catch (e) {
        throw unwrap(e);
      }
    };
  }

  /** The call in the lane of keys[i], inside it the lane of keys[i + 1], ... */
  #nest(keys, i, call, signal) {
    const options = {};
    if (this.#deadlineMs !== undefined) options.deadlineMs = this.#deadlineMs;
    if (signal !== undefined && signal !== null && typeof signal.addEventListener === 'function') options.signal = signal;
    const write = i + 1 < keys.length ? () => this.#nest(keys, i + 1, call, signal) : () => call();
    return this.#lane.run(keys[i], write, options);
  }

  /** What `client.middlewareStack.use(plugin)` calls. */
  applyToStack(stack) {
    stack.add(this.middleware(), { step: 'initialize', priority: 'high', name: NAME, override: true });
  }
}

module.exports = { LanePlugin, NAME, held };
