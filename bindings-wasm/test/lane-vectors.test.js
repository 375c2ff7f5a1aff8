'use strict';
// Every lane-driver vector in tests/vectors-lane/ (see its README), replayed through the
// public `Lane` API on a virtual clock: the user's read and write are scripted (AWS SDK
// v3-shaped errors for `fail`, the SDK's TimeoutError for an unknown outcome, a plain
// Error for a user exception), the store is a fault-injecting wrapper over MemoryStore,
// and cancellation is an AbortSignal fired when a sleep reaches the vector's time or while
// the named call runs. The driver must make the same calls, at the same virtual times,
// with the same arguments, and end with the same outcome as the reference driver.
// Force-release and owner-id vectors go through the binding's own paths with the
// vector's random input.

const { test } = require('node:test');
const assert = require('node:assert/strict');
const fs = require('node:fs');
const path = require('node:path');
const {
  Lane, MemoryStore, StoreError, GaveUpError, StaleRevisionError, UsageError,
} = require('..');
const { forceReleaseWith, defaultOwner } = require('../js/lease.js');

const dir = path.resolve(__dirname, '../../tests/vectors-lane');
const files = fs.readdirSync(dir).filter((f) => f.endsWith('.json')).sort();

/**
 * Virtual time: `sleep` registers a timer; once the process has nothing else to do (every
 * scripted call and store operation has settled), the earliest timer fires and the clock
 * jumps to it. A pending cancellation at or before that time fires first.
 */
class VirtualClock {
  now = 0;
  #timers = [];
  #scheduled = false;

  constructor(cancelAt, controller) {
    this.cancelAt = cancelAt;
    this.controller = controller;
  }

  nowMs() {
    return this.now;
  }

  sleep(ms, signal) {
    assert.ok(Number.isSafeInteger(ms) && ms >= 0, `sleep(${ms})`);
    return new Promise((resolve) => {
      if (signal?.aborted) {
        resolve();
        return;
      }
      const timer = { at: this.now + ms, resolve };
      this.#timers.push(timer);
      signal?.addEventListener('abort', () => {
        this.#timers = this.#timers.filter((t) => t !== timer);
        resolve();
      }, { once: true });
      this.#schedule();
    });
  }

