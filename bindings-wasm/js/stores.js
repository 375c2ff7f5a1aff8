'use strict';
/**
 * Lease stores: where writers on different processes or machines share a lease.
 *
 * A lease store keeps ONE record per key (the entity's name):
 *
 *     {owner: string, epoch: number, rvn: number, lease_ms: number,
 *      committed_token: string | null, holder: string | null}
 *
 * and offers exactly three strongly consistent primitives, all async:
 *
 * - `get(key)` resolves to the record or `null`;
 * - `putIfAbsent(key, record)` creates the record if there is none;
 * - `compareAndSwap(key, expectedRvn, record)` replaces the whole record if the stored
 *   one's `rvn` is `expectedRvn`.
 *
 * A conditional write resolves to `{done: true}`, or `{done: false, current}` with the
 * record found (`null` when there is none). An adapter that cannot carry an operation out
 * throws `StoreError` with `kind` `unavailable` (surely not carried out) or `lost` (sent,
 * no reply). The engine decides everything else: it emits operations in the core's JSON
 * form and `applyStoreOp` carries one out and returns the reply; no error thrown by a
 * failing store escapes it.
 *
 * Adapters never retry on their own (the clients they build are set up that way): a
 * retried conditional write whose first try landed would be refused with the writer's own
 * record. `applyStoreOp` also recognises that case (a refusal that found exactly the
 * record written) and reports it as done, so a client that does retry stays correct.
 *
 * @module writelane/stores
 */

const { randomInt } = require('node:crypto');
const { UsageError, StoreError, describe } = require('./errors.js');

/** The fields of a record, in order. */
const FIELDS = Object.freeze(['owner', 'epoch', 'rvn', 'lease_ms', 'committed_token', 'holder']);
const FIELD_SET = new Set(FIELDS);
const NUMBER_FIELDS = new Set(['epoch', 'rvn', 'lease_ms']);
const NULLABLE_FIELDS = new Set(['committed_token', 'holder']);

/** Node socket errors raised before a request was sent: the store surely did nothing. */
const BEFORE_SEND = new Set(['ECONNREFUSED', 'ENOTFOUND', 'EAI_AGAIN', 'EHOSTUNREACH', 'ENETUNREACH', 'EADDRNOTAVAIL']);

function recordError(what, rule) {
  return new UsageError(`${what}: ${rule}`, 'invalid_record', what);
}

/**
 * Check that `record` is a lease record (the six fields, nothing else, integers from 0 to
 * 2^53-1) and return a plain copy of it. Throws `UsageError` (kind `invalid_record`)
 * naming the field.
 * @param {unknown} record
 * @param {string} [what] how to name the record in messages
 * @returns {LeaseRecord}
 */
function checkRecord(record, what = 'record') {
  if (record === null || typeof record !== 'object' || Array.isArray(record)) {
    throw recordError(what, `expected an object, found ${describe(record)}`);
  }
  for (const name in record) {
    if (!FIELD_SET.has(name) && Object.hasOwn(record, name)) throw recordError(`${what}.${name}`, 'unknown field');
  }
  const out = {};
  for (const name of FIELDS) {
    if (!(name in record)) throw recordError(`${what}.${name}`, 'missing');
    const value = record[name];
    if (name === 'owner') {
      if (typeof value !== 'string') throw recordError(`${what}.owner`, `expected a string, found ${describe(value)}`);
    } else if (NULLABLE_FIELDS.has(name)) {
      if (value !== null && typeof value !== 'string') {
        throw recordError(`${what}.${name}`, `expected a string or null, found ${describe(value)}`);
      }
    } else if (!Number.isSafeInteger(value) || value < 0) {
      throw recordError(`${what}.${name}`, `expected a whole number from 0 to 2^53-1, found ${typeof value === 'number' ? value : describe(value)}`);
    }
    out[name] = value;
  }
  return out;
}

/**
 * Check a record read back from a store: a malformed one (written by hand, or by
 * something else) throws `StoreError` (`unavailable`) naming the key and the field, so
 * writers wait and then give up without writing.
 * @param {unknown} value
 * @param {string} key
 * @returns {LeaseRecord}
 */
function storedRecord(value, key) {
  try {
    return checkRecord(value, `stored record at ${JSON.stringify(key)}`);
  } catch (e) {
    throw new StoreError('unavailable', e.message);
  }
}

