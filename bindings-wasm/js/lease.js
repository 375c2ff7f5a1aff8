'use strict';
/**
 * Carrying out the engine's lease-store operations with an adapter, and the operator's
 * tools around lease records. The core decides everything here: it parses and validates
 * every record a store returns, formats owner ids, and plans and finishes a
 * force-release; this module only moves values between an adapter and the core, and
 * bounds every store call by the policy's `lease.store_timeout_ms`.
 *
 * A store adapter offers three async primitives (see `stores.js`): `get(key)` resolves to
 * the record or `null`; `putIfAbsent(key, record)` and `compareAndSwap(key, expectedRvn,
 * record)` resolve to `{done: true}` or `{done: false, current}`. A failing adapter throws
 * `StoreError` with `kind` `unavailable` (surely not carried out) or `lost` (sent, no
 * reply); anything else it throws counts as `lost`.
 *
 * @module writelane/lease
 */

const os = require('node:os');
const { randomBytes } = require('node:crypto');
const { native, isWhole } = require('./native.js');
const { UsageError, StoreError, describe, argumentError } = require('./errors.js');
const { systemClock, startTimer } = require('./clock.js');

/** The store timeout of the default policy (the core's), for calls made outside a lane. */
const DEFAULT_STORE_TIMEOUT_MS = JSON.parse(native.parsePolicy('null')).policy.lease.store_timeout_ms;

/** Records the core parsed from a store's bytes: not checked a second time. */
const parsed = new WeakSet();

/**
 * A record from the text a store keeps (or, for DynamoDB, the JSON built from the item's
 * attributes), parsed and validated by the core. A malformed one throws `StoreError`
 * (`unavailable`) naming the key and the field, so writers wait and then give up
 * without writing.
 * @param {string} text
 * @param {string} key
 * @returns {LeaseRecord}
 */
function recordFromText(text, key) {
  const result = JSON.parse(native.parseRecord(text));
  if (!result.ok) {
    const shown = text.length > 300 ? `${text.slice(0, 300)}...` : text;
    throw new StoreError('unavailable', `stored record at ${JSON.stringify(key)} is malformed: ${result.field} ${result.rule} (found ${shown})`);
  }
  parsed.add(result.value);
  return result.value;
}

/** What an adapter answered for a record (`null`, or an object) as a checked record. */
function recordOf(value, key) {
  if (value === null || value === undefined) return null;
  if (parsed.has(value)) return value;
  let text;
  try {
    text = JSON.stringify(value);
  } catch (e) {
    throw new StoreError('unavailable', `stored record at ${JSON.stringify(key)} is not JSON: ${e.message}`);
  }
  return recordFromText(String(text), key);
}

/**
 * Check that `record` is a lease record, by the core's rules, and return the core's copy
 * of it. Throws `UsageError` (kind `invalid_record`) naming the field (`record.epoch`).
 * @param {unknown} record
 * @param {string} [what] how to name the record in messages
 * @returns {LeaseRecord}
 */
function checkRecord(record, what = 'record') {
  let text;
  try {
    text = JSON.stringify(record);
  } catch (e) {
    throw new UsageError(`${what} is not JSON: ${e.message}`, 'invalid_record', what);
  }
  const result = JSON.parse(native.parseRecord(String(text)));
  if (result.ok) return result.value;
  const field = `${what}${result.field.slice('record'.length)}`;
  throw new UsageError(`${field}: ${result.rule}`, 'invalid_record', field);
}

/** Check a lease store: the three primitives as functions. */
function checkStore(store, field) {
  if (store === undefined || store === null) return undefined;
  if (typeof store !== 'object' || ['get', 'putIfAbsent', 'compareAndSwap'].some((m) => typeof store[m] !== 'function')) {
    throw argumentError(field, 'must be a lease store (get, putIfAbsent, compareAndSwap)', store);
  }
  return store;
}

