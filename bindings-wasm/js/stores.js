'use strict';
/**
 * Lease-store adapters: where writers on different processes or machines share a lease.
 *
 * A lease store keeps ONE record per key (the entity's name) and offers exactly three
 * strongly consistent primitives, all async:
 *
 * - `get(key)` resolves to the record or `null`;
 * - `putIfAbsent(key, record)` creates the record if there is none;
 * - `compareAndSwap(key, expectedRvn, record)` replaces the whole record if the stored
 *   one's `rvn` is `expectedRvn`.
 *
 * A conditional write resolves to `{done: true}`, or `{done: false, current}` with the
 * record found (`null` when there is none). An adapter that cannot carry an operation out
 * throws `StoreError` with `kind` `unavailable` (surely not carried out) or `lost` (sent,
 * no reply). Adapters never interpret a record: they keep what they are given as JSON and
 * pass what they read back to the core (`recordFromText`), which parses and validates it.
 * The lane bounds every call by the policy's `lease.store_timeout_ms` (see `lease.js`).
 *
 * Adapters never retry on their own (the clients they build are set up that way); a
 * retried conditional write whose first try landed would be refused with the writer's own
 * record, which the core counts as done.
 *
 * @module writelane/stores
 */

const { UsageError, StoreError, describe } = require('./errors.js');
const { DEFAULT_STORE_TIMEOUT_MS, recordFromText } = require('./lease.js');

/** Node socket errors raised before a request was sent: the store surely did nothing. */
const BEFORE_SEND = new Set(['ECONNREFUSED', 'ENOTFOUND', 'EAI_AGAIN', 'EHOSTUNREACH', 'ENETUNREACH', 'EADDRNOTAVAIL']);

/** Check a store key: a non-empty string. */
function checkKey(key) {
  if (typeof key !== 'string' || key === '') {
    throw new UsageError(`key must be a non-empty string, got ${describe(key)}`, 'invalid_argument', 'key');
  }
  return key;
}

/** Check an expected record version number (a JavaScript number holds it exactly). */
function checkRvn(rvn) {
  if (!Number.isSafeInteger(rvn) || rvn < 0) {
    throw new UsageError(`expectedRvn must be a whole number from 0 to 2^53-1, got ${typeof rvn === 'number' ? rvn : describe(rvn)}`,
      'invalid_argument', 'expectedRvn');
  }
  return rvn;
}

/** A record as the JSON text stores keep. */
function recordText(record) {
  const text = JSON.stringify(record);
  if (typeof text !== 'string') {
    throw new UsageError(`record must be a lease record, got ${describe(record)}`, 'invalid_argument', 'record');
  }
  return text;
}

/* ------------------------------------------------------------------------------------ */
/* Memory                                                                               */
/* ------------------------------------------------------------------------------------ */

/**
 * A lease store in this process's memory: for tests, and for several lanes of one
 * process that should share leases the way separate machines would.
 */
class MemoryStore {
  /** Per key: the record's JSON text and the rvn it was written with. */
  #records = new Map();

  /**
   * The record at `key`, or `null`.
   * @param {string} key
   * @returns {Promise<LeaseRecord | null>}
   */
  async get(key) {
    const found = this.#records.get(checkKey(key));
    return found === undefined ? null : recordFromText(found.text, key);
  }

  /**
   * Create the record if there is none.
   * @param {string} key
   * @param {LeaseRecord} record
   * @returns {Promise<WriteResult>}
   */
  async putIfAbsent(key, record) {
    checkKey(key);
    const text = recordText(record);
    const found = this.#records.get(key);
    if (found !== undefined) return { done: false, current: recordFromText(found.text, key) };
    this.#records.set(key, { text, rvn: record.rvn });
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
    const text = recordText(record);
    const found = this.#records.get(key);
    if (found === undefined || found.rvn !== expectedRvn) {
      return { done: false, current: found === undefined ? null : recordFromText(found.text, key) };
    }
    this.#records.set(key, { text, rvn: record.rvn });
    return { done: true };
  }