  #schedule() {
    if (this.#scheduled) return;
    this.#scheduled = true;
    setImmediate(() => {
      this.#scheduled = false;
      if (this.#timers.length === 0) return;
      const next = this.#timers.reduce((a, b) => (b.at < a.at ? b : a));
      if (this.cancelAt !== null && !this.controller.signal.aborted && this.cancelAt <= next.at) {
        this.now = Math.max(this.now, this.cancelAt);
        this.controller.abort(new Error('cancelled by the vector'));
      } else {
        this.#timers = this.#timers.filter((t) => t !== next);
        this.now = Math.max(this.now, next.at);
        next.resolve();
      }
      if (this.#timers.length > 0) this.#schedule();
    });
  }
}

/** The error a scripted call throws for `{"fail": ...}`. */
function failure(fail) {
  if (fail.unknown) {
    // What the SDK's Node handler throws when a request timed out after it was sent.
    return Object.assign(new Error('Connection timed out after 2000 ms'), { name: 'TimeoutError', $metadata: {} });
  }
  const e = new Error(`${fail.code ?? 'UnknownError'}: scripted failure`);
  e.name = fail.code ?? 'UnknownError';
  e.$fault = fail.status !== null && fail.status >= 500 ? 'server' : 'client';
  e.$metadata = fail.status === null ? { attempts: 1 } : { httpStatusCode: fail.status, attempts: 1 };
  if (fail.retry_after_ms !== null) {
    e.$response = { statusCode: fail.status, headers: { 'x-amz-retry-after': String(fail.retry_after_ms) } };
  }
  return e;
}

/** A MemoryStore holding `records` that records every call and injects `faults` by index. */
async function faultyStore(records, faults, clock, calls) {
  const inner = new MemoryStore();
  for (const [key, record] of Object.entries(records)) await inner.putIfAbsent(key, record);
  let index = 0;
  const apply = async (operation, carryOut) => {
    calls.push({ at: clock.nowMs(), call: 'store', operation });
    const fault = faults[String(index)];
    index += 1;
    if (fault === 'dropped') throw new StoreError('lost', 'the request was dropped');
    if (fault === 'unavailable') throw new StoreError('unavailable', 'the store is down');
    const result = await carryOut();
    if (fault === 'lost') throw new StoreError('lost', 'the reply was lost');
    if (fault === 'retried' && operation.op !== 'get') {
      return { done: false, current: await inner.get(operation.key) };
    }
    assert.equal(fault, undefined, `unknown fault ${fault}`);
    return result;
  };
  return {
    inner,
    get: (key) => apply({ op: 'get', key }, () => inner.get(key)),
    putIfAbsent: (key, record) => apply({ op: 'put_if_absent', key, record }, () => inner.putIfAbsent(key, record)),
    compareAndSwap: (key, rvn, record) => apply(
      { op: 'compare_and_swap', key, expected_rvn: rvn, record },
      () => inner.compareAndSwap(key, rvn, record),
    ),
  };
}

async function replayLane(v) {
  const { run } = v;
  const controller = new AbortController();
  const clock = new VirtualClock(run.cancel?.at_ms ?? null, controller);
  const calls = [];
  const store = v.lane.store === null ? undefined
    : await faultyStore(v.lane.store.records, v.lane.store.faults, clock, calls);
  const lane = new Lane(JSON.stringify(v.policy), {
    seed: v.seed, clock, store, owner: v.lane.owner ?? undefined, holder: v.lane.holder ?? undefined,
  });
  let userCalls = 0;
  /** Carry out one scripted result: advance the clock, then return or throw. */
  const scripted = (result, onToken) => {
    const k = userCalls;
    userCalls += 1;
    if (run.cancel?.during_call === k) {
      // Cancelled while this call runs: whatever it returns must never be seen.
      controller.abort(new Error('cancelled by the vector'));
    } else {
      clock.now += result.ms ?? 0;
    }
    if (result.raise !== undefined) throw new Error(result.raise);
    if (result.fail !== undefined) throw failure(result.fail);
    return onToken(result.token);
  };
  let reads = 0;
  let writes = 0;
  const read = async () => {
    calls.push({ at: clock.nowMs(), call: 'read' });
    assert.ok(reads < run.reads.length, `read ${reads} is not scripted`);
    reads += 1;
    return scripted(run.reads[reads - 1], (token) => token);
  };
  const write = async (attempt, ctx) => {
    calls.push({ at: clock.nowMs(), call: 'write', attempt, base_token: ctx.baseToken, fence: ctx.fence });
    assert.ok(writes < run.writes.length, `write ${writes} is not scripted`);
    writes += 1;
    return scripted(run.writes[writes - 1], (token) => {
      if (token !== null) ctx.setToken(token);
      return attempt;
    });
  };
  let outcome;
  try {
    await lane.run(run.entity, write, {
      read: run.has_read ? read : undefined,
      expected: run.expected ?? undefined,
      deadlineMs: run.deadline_ms ?? undefined,
      signal: controller.signal,
    });
    const committed = lane.events().filter((e) => e.type === 'committed');
    assert.equal(committed.length, 1, 'one committed event');
    outcome = {
      status: 'committed',
      token: lane.stats().entities[run.entity].committed_token,
      attempts: committed[0].attempts,
    };
  } catch (e) {
    if (e instanceof StaleRevisionError) {
      outcome = { status: 'gave_up', reason: 'stale_revision', attempts: e.attempts, code: null };
    } else if (e instanceof GaveUpError) {
      outcome = { status: 'gave_up', reason: e.reason, attempts: e.attempts, code: e.errorCode };
      if (e.reason === 'cancelled') assert.equal(e.cause, controller.signal.reason, 'the abort reason is the cause');
    } else if (e instanceof UsageError) {
      outcome = { status: 'usage_error', kind: e.kind };
    } else {
      throw e;
    }
  }
  const got = { calls, outcome, end_ms: clock.now };
  if (store !== undefined) got.store_after = { [run.entity]: store.inner.snapshot()[run.entity] ?? null };
  return got;
}

/** The vector's `entropy`, exactly: JSON numbers past 2^53 lose digits in JSON.parse. */
function entropyOf(text) {
  const m = /"entropy":\s*(\d+)/.exec(text);
  assert.ok(m, 'the vector has an entropy');
  return BigInt(m[1]);
}

async function replayForceRelease(v, entropy) {
  const clock = { nowMs: () => 0 };
  const calls = [];
  // Operation 0 is the get; the fault applies to the compare-and-swap after it.
  const store = await faultyStore(v.record === null ? {} : { [v.key]: v.record },
    v.fault === null ? {} : { 1: v.fault }, clock, calls);
  try {
    return { result: await forceReleaseWith(store, v.key, v.expected_rvn, entropy) };
  } catch (e) {
    if (!(e instanceof StoreError)) throw e;
    assert.equal(e.kind, v.fault === 'lost' ? 'lost' : 'unavailable');
    return { result: { error: 'unavailable' } };
  }
}

test('lane vectors are present, of every kind', () => {
  assert.ok(files.length >= 30, `only ${files.length} lane vectors in ${dir}`);
  const kinds = new Set(files.map((f) => JSON.parse(fs.readFileSync(path.join(dir, f), 'utf8')).kind));
  assert.deepEqual([...kinds].sort(), ['force_release', 'lane', 'owner_id']);
});

for (const file of files) {
  const text = fs.readFileSync(path.join(dir, file), 'utf8');
  const v = JSON.parse(text);
  test(`lane vector ${file}: ${v.description}`, async () => {
    switch (v.kind) {
      case 'lane':
        assert.deepEqual(await replayLane(v), v.expect);
        return;
      case 'force_release':
        assert.deepEqual(await replayForceRelease(v, entropyOf(text)), v.expect);
        return;
      case 'owner_id':
        assert.deepEqual({ owner: defaultOwner(v.host, v.pid, entropyOf(text)) }, v.expect);
        return;
      default:
        assert.fail(`unknown lane-vector kind ${v.kind}`);
    }
  });
}