/** The adapter's promise, or a `lost` StoreError once `ms` have passed on `clock`. */
function bounded(promise, ms, clock) {
  let cancel;
  const timeout = new Promise((_, reject) => {
    cancel = startTimer(clock, ms, () => reject(new StoreError('lost', `no reply within ${ms} ms (lease.store_timeout_ms)`)));
  });
  return Promise.race([promise, timeout]).finally(cancel);
}

const DONE = Object.freeze({ reply: 'done' });

/**
 * Carry out one operation (in the core's JSON form, already checked) and answer the
 * core's reply, with the error behind a `lost` or `unavailable` reply (a lane keeps it as
 * the cause of a give-up). No error escapes.
 * @returns {Promise<{reply: object, error: unknown}>}
 */
async function carryOut(store, op, timeoutMs, clock) {
  try {
    if (op.op === 'get') {
      const record = recordOf(await bounded(store.get(op.key), timeoutMs, clock), op.key);
      return { reply: { reply: 'found', record }, error: undefined };
    }
    const result = await bounded(op.op === 'put_if_absent'
      ? store.putIfAbsent(op.key, op.record)
      : store.compareAndSwap(op.key, op.expected_rvn, op.record), timeoutMs, clock);
    if (result?.done === true) return { reply: DONE, error: undefined };
    if (result?.done === false) {
      return { reply: { reply: 'refused', current: recordOf(result.current, op.key) }, error: undefined };
    }
    throw new StoreError('lost', `the adapter resolved a conditional write to ${describe(result)}, not {done, current}`);
  } catch (e) {
    // Anything but a StoreError may have happened after the request went out.
    const kind = e instanceof StoreError && e.kind === 'unavailable' ? 'unavailable' : 'lost';
    return { reply: { reply: kind }, error: e };
  }
}

/**
 * Carry out one store operation in the core's JSON form with `store` and resolve to the
 * reply in the core's JSON form, for hosts that drive an `Engine` themselves:
 *
 * - `{op: "get", key}` -> `{reply: "found", record}` (`record` is `null` when none);
 * - `{op: "put_if_absent", key, record}` and `{op: "compare_and_swap", key, expected_rvn,
 *   record}` -> `{reply: "done"}` or `{reply: "refused", current}`;
 * - a store that fails, or has not answered within `timeoutMs` (default: the default
 *   policy's `lease.store_timeout_ms`), gives `{reply: "unavailable"}` or
 *   `{reply: "lost"}`: no error the adapter throws escapes (a malformed operation rejects
 *   with `UsageError` naming the field).
 * @param {LeaseStore} store
 * @param {object} operation
 * @param {{timeoutMs?: number}} [options]
 * @returns {Promise<object>}
 */
async function applyStoreOp(store, operation, options) {
  if (checkStore(store, 'store') === undefined) throw argumentError('store', 'must be a lease store', store);
  let text;
  try {
    text = JSON.stringify(operation);
  } catch (e) {
    throw new UsageError(`operation is not JSON: ${e.message}`, 'invalid_argument', 'operation');
  }
  const result = JSON.parse(native.parseStoreOp(String(text)));
  if (!result.ok) throw new UsageError(`${result.field} ${result.rule}`, 'invalid_argument', result.field);
  const timeoutMs = options?.timeoutMs ?? DEFAULT_STORE_TIMEOUT_MS;
  if (!isWhole(timeoutMs) || timeoutMs === 0) throw argumentError('options.timeoutMs', 'must be a whole number of milliseconds above 0', timeoutMs);
  return (await carryOut(store, result.value, timeoutMs, systemClock)).reply;
}

/** The StoreError behind a reply that was not an answer. */
function storeFailure({ reply, error }) {
  if (error instanceof StoreError) return error;
  return new StoreError(reply.reply, String(error?.message ?? error), { cause: error });
}

