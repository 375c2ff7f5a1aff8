'use strict';
// The group-commit vectors (tests/vectors-lane/batch, format in tests/vectors-lane's
// README) replayed through `lane.update` and `lane.run`: one async task per run on a
// virtual clock (time jumps to the next timer only when the process has nothing else to
// do), a document store whose reads and writes take `call_ms`, and change functions that
// append an item or throw. The model is the Rust replay, lane/tests/batch_vectors.rs.

const { test } = require('node:test');
const assert = require('node:assert/strict');
const fs = require('node:fs');
const path = require('node:path');
const { Lane, GaveUpError } = require('..');

const dir = path.resolve(__dirname, '../../tests/vectors-lane/batch');
const files = fs.readdirSync(dir).filter((f) => f.endsWith('.json')).sort();

/** Virtual time: every sleep is a timer; the earliest fires once nothing else can run. */
class SimClock {
  now = 0;
  #timers = [];
  #scheduled = false;

  nowMs() {
    return this.now;
  }

  sleep(ms, signal) {
    return this.until(this.now + ms, signal);
  }

  until(at, signal) {
    return new Promise((resolve) => {
      if (signal?.aborted) {
        resolve();
        return;
      }
      const timer = { at: Math.max(at, this.now), resolve };
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
      this.#timers = this.#timers.filter((t) => t !== next);
      this.now = Math.max(this.now, next.at);
      next.resolve();
      if (this.#timers.length > 0) this.#schedule();
    });
  }
}

/** The AWS SDK v3-shaped error of a scripted write failure. */
function sdkError(code, status) {
  const e = new Error(`${code}: scripted failure`);
  e.name = code;
  e.$fault = status >= 500 ? 'server' : 'client';
  e.$metadata = { httpStatusCode: status, attempts: 1 };
  return e;
}

async function replay(v) {
  const clock = new SimClock();
  const lane = new Lane(v.policy, { seed: v.seed, clock });
  const world = { items: [], version: 0, writes: 0, calls: [] };
  const read = async (i) => {
    world.calls.push({ at: clock.now, call: 'read', run: i });
    await clock.sleep(v.call_ms);
    return { document: [...world.items], token: `v${world.version}` };
  };
  const write = async (i, doc, attempt, context) => {
    world.calls.push({
      at: clock.now, call: 'write', run: i, attempt, base_token: context.baseToken ?? null, document: [...doc],
    });
    await clock.sleep(v.call_ms);
    const k = world.writes;
    world.writes += 1;
    const fail = v.write_fails[String(k)];
    if (fail !== undefined) throw sdkError(fail.code, fail.status);
    if (v.max_items !== null && doc.length > v.max_items) throw sdkError('LimitExceeded', 409);
    world.items = [...doc];
    world.version += 1;
    return `v${world.version}`;
  };
  const tasks = v.runs.map(async (run, i) => {
    const controller = new AbortController();
    if (run.cancel_at_ms !== null) clock.until(run.cancel_at_ms).then(() => controller.abort(new Error('cancelled by the vector')));
    await clock.until(run.at_ms);
    if (run.write) {
      return lane.run(v.entity, async (attempt, context) => {
        const token = await write(i, run.write, attempt, context);
        context.setToken(token);
        return token;
      }, { read: async () => (await read(i)).token, signal: controller.signal });
    }
    const change = (doc) => {
      world.calls.push({ at: clock.now, change: i });
      if (run.update.raise) {
        // The error's name is the code the engine is told.
        const e = new Error('refused by the vector');
        e.name = run.update.raise;
        throw e;
      }
      return doc.includes(run.update.add) ? doc : [...doc, run.update.add];
    };
    return lane.update(v.entity, {
      read: () => read(i), change, write: (doc, attempt, context) => write(i, doc, attempt, context), signal: controller.signal,
    });
  });
  const settled = await Promise.allSettled(tasks);
  const events = lane.events();
  const outcomes = settled.map((s, i) => {
    const op = i + 1; // op ids follow the runs' start order
    if (s.status === 'rejected') {
      assert.ok(s.reason instanceof GaveUpError, String(s.reason?.stack ?? s.reason));
      return {
        status: 'gave_up', reason: s.reason.reason, attempts: s.reason.attempts, code: s.reason.errorCode,
      };
    }
    const committed = events.filter((e) => e.type === 'committed' && e.op === op);
    assert.equal(committed.length, 1, `run ${i} committed once`);
    return { status: 'committed', token: s.value, attempts: committed[0].attempts };
  });
  // Fold the change calls after each read into the vector's `apply` entries.
  const calls = [];
  let leader = null;
  for (const c of world.calls) {
    if (c.change !== undefined) {
      if (calls.length === 0 || calls[calls.length - 1].call !== 'apply') calls.push({ at: c.at, call: 'apply', run: leader, runs: [] });
      calls[calls.length - 1].runs.push(c.change);
    } else {
      if (c.call === 'read') leader = c.run;
      calls.push(c);
    }
  }
  return {
    calls, outcomes, document: world.items, end_ms: clock.now,
  };
}

test('the six group-commit vectors are here', () => {
  assert.equal(files.length, 6);
  for (const f of files) assert.equal(JSON.parse(fs.readFileSync(path.join(dir, f), 'utf8')).kind, 'batch', f);
});

for (const file of files) {
  const v = JSON.parse(fs.readFileSync(path.join(dir, file), 'utf8'));
  test(`batch vector ${file}`, async () => {
    assert.deepEqual(await replay(v), v.expect, v.description);
  });
}