/** Check a store key: a non-empty string. */
function checkKey(key) {
  if (typeof key !== 'string' || key === '') {
    throw new UsageError(`key must be a non-empty string, got ${describe(key)}`, 'invalid_argument', 'key');
  }
  return key;
}

/** Check an expected record version number. */
function checkRvn(rvn) {
  if (!Number.isSafeInteger(rvn) || rvn < 0) {
    throw new UsageError(`expected_rvn must be a whole number from 0 to 2^53-1, got ${typeof rvn === 'number' ? rvn : describe(rvn)}`,
      'invalid_argument', 'expected_rvn');
  }
  return rvn;
}

function sameRecord(a, b) {
  return a !== null && b !== null && FIELDS.every((f) => a[f] === b[f]);
}

/** Check what an adapter's conditional write resolved to. */
function writeResult(result, key) {
  if (result === null || typeof result !== 'object' || typeof result.done !== 'boolean') {
    throw new StoreError('lost', `the adapter resolved a conditional write to ${describe(result)}, not {done, current}`);
  }
  if (result.done) return { done: true, current: null };
  const current = result.current === null || result.current === undefined ? null : storedRecord(result.current, key);
  return { done: false, current };
}

/**
 * Check an operation in the core's JSON form; throws `UsageError` naming the field.
 * @param {unknown} operation
 */
function checkOperation(operation) {
  if (operation === null || typeof operation !== 'object' || Array.isArray(operation)) {
    throw new UsageError(`operation must be an object, got ${describe(operation)}`, 'invalid_argument', 'operation');
  }
  const key = checkKey(operation.key);
  switch (operation.op) {
    case 'get':
      return { op: 'get', key };
    case 'put_if_absent':
      return { op: 'put_if_absent', key, record: checkRecord(operation.record, 'operation.record') };
    case 'compare_and_swap':
      return {
        op: 'compare_and_swap',
        key,
        expected_rvn: checkRvn(operation.expected_rvn),
        record: checkRecord(operation.record, 'operation.record'),
      };
    default:
      throw new UsageError(`operation.op must be get, put_if_absent or compare_and_swap, got ${JSON.stringify(operation.op)}`,
        'invalid_argument', 'operation.op');
  }
}

/** Settle with the adapter's promise, or reject with a `lost` StoreError after `ms`. */
function withTimeout(promise, ms) {
  if (ms === undefined) return promise;
  let timer;
  const timeout = new Promise((_, reject) => {
    timer = setTimeout(() => reject(new StoreError('lost', `no reply within ${ms} ms`)), ms);
  });
  return Promise.race([promise, timeout]).finally(() => clearTimeout(timer));
}

/**
 * Carry out one store operation and report the error behind a `lost` or `unavailable`
 * reply as well (the lane keeps it as the cause of a give-up). `trusted`: the operation
 * comes straight from the engine (already in the checked form), so it is not checked
 * again. `timeoutMs`: an adapter that has not answered by then counts as `lost` (its
 * late answer is ignored; the engine reads the record back).
 * @param {LeaseStore} store
 * @param {object} operation
 * @param {boolean} [trusted]
 * @param {number} [timeoutMs]
 * @returns {Promise<{reply: object, error: unknown}>}
 */
async function applyStoreOpDetailed(store, operation, trusted = false, timeoutMs = undefined) {
  const op = trusted ? operation : checkOperation(operation);
  try {
    if (op.op === 'get') {
      const found = await withTimeout(store.get(op.key), timeoutMs);
      const record = found === null || found === undefined ? null : storedRecord(found, op.key);
      return { reply: { reply: 'found', record }, error: undefined };
    }
    const result = writeResult(await withTimeout(op.op === 'put_if_absent'
      ? store.putIfAbsent(op.key, op.record)
      : store.compareAndSwap(op.key, op.expected_rvn, op.record), timeoutMs), op.key);
    // Refused by exactly the record we wrote (its rvn is random): an earlier try landed.
    if (result.done || sameRecord(result.current, op.record)) return { reply: { reply: 'done' }, error: undefined };
    return { reply: { reply: 'refused', current: result.current }, error: undefined };
  } catch (e) {
    // Anything but a StoreError may have happened after the request went out.
    const kind = e instanceof StoreError ? e.kind : 'lost';
    return { reply: { reply: kind }, error: e };
  }
}