/**
 * Free a stuck lease at `key`, for an operator who has made sure its holder is gone: the
 * core plans it from the record read (owner and holder cleared, epoch plus one so the
 * stuck holder's fence is stale, the committed token cleared so the next writer reads
 * first, a new rvn; never deleted), this carries out the compare-and-swap and the core
 * reads its reply. Resolves to the core's result, one of
 *
 * - `{result: "no_record"}`: nothing to release;
 * - `{result: "already_free", record}`: the record has no owner; left unchanged;
 * - `{result: "released", record}`: the record written;
 * - `{result: "changed", current}`: the record is not at `expectedRvn`, or changed between
 *   the read and the swap; nothing written. Read it again and decide again.
 *
 * Rejects with `StoreError` (`unavailable` or `lost`) when the store failed and the
 * outcome is unknown: inspect the record again.
 * @param {LeaseStore} store
 * @param {string} key
 * @param {{expectedRvn?: number}} [options] release only the holding you inspected
 * @returns {Promise<ForceReleaseResult>}
 */
function forceRelease(store, key, options) {
  return forceReleaseWith(store, key, options?.expectedRvn, randomBytes(8).readBigUInt64LE());
}

/** `forceRelease` with the 64 random bits for the new rvn given (a BigInt). */
async function forceReleaseWith(store, key, expectedRvn, entropy) {
  if (checkStore(store, 'store') === undefined) throw argumentError('store', 'must be a lease store', store);
  if (typeof key !== 'string' || key === '') throw argumentError('key', 'must be a non-empty string', key);
  let expected = -1;
  if (expectedRvn !== undefined && expectedRvn !== null) {
    if (!isWhole(expectedRvn)) throw argumentError('options.expectedRvn', 'must be a whole number from 0 to 2^53-1', expectedRvn);
    expected = expectedRvn;
  }
  const got = await carryOut(store, { op: 'get', key }, DEFAULT_STORE_TIMEOUT_MS, systemClock);
  if (got.reply.reply !== 'found') throw storeFailure(got);
  const found = got.reply.record === null ? undefined : JSON.stringify(got.reply.record);
  const plan = JSON.parse(native.planForceRelease(key, found, expected, entropy));
  if (plan.error !== undefined) throw new UsageError(plan.error.message, plan.error.kind);
  if (plan.done !== undefined) return plan.done;
  const swapped = await carryOut(store, plan.swap, DEFAULT_STORE_TIMEOUT_MS, systemClock);
  const result = JSON.parse(native.finishForceRelease(JSON.stringify(plan.swap), JSON.stringify(swapped.reply)));
  if (result === null) throw storeFailure(swapped);
  if (result.error !== undefined) throw new UsageError(result.error.message, result.error.kind);
  return result;
}

/**
 * This process's owner id in lease records, formatted by the core as
 * `HOST:PID:16-hex-digits` from the host name, the process id and 64 random bits.
 * @param {string} [host]
 * @param {number} [pid]
 * @param {bigint} [entropy]
 * @returns {string}
 */
function defaultOwner(host = os.hostname(), pid = process.pid, entropy = randomBytes(8).readBigUInt64LE()) {
  return native.ownerId(host, pid, entropy);
}

/**
 * @typedef {{owner: string, epoch: number, rvn: number, lease_ms: number,
 *   committed_token: string | null, holder: string | null}} LeaseRecord
 * @typedef {{result: 'no_record'} | {result: 'already_free' | 'released', record: LeaseRecord}
 *   | {result: 'changed', current: LeaseRecord | null}} ForceReleaseResult
 * @typedef {{get(key: string): Promise<LeaseRecord | null>,
 *   putIfAbsent(key: string, record: LeaseRecord): Promise<object>,
 *   compareAndSwap(key: string, expectedRvn: number, record: LeaseRecord): Promise<object>}} LeaseStore
 */

module.exports = {
  DEFAULT_STORE_TIMEOUT_MS,
  recordFromText,
  checkRecord,
  checkStore,
  carryOut,
  applyStoreOp,
  forceRelease,
  forceReleaseWith,
  defaultOwner,
};