  /** Every record as stored (parsed JSON, not checked), by key. */
  snapshot() {
    return Object.fromEntries([...this.#records].map(([k, r]) => [k, JSON.parse(r.text)]));
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
   *   `commandTimeoutMs` as its command timeout. `prefix` (default `writelane:lease:`)
   *   goes before every key. `connectTimeoutMs` bounds the wait for a connection before
   *   an operation reports `unavailable`. Both default to the core's store timeout (the
   *   default policy's `lease.store_timeout_ms`); a lane bounds every call by its own
   *   policy's `lease.store_timeout_ms` in any case.
   */
  constructor(options = {}) {
    if (options === null || typeof options !== 'object') {
      throw new UsageError(`options must be an object, got ${describe(options)}`, 'invalid_argument', 'options');
    }
    const prefix = options.prefix ?? DEFAULT_REDIS_PREFIX;
    if (typeof prefix !== 'string') throw new UsageError(`options.prefix must be a string, got ${describe(prefix)}`, 'invalid_argument', 'options.prefix');
    this.#prefix = prefix;
    this.#connectTimeoutMs = positiveMs(options.connectTimeoutMs, 'options.connectTimeoutMs', DEFAULT_STORE_TIMEOUT_MS);
    const commandTimeout = positiveMs(options.commandTimeoutMs, 'options.commandTimeoutMs', DEFAULT_STORE_TIMEOUT_MS);
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
    return recordFromText(String(text), key);
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
    const text = recordText(record);
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
    const text = recordText(record);
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

/**
 * The item of a record. A version 2 record (the queue-like hand-off) also gets
 * `version`, `beat`, `next_ticket`, `hold_ms` (N, zeros included: the core leaves zeros
 * out of its JSON) and `queue` (S: the core's JSON text of the tickets, `[]` when empty),
 * exactly as the Rust adapter (lane/src/store/dynamodb.rs) writes them; a version 1 record
 * keeps its six attributes.
 */
function toItem(key, record) {
  const opt = (v) => (v === null || v === undefined ? { NULL: true } : { S: v });
  const item = {
    key: { S: key },
    owner: { S: record.owner },
    epoch: { N: String(record.epoch) },
    rvn: { N: String(record.rvn) },
    lease_ms: { N: String(record.lease_ms) },
    committed_token: opt(record.committed_token),
    holder: opt(record.holder),
  };
  if ((record.version ?? 1) >= 2) {
    for (const name of ['version', 'beat', 'next_ticket', 'hold_ms']) item[name] = { N: String(record[name] ?? 0) };
    item.queue = { S: queueText(record.queue ?? []) };
  }
  return item;
}

/** A queue as the core's JSON text: compact, each ticket's fields in the core's order. */
function queueText(queue) {
  return JSON.stringify(queue.map((t) => inOrder(t, TICKET_FIELDS)));
}

/**
 * The record of an item as JSON text, for the core to parse and validate: `S` becomes a
 * JSON string, `N` (digits) a JSON number with its digits unchanged, `NULL` null; a
 * missing attribute is left out. Nothing is checked here.
 */
function itemText(item) {
  const fields = [];
  for (const [name, a] of Object.entries(item)) {
    if (name === 'key' || a === null || typeof a !== 'object') continue;
    let value;
    if (typeof a.S === 'string') value = JSON.stringify(a.S);
    else if (typeof a.N === 'string') value = /^\d+$/.test(a.N) ? a.N : JSON.stringify(a.N);
    else if (a.NULL === true) value = 'null';
    else value = JSON.stringify(a);
    fields.push(`${JSON.stringify(name)}:${value}`);
  }
  return `{${fields.join(',')}}`;
}

function fromItem(item, key) {
  return recordFromText(itemText(item), key);
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
 * The configuration of an AWS SDK client a store builds itself: one attempt (the engine
 * decides retries), every request bounded by `timeout` ms, and the user's `region`,
 * `endpoint` and `credentials` when given; `extra` adds a service's own settings.
 */
function sdkClientConfig(options, timeout, extra = {}) {
  const config = { maxAttempts: 1, requestHandler: { requestTimeout: timeout, connectionTimeout: timeout }, ...extra };
  for (const name of ['region', 'endpoint', 'credentials']) {
    if (options[name] !== undefined) config[name] = options[name];
  }
  return config;
}

/**
 * A lease store in a DynamoDB table (through `@aws-sdk/client-dynamodb`): partition key
 * `key` (S), one item per entity with attributes `owner` (S), `epoch`, `rvn`, `lease_ms`
 * (N), `committed_token` and `holder` (S, or NULL), and in version 2 records `version`,
 * `beat`, `next_ticket`, `hold_ms` (N) and `queue` (S, the JSON text of the tickets): the
 * layout of every writelane binding. Reads are consistent; writes are
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
   *   timeout of `requestTimeoutMs` (default: the core's store timeout, the default
   *   policy's `lease.store_timeout_ms`).
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
    const timeout = positiveMs(options.requestTimeoutMs, 'options.requestTimeoutMs', DEFAULT_STORE_TIMEOUT_MS);
    if (options.client !== undefined && options.client !== null) {
      if (typeof options.client.send !== 'function') {
        throw new UsageError('options.client must be a DynamoDBClient', 'invalid_argument', 'options.client');
      }
      this.#client = options.client;
      this.#owned = false;
    } else {
      this.#client = new this.#sdk.DynamoDBClient(sdkClientConfig(options, timeout));
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
      Item: toItem(key, record),
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

/* ------------------------------------------------------------------------------------ */
/* S3                                                                                   */
/* ------------------------------------------------------------------------------------ */

/**
 * The record's fields in the order the core writes them (`version` and those after
 * `holder` only in version 2 records, and there only when not zero or empty).
 */
const RECORD_FIELDS = ['version', 'owner', 'epoch', 'rvn', 'lease_ms', 'committed_token', 'holder',
  'beat', 'next_ticket', 'hold_ms', 'queue'];
/** A queue ticket's fields in the order the core writes them. */
const TICKET_FIELDS = ['owner', 'ticket', 'beat'];

/** An object with `fields` first, in that order, then any others; anything else as it is. */
function inOrder(value, fields) {
  if (value === null || typeof value !== 'object' || Array.isArray(value)) return value;
  const ordered = {};
  for (const name of fields) if (name in value) ordered[name] = value[name];
  return { ...ordered, ...value };
}

/**
 * The object body of a record: the core's JSON text of it (compact, fields and each
 * ticket's fields in the core's order), byte for byte what the Rust, Python and Go
 * adapters write.
 */
function recordBody(record) {
  if (record === null || typeof record !== 'object' || Array.isArray(record)) {
    throw new UsageError(`record must be a lease record, got ${describe(record)}`, 'invalid_argument', 'record');
  }
  const ordered = inOrder(record, RECORD_FIELDS);
  if (Array.isArray(ordered.queue)) ordered.queue = ordered.queue.map((t) => inOrder(t, TICKET_FIELDS));
  return recordText(ordered);
}

/**
 * A middleware that refuses to send a PutObject without its condition header. A
 * `@aws-sdk/client-s3` from before S3's conditional writes (2024) drops the `IfNoneMatch`
 * and `IfMatch` inputs it does not know, and the put would go out unconditional.
 */
function requireCondition(header) {
  return (next) => async (args) => {
    const headers = args.request?.headers ?? {};
    if (!Object.keys(headers).some((name) => name.toLowerCase() === header)) {
      throw new StoreError('unavailable', `this @aws-sdk/client-s3 did not put the ${header} header on PutObject (a version from before S3's conditional writes): upgrade it; nothing was sent`);
    }
    return next(args);
  };
}

/** The HTTP status of an AWS SDK v3 error, when a reply came. */
function statusOf(e) {
  const status = e?.$metadata?.httpStatusCode ?? e?.$response?.statusCode;
  return Number.isInteger(status) ? status : undefined;
}

/**
 * A lease store in an S3 bucket (through `@aws-sdk/client-s3`): one object per entity at
 * `prefix + key`, whose body is the record's JSON text as the core writes it (its fields,
 * version 2's included, in the core's order), the same object every writelane binding
 * reads and writes.
 *
 * The rvn lives inside the object (every binding reads the same record); the ETag is only
 * the condition. `get` is `GetObject` (S3 reads are strongly consistent; no object is no
 * record); `putIfAbsent` is `PutObject` with `If-None-Match: *`; `compareAndSwap` is
 * `PutObject` with `If-Match: <etag>`, the ETag of the object whose body holds
 * `expectedRvn` (the one this store last read or wrote for the key, or else read now; a
 * record at another rvn is refused without writing). An ETag names the exact body and
 * every write draws a fresh rvn, so the put lands only if the record still has the
 * expected rvn. A 412 (`PreconditionFailed`) is a refusal with the record read right
 * after it (a 404 on `If-Match`: refused, no record); a 409 `ConditionalRequestConflict`
 * is `unavailable` (nothing was written; the lease client tries again after a poll).
 * Nothing is ever deleted: a release is a compare-and-swap to a free record. A failed
 * read, a request never sent and a 4xx are `unavailable`; a write with no reply (a
 * timeout, a dropped connection, a 5xx) is `lost`. IAM: `s3:GetObject` and
 * `s3:PutObject` on `arn:aws:s3:::BUCKET/PREFIX*`; the bucket must exist.
 */
class S3Store {
  #client;
  #owned;
  #bucket;
  #prefix;
  #sdk;
  /** Per key: the rvn and ETag of the object as last read or written here. */
  #etags = new Map();

  /**
   * @param {{bucket: string, prefix?: string, client?: object, region?: string,
   *   endpoint?: string, credentials?: object, requestTimeoutMs?: number}} options
   *   `prefix` (default none; end it with `/` for a folder) goes before every key.
   *   `client`: an `S3Client` of yours (give it `maxAttempts: 1`: the engine does its
   *   own retrying); otherwise one is made with `maxAttempts: 1` from `region`,
   *   `endpoint` (then with path-style addressing, as local servers need) and
   *   `credentials` (the SDK's defaults when absent), checksums only where S3 requires
   *   them, and a request timeout of `requestTimeoutMs` (default: the core's store
   *   timeout, the default policy's `lease.store_timeout_ms`).
   */
  constructor(options) {
    if (options === null || typeof options !== 'object') {
      throw new UsageError(`options must be an object with a bucket, got ${describe(options)}`, 'invalid_argument', 'options');
    }
    if (typeof options.bucket !== 'string' || options.bucket === '') {
      throw new UsageError(`options.bucket must be a non-empty string, got ${describe(options.bucket)}`, 'invalid_argument', 'options.bucket');
    }
    const prefix = options.prefix ?? '';
    if (typeof prefix !== 'string') throw new UsageError(`options.prefix must be a string, got ${describe(prefix)}`, 'invalid_argument', 'options.prefix');
    this.#bucket = options.bucket;
    this.#prefix = prefix;
    const timeout = positiveMs(options.requestTimeoutMs, 'options.requestTimeoutMs', DEFAULT_STORE_TIMEOUT_MS);
    this.#sdk = optionalModule('@aws-sdk/client-s3', 'S3Store');
    if (options.client !== undefined && options.client !== null) {
      if (typeof options.client.send !== 'function') {
        throw new UsageError('options.client must be an S3Client', 'invalid_argument', 'options.client');
      }
      this.#client = options.client;
      this.#owned = false;
    } else {
      this.#client = new this.#sdk.S3Client(sdkClientConfig(options, timeout, {
        // As the Rust adapter: a lease record is a few hundred bytes, and S3-compatible
        // servers differ on the checksums S3 does not require.
        requestChecksumCalculation: 'WHEN_REQUIRED',
        responseChecksumValidation: 'WHEN_REQUIRED',
        ...(options.endpoint !== undefined ? { forcePathStyle: true } : {}),
      }));
      this.#owned = true;
    }
  }

  /** The bucket name. */
  get bucket() {
    return this.#bucket;
  }

  /** What goes before every key. */
  get prefix() {
    return this.#prefix;
  }

  /** The S3Client in use. */
  get client() {
    return this.#client;
  }

  /**
   * The object that holds the record of `key`: `prefix + key`.
   * @param {string} key
   */
  objectKey(key) {
    return this.#prefix + checkKey(key);
  }

  #remember(key, rvn, etag) {
    if (typeof etag === 'string' && etag !== '' && Number.isSafeInteger(rvn)) this.#etags.set(key, { rvn, etag });
    else this.#etags.delete(key);
  }

  /** The record at `key` and its ETag (`{record: null}` without an object). */
  async #read(key) {
    let out;
    let text;
    try {
      out = await this.#client.send(new this.#sdk.GetObjectCommand({ Bucket: this.#bucket, Key: this.objectKey(key) }));
      text = await out.Body.transformToString('utf-8');
    } catch (e) {
      if (e?.name === 'NoSuchKey') {
        this.#etags.delete(key);
        return { record: null, etag: null };
      }
      // A read changes nothing, whatever happened to it.
      throw new StoreError('unavailable', `${e?.name ?? 'Error'}: ${e?.message ?? String(e)}`, { cause: e });
    }
    const record = recordFromText(text, key);
    this.#remember(key, record.rvn, out.ETag);
    return { record, etag: out.ETag ?? null };
  }

  /**
   * The record at `key`, or `null` (S3 reads are strongly consistent).
   * @param {string} key
   * @returns {Promise<LeaseRecord | null>}
   */
  async get(key) {
    checkKey(key);
    return (await this.#read(key)).record;
  }

  /** A refused write: the record found now. */
  async #refused(key) {
    try {
      return { done: false, current: (await this.#read(key)).record };
    } catch (g) {
      // The condition failed, so nothing was written; only the record is unknown.
      throw new StoreError('unavailable', `refused, and the record could not be read: ${g.message}`, { cause: g });
    }
  }

  async #put(key, record, ifMatch) {
    const input = {
      Bucket: this.#bucket,
      Key: this.objectKey(key),
      Body: recordBody(record),
      ContentType: 'application/json',
    };
    if (ifMatch === null) input.IfNoneMatch = '*';
    else input.IfMatch = ifMatch;
    const command = new this.#sdk.PutObjectCommand(input);
    command.middlewareStack?.add(requireCondition(ifMatch === null ? 'if-none-match' : 'if-match'), {
      step: 'build', priority: 'low', name: 'writelaneRequireCondition',
    });
    let out;
    try {
      out = await this.#client.send(command);
    } catch (e) {
      if (e instanceof StoreError) throw e;
      const status = statusOf(e);
      if (status === 412 || e?.name === 'PreconditionFailed') return this.#refused(key);
      if (e?.name === 'NoSuchKey' || (status === 404 && e?.name !== 'NoSuchBucket')) return { done: false, current: null };
      if (e?.name === 'ConditionalRequestConflict') {
        throw new StoreError('unavailable', 'ConditionalRequestConflict: a concurrent conditional write; nothing was written', { cause: e });
      }
      throw awsStoreError(e);
    }
    this.#remember(key, record.rvn, out.ETag);
    return { done: true };
  }

  /**
   * Create the record if there is none (`If-None-Match: *`).
   * @param {string} key
   * @param {LeaseRecord} record
   * @returns {Promise<WriteResult>}
   */
  async putIfAbsent(key, record) {
    checkKey(key);
    return this.#put(key, record, null);
  }

  /**
   * Replace the record if its `rvn` is `expectedRvn` (`If-Match` on the ETag of the
   * object that holds it).
   * @param {string} key
   * @param {number} expectedRvn
   * @param {LeaseRecord} record
   * @returns {Promise<WriteResult>}
   */
  async compareAndSwap(key, expectedRvn, record) {
    checkKey(key);
    checkRvn(expectedRvn);
    const cached = this.#etags.get(key);
    let etag = cached !== undefined && cached.rvn === expectedRvn ? cached.etag : null;
    if (etag === null) {
      const found = await this.#read(key);
      if (found.record === null) return { done: false, current: null };
      if (found.record.rvn !== expectedRvn) return { done: false, current: found.record };
      if (!found.etag) throw new StoreError('unavailable', `${key}: the object came back without an ETag; nothing was written`);
      etag = found.etag;
    }
    return this.#put(key, record, etag);
  }

  /** Close the client if this store made it (a client passed in is left open). */
  close() {
    if (this.#owned) this.#client.destroy();
  }
}

/**
 * @typedef {{owner: string, ticket: number, beat: number}} Ticket
 * @typedef {{version?: number, owner: string, epoch: number, rvn: number, lease_ms: number,
 *   committed_token: string | null, holder: string | null, beat?: number,
 *   next_ticket?: number, hold_ms?: number, queue?: Ticket[]}} LeaseRecord
 * @typedef {{done: true} | {done: false, current: LeaseRecord | null}} WriteResult
 * @typedef {{get(key: string): Promise<LeaseRecord | null>,
 *   putIfAbsent(key: string, record: LeaseRecord): Promise<WriteResult>,
 *   compareAndSwap(key: string, expectedRvn: number, record: LeaseRecord): Promise<WriteResult>}} LeaseStore
 */

module.exports = {
  MemoryStore,
  RedisStore,
  DynamoDBStore,
  S3Store,
};