/**
 * Carry out one store operation in the core's JSON form with `store` and resolve to the
 * reply in the core's JSON form:
 *
 * - `{op: "get", key}` -> `{reply: "found", record}` (`record` is `null` when none);
 * - `{op: "put_if_absent", key, record}` and `{op: "compare_and_swap", key, expected_rvn,
 *   record}` -> `{reply: "done"}` or `{reply: "refused", current}`;
 * - a store that fails gives `{reply: "unavailable"}` or `{reply: "lost"}`: no error the
 *   adapter throws escapes (a malformed operation rejects with `UsageError`).
 * @param {LeaseStore} store
 * @param {object} operation
 * @returns {Promise<object>}
 */
async function applyStoreOp(store, operation) {
  return (await applyStoreOpDetailed(store, operation)).reply;
}

/**
 * Free a stuck lease at `key` safely, for an operator who has made sure its holder is
 * gone. The record is replaced by compare-and-swap, never deleted: the owner and holder
 * are cleared, the epoch bumped (so the stuck holder's fence is stale), the committed
 * token cleared (the stuck holder's write may or may not have landed: the next writer
 * reads the entity first). Resolves to the record written, or `null` when there is no
 * record or it is already released. With `expectedRvn` it frees only the record you
 * inspected. Rejects with `StoreError` (`kind` `changed`) if the record changed
 * meanwhile, or with the adapter's `StoreError`.
 * @param {LeaseStore} store
 * @param {string} key
 * @param {{expectedRvn?: number}} [options]
 * @returns {Promise<LeaseRecord | null>}
 */
async function forceRelease(store, key, options = {}) {
  checkKey(key);
  const found = await store.get(key);
  const current = found === null || found === undefined ? null : storedRecord(found, key);
  if (current === null || current.owner === '') return null;
  const expected = options?.expectedRvn === undefined ? current.rvn : checkRvn(options.expectedRvn);
  const released = {
    ...current,
    owner: '',
    holder: null,
    committed_token: null,
    epoch: current.epoch + 1,
    rvn: randomInt(1, 2 ** 48) * 32 + randomInt(0, 32),
  };
  const result = writeResult(await store.compareAndSwap(key, expected, released), key);
  if (!result.done) {
    throw new StoreError('changed', `${JSON.stringify(key)}: the record changed meanwhile (now ${JSON.stringify(result.current)}); inspect it again`);
  }
  return released;
}

/* ------------------------------------------------------------------------------------ */
/* Memory                                                                               */
/* ------------------------------------------------------------------------------------ */

/**
 * A lease store in this process's memory: for tests, and for several lanes of one
 * process that should share leases the way separate machines would.
 */
class MemoryStore {
  #records = new Map();

  /**
   * The record at `key`, or `null`.
   * @param {string} key
   * @returns {Promise<LeaseRecord | null>}
   */
  async get(key) {
    const found = this.#records.get(checkKey(key));
    return found === undefined ? null : { ...found };
  }

  /**
   * Create the record if there is none.
   * @param {string} key
   * @param {LeaseRecord} record
   * @returns {Promise<WriteResult>}
   */
  async putIfAbsent(key, record) {
    checkKey(key);
    const copy = checkRecord(record);
    const found = this.#records.get(key);
    if (found !== undefined) return { done: false, current: { ...found } };
    this.#records.set(key, copy);
    return { done: true };
  }

  /**
   * Replace the record if its `rvn` is `expectedRvn`.
   * @param {string} key
   * @param {number} expectedRvn
   * @param {LeaseRecord} record
   * @returns {Promise<WriteResult>}
   */
  async compareAndSwap(key, expectedRvn, record) {
    checkKey(key);
    checkRvn(expectedRvn);
    const copy = checkRecord(record);
    const found = this.#records.get(key);
    if (found === undefined || found.rvn !== expectedRvn) {
      return { done: false, current: found === undefined ? null : { ...found } };
    }
    this.#records.set(key, copy);
    return { done: true };
  }

  /** A copy of every record, by key. */
  snapshot() {
    return Object.fromEntries([...this.#records].map(([k, r]) => [k, { ...r }]));
  }
}

/* ------------------------------------------------------------------------------------ */
/* Redis                                                                                */
/* ------------------------------------------------------------------------------------ */

/** The key prefix every writelane binding uses by default, so that they share leases. */
const DEFAULT_REDIS_PREFIX = 'writelane:lease:';

/** Compare-and-swap on the record's rvn, returning the record found when refused. */
const CAS_SCRIPT = `
local cur = redis.call('GET', KEYS[1])
if not cur then return {0} end
local ok, rec = pcall(cjson.decode, cur)
if ok and type(rec) == 'table' and rec['rvn'] == tonumber(ARGV[1]) then
  redis.call('SET', KEYS[1], ARGV[2])
  return {1}
end
return {0, cur}
`;

function optionalModule(name, what) {
  try {
    return require(name);
  } catch (e) {
    if (e && e.code === 'MODULE_NOT_FOUND') {
      throw new UsageError(`${what} needs the npm package ${name}: npm install ${name}`, 'invalid_argument', 'client');
    }
    throw e;
  }
}

function positiveMs(value, field, fallback) {
  if (value === undefined || value === null) return fallback;
  if (!Number.isSafeInteger(value) || value <= 0) {
    throw new UsageError(`${field} must be a whole number of milliseconds above 0, got ${typeof value === 'number' ? value : describe(value)}`,
      'invalid_argument', field);
  }
  return value;
}

/**
 * A lease store in Redis (through an `ioredis` client): each record is a JSON string at
 * `prefix + key` (prefix `writelane:lease:` by default, as in every writelane binding);
 * `putIfAbsent` is `SET key value NX GET` (Redis 7.0 or later), and
 * `compareAndSwap` a Lua script that compares the stored rvn and sets the new record in
 * one step. Use a primary (reads must be consistent), never a replica.
 */
class RedisStore {
  #client;
  #owned;
  #prefix;
  #connectTimeoutMs;
  /** The last connection error the client reported, for messages. */
  #lastError = null;

  /**
   * @param {{client?: object, url?: string, host?: string, port?: number, prefix?: string,
   *   commandTimeoutMs?: number, connectTimeoutMs?: number}} options
   *   `client`: an ioredis client of yours (use `enableOfflineQueue: false` and
   *   `autoResendUnfulfilledCommands: false` so that nothing is sent twice); otherwise
   *   one is made from `url` or `host`/`port` (127.0.0.1:6379), with those settings and
   *   `commandTimeoutMs` (default 2000) as its command timeout. `prefix` (default
   *   `writelane:lease:`) goes before every key. `connectTimeoutMs` (default 2000) bounds the wait for a
   *   connection before an operation reports `unavailable`.
   */
  constructor(options = {}) {
    if (options === null || typeof options !== 'object') {
      throw new UsageError(`options must be an object, got ${describe(options)}`, 'invalid_argument', 'options');
    }
    const prefix = options.prefix ?? DEFAULT_REDIS_PREFIX;
    if (typeof prefix !== 'string') throw new UsageError(`options.prefix must be a string, got ${describe(prefix)}`, 'invalid_argument', 'options.prefix');
    this.#prefix = prefix;
    this.#connectTimeoutMs = positiveMs(options.connectTimeoutMs, 'options.connectTimeoutMs', 2000);
    const commandTimeout = positiveMs(options.commandTimeoutMs, 'options.commandTimeoutMs', 2000);
    if (options.client !== undefined && options.client !== null) {
      const c = options.client;
      if (typeof c !== 'object' || typeof c.eval !== 'function' || typeof c.set !== 'function') {
        throw new UsageError('options.client must be an ioredis client', 'invalid_argument', 'options.client');
      }
      this.#client = c;
      this.#owned = false;
    } else {
      const Redis = optionalModule('ioredis', 'RedisStore');
      const settings = {
        lazyConnect: true,
        enableOfflineQueue: false,
        autoResendUnfulfilledCommands: false,
        maxRetriesPerRequest: 0,
        commandTimeout,
        connectTimeout: this.#connectTimeoutMs,
        retryStrategy: (times) => Math.min(50 * times, 1000),
      };
      if (options.url !== undefined) {
        if (typeof options.url !== 'string') throw new UsageError(`options.url must be a string, got ${describe(options.url)}`, 'invalid_argument', 'options.url');
        this.#client = new Redis(options.url, settings);
      } else {
        this.#client = new Redis({ host: options.host ?? '127.0.0.1', port: options.port ?? 6379, ...settings });
      }
      this.#owned = true;
      // Connection errors surface per operation; keep the last one for messages.
      this.#client.on('error', (e) => {
        this.#lastError = e;
      });
    }
  }

  /** The ioredis client in use. */
  get client() {
    return this.#client;
  }

  /** Wait (bounded) for the client to be connected; `unavailable` if it does not get there. */
  async #ready() {
    const c = this.#client;
    if (c.status === 'ready') return;
    if (c.status === 'wait') c.connect().catch(() => {});
    if (c.status === 'end') throw new StoreError('unavailable', 'the Redis client is closed');
    await new Promise((resolve, reject) => {
      const done = (error) => {
        clearTimeout(timer);
        c.removeListener('ready', onReady);
        c.removeListener('end', onEnd);
        if (error) reject(error);
        else resolve();
      };
      const onReady = () => done();
      const onEnd = () => done(new StoreError('unavailable', 'the Redis connection ended'));
      const timer = setTimeout(() => {
        const why = this.#lastError ? `: ${this.#lastError.message}` : '';
        done(new StoreError('unavailable', `no Redis connection within ${this.#connectTimeoutMs} ms${why}`, { cause: this.#lastError ?? undefined }));
      }, this.#connectTimeoutMs);
      c.once('ready', onReady);
      c.once('end', onEnd);
      if (c.status === 'ready') done();
    });
  }

  /** Send one command; errors become `StoreError`. */
  async #call(send) {
    await this.#ready();
    try {
      return await send(this.#client);
    } catch (e) {
      const message = e?.message ?? String(e);
      // The server answered with an error, or the client refused to send: not carried out.
      if (e?.name === 'ReplyError' || message.includes('enableOfflineQueue')) {
        throw new StoreError('unavailable', message, { cause: e });
      }
      // Sent, and the connection closed or the command timed out before the reply.
      throw new StoreError('lost', message, { cause: e });
    }
  }

  #parse(text, key) {
    if (text === null || text === undefined) return null;
    let value;
    try {
      value = JSON.parse(text);
    } catch (e) {
      throw new StoreError('unavailable', `stored record at ${JSON.stringify(key)} is not JSON: ${e.message}`);
    }
    return storedRecord(value, key);
  }

  /**
   * The record at `key`, or `null`.
   * @param {string} key
   * @returns {Promise<LeaseRecord | null>}
   */
  async get(key) {
    checkKey(key);
    return this.#parse(await this.#call((c) => c.get(this.#prefix + key)), key);
  }

  /**
   * Create the record if there is none (`SET NX GET`).
   * @param {string} key
   * @param {LeaseRecord} record
   * @returns {Promise<WriteResult>}
   */
  async putIfAbsent(key, record) {
    checkKey(key);
    const text = JSON.stringify(checkRecord(record));
    const old = await this.#call((c) => c.set(this.#prefix + key, text, 'NX', 'GET'));
    if (old === null) return { done: true };
    return { done: false, current: this.#parse(old, key) };
  }

  /**
   * Replace the record if its `rvn` is `expectedRvn` (one Lua script).
   * @param {string} key
   * @param {number} expectedRvn
   * @param {LeaseRecord} record
   * @returns {Promise<WriteResult>}
   */
  async compareAndSwap(key, expectedRvn, record) {
    checkKey(key);
    checkRvn(expectedRvn);
    const text = JSON.stringify(checkRecord(record));
    const out = await this.#call((c) => c.eval(CAS_SCRIPT, 1, this.#prefix + key, String(expectedRvn), text));
    if (!Array.isArray(out)) throw new StoreError('lost', `the compare-and-swap script returned ${describe(out)}`);
    if (out[0] === 1) return { done: true };
    return { done: false, current: this.#parse(out[1] ?? null, key) };
  }

  /** Close the connection if this store made the client (a client passed in is left open). */
  async close() {
    if (!this.#owned) return;
    try {
      await this.#client.quit();
    } catch {
      this.#client.disconnect();
    }
  }
}

/* ------------------------------------------------------------------------------------ */
/* DynamoDB                                                                             */
/* ------------------------------------------------------------------------------------ */

function toItem(key, record) {
  const opt = (v) => (v === null ? { NULL: true } : { S: v });
  return {
    key: { S: key },
    owner: { S: record.owner },
    epoch: { N: String(record.epoch) },
    rvn: { N: String(record.rvn) },
    lease_ms: { N: String(record.lease_ms) },
    committed_token: opt(record.committed_token),
    holder: opt(record.holder),
  };
}

function fromItem(item, key) {
  const bad = (field, rule) => new StoreError('unavailable', `stored record at ${JSON.stringify(key)}.${field}: ${rule}`);
  const record = {};
  for (const field of FIELDS) {
    const a = item[field];
    if (NULLABLE_FIELDS.has(field)) {
      if (a === undefined || a.NULL === true) record[field] = null;
      else if (typeof a.S === 'string') record[field] = a.S;
      else throw bad(field, 'expected a string (S) or NULL');
    } else if (NUMBER_FIELDS.has(field)) {
      if (a === undefined || typeof a.N !== 'string' || !/^\d+$/.test(a.N)) throw bad(field, 'expected a whole number (N)');
      const n = Number(a.N);
      if (!Number.isSafeInteger(n)) throw bad(field, 'must be at most 2^53-1');
      record[field] = n;
    } else {
      if (a === undefined || typeof a.S !== 'string') throw bad(field, 'expected a string (S)');
      record[field] = a.S;
    }
  }
  return record;
}

/** `unavailable` or `lost` for an error of an AWS SDK v3 call. */
function awsStoreError(e) {
  const status = e?.$metadata?.httpStatusCode;
  const message = `${e?.name ?? 'Error'}: ${e?.message ?? String(e)}`;
  if (Number.isInteger(status)) {
    // A 4xx answer (throttled, no such table, access denied) did nothing; after a 5xx
    // the service may have carried the request out.
    return new StoreError(status >= 500 ? 'lost' : 'unavailable', message, { cause: e });
  }
  if (typeof e?.code === 'string' && BEFORE_SEND.has(e.code)) return new StoreError('unavailable', message, { cause: e });
  return new StoreError('lost', message, { cause: e });
}

/**
 * A lease store in a DynamoDB table (through `@aws-sdk/client-dynamodb`): partition key
 * `key` (S), one item per entity with attributes `owner` (S), `epoch`, `rvn`, `lease_ms`
 * (N), `committed_token` and `holder` (S, or NULL). Reads are consistent; writes are
 * `PutItem` with `attribute_not_exists(#k)` or `#rvn = :expected` conditions and
 * `ReturnValuesOnConditionCheckFailure: ALL_OLD`. Expiry never relies on DynamoDB TTL.
 * The table needs `dynamodb:GetItem` and `dynamodb:PutItem` (and `CreateTable`,
 * `DescribeTable` for `createTable`).
 */
class DynamoDBStore {
  #client;
  #owned;
  #table;
  #sdk;

  /**
   * @param {{table: string, client?: object, region?: string, endpoint?: string,
   *   credentials?: object, requestTimeoutMs?: number}} options
   *   `client`: a `DynamoDBClient` of yours (give it `maxAttempts: 1`: the engine does
   *   its own retrying); otherwise one is made with `maxAttempts: 1` from `region`,
   *   `endpoint` and `credentials` (the SDK's defaults when absent) and a request
   *   timeout of `requestTimeoutMs` (default 2000).
   */
  constructor(options) {
    if (options === null || typeof options !== 'object') {
      throw new UsageError(`options must be an object with a table, got ${describe(options)}`, 'invalid_argument', 'options');
    }
    if (typeof options.table !== 'string' || options.table === '') {
      throw new UsageError(`options.table must be a non-empty string, got ${describe(options.table)}`, 'invalid_argument', 'options.table');
    }
    this.#table = options.table;
    this.#sdk = optionalModule('@aws-sdk/client-dynamodb', 'DynamoDBStore');
    const timeout = positiveMs(options.requestTimeoutMs, 'options.requestTimeoutMs', 2000);
    if (options.client !== undefined && options.client !== null) {
      if (typeof options.client.send !== 'function') {
        throw new UsageError('options.client must be a DynamoDBClient', 'invalid_argument', 'options.client');
      }
      this.#client = options.client;
      this.#owned = false;
    } else {
      const config = {
        maxAttempts: 1,
        requestHandler: { requestTimeout: timeout, connectionTimeout: timeout },
      };
      for (const name of ['region', 'endpoint', 'credentials']) {
        if (options[name] !== undefined) config[name] = options[name];
      }
      this.#client = new this.#sdk.DynamoDBClient(config);
      this.#owned = true;
    }
  }

  /** The table name. */
  get table() {
    return this.#table;
  }

  /** The DynamoDBClient in use. */
  get client() {
    return this.#client;
  }

  async #send(command) {
    try {
      return await this.#client.send(command);
    } catch (e) {
      if (e?.name === 'ConditionalCheckFailedException') throw e;
      throw awsStoreError(e);
    }
  }

  /**
   * Create the table (on-demand capacity) if it does not exist, and wait until it is
   * active.
   * @param {{waitMs?: number}} [options] how long to wait for the table (default 60000)
   */
  async createTable(options = {}) {
    const waitMs = positiveMs(options?.waitMs, 'options.waitMs', 60000);
    const { CreateTableCommand, DescribeTableCommand } = this.#sdk;
    try {
      await this.#client.send(new CreateTableCommand({
        TableName: this.#table,
        AttributeDefinitions: [{ AttributeName: 'key', AttributeType: 'S' }],
        KeySchema: [{ AttributeName: 'key', KeyType: 'HASH' }],
        BillingMode: 'PAY_PER_REQUEST',
      }));
    } catch (e) {
      if (e?.name !== 'ResourceInUseException') throw e;
    }
    const until = Date.now() + waitMs;
    for (;;) {
      const out = await this.#client.send(new DescribeTableCommand({ TableName: this.#table }));
      if (out.Table?.TableStatus === 'ACTIVE') return;
      if (Date.now() > until) throw new StoreError('unavailable', `table ${this.#table} is not active after ${waitMs} ms`);
      await new Promise((r) => setTimeout(r, 200));
    }
  }

  /**
   * The record at `key` (a consistent read), or `null`.
   * @param {string} key
   * @returns {Promise<LeaseRecord | null>}
   */
  async get(key) {
    checkKey(key);
    const out = await this.#send(new this.#sdk.GetItemCommand({
      TableName: this.#table,
      Key: { key: { S: key } },
      ConsistentRead: true,
    }));
    return out.Item ? fromItem(out.Item, key) : null;
  }

  async #put(key, record, condition, names, values) {
    const input = {
      TableName: this.#table,
      Item: toItem(key, checkRecord(record)),
      ConditionExpression: condition,
      ExpressionAttributeNames: names,
      ReturnValuesOnConditionCheckFailure: 'ALL_OLD',
    };
    if (values !== undefined) input.ExpressionAttributeValues = values;
    try {
      await this.#send(new this.#sdk.PutItemCommand(input));
      return { done: true };
    } catch (e) {
      if (e?.name !== 'ConditionalCheckFailedException') throw e;
      if (e.Item) return { done: false, current: fromItem(e.Item, key) };
      // The service did not return the item: read it (the write surely did not happen).
      try {
        return { done: false, current: await this.get(key) };
      } catch (g) {
        throw new StoreError('unavailable', `refused, and the record could not be read: ${g.message}`, { cause: g });
      }
    }
  }

  /**
   * Create the record if there is none.
   * @param {string} key
   * @param {LeaseRecord} record
   * @returns {Promise<WriteResult>}
   */
  async putIfAbsent(key, record) {
    checkKey(key);
    return this.#put(key, record, 'attribute_not_exists(#k)', { '#k': 'key' });
  }

  /**
   * Replace the record if its `rvn` is `expectedRvn`.
   * @param {string} key
   * @param {number} expectedRvn
   * @param {LeaseRecord} record
   * @returns {Promise<WriteResult>}
   */
  async compareAndSwap(key, expectedRvn, record) {
    checkKey(key);
    checkRvn(expectedRvn);
    return this.#put(key, record, '#rvn = :expected', { '#rvn': 'rvn' }, { ':expected': { N: String(expectedRvn) } });
  }

  /** Close the client if this store made it (a client passed in is left open). */
  close() {
    if (this.#owned) this.#client.destroy();
  }
}

/**
 * @typedef {{owner: string, epoch: number, rvn: number, lease_ms: number,
 *   committed_token: string | null, holder: string | null}} LeaseRecord
 * @typedef {{done: true} | {done: false, current: LeaseRecord | null}} WriteResult
 * @typedef {{get(key: string): Promise<LeaseRecord | null>,
 *   putIfAbsent(key: string, record: LeaseRecord): Promise<WriteResult>,
 *   compareAndSwap(key: string, expectedRvn: number, record: LeaseRecord): Promise<WriteResult>}} LeaseStore
 */

module.exports = {
  FIELDS,
  checkRecord,
  applyStoreOp,
  applyStoreOpDetailed,
  forceRelease,
  MemoryStore,
  RedisStore,
  DynamoDBStore,
};
