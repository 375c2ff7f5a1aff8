'use strict';
// Shared lanes through `Lane`: several lanes (standing in for processes on different
// machines) share one lease store, so writes to one entity go one at a time across all of
// them, each under a fence; a store that fails makes writers give up without writing.

const { test } = require('node:test');
const assert = require('node:assert/strict');
const {
  Lane, MemoryStore, GaveUpError, StoreError, UsageError,
} = require('..');

const FAST = {
  lease: { lease_ms: 2000, renew_ms: 500, lock_delay_ms: 100, poll_ms: 20, unavailable_ms: 400, max_write_ms: 200 },
};

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

test('lanes sharing a store write one at a time, each under a higher fence', async () => {
  const store = new MemoryStore();
  const lanes = [0, 1, 2, 3].map((i) => new Lane({ ...FAST }, { store, holder: `lane ${i}` }));
  assert.equal(new Set(lanes.map((l) => l.owner)).size, 4, 'every lane has its own owner');
  let inside = 0;
  let most = 0;
  const fences = [];
  let revision = 0;
  await Promise.all(lanes.flatMap((lane, i) => [0, 1, 2].map((j) => lane.run('role/app', async (attempt, ctx) => {
    inside += 1;
    most = Math.max(most, inside);
    // While the write runs, the record names this lane as the owner, and as the holder in
    // words unless the lease came by a grant (the releaser wrote it: no description until
    // the grantee's first renewal).
    const held = await store.get('role/app');
    assert.equal(held.owner, lane.owner);
    if (held.holder !== null) assert.equal(held.holder, j === 1 ? 'run 1' : `lane ${i}`);
    assert.equal(held.epoch, ctx.fence);
    await sleep(3);
    fences.push(ctx.fence);
    revision += 1;
    inside -= 1;
  }, { read: async () => `v${revision}`, holder: j === 1 ? 'run 1' : undefined }))));
  assert.equal(most, 1, 'never two writers at once');
  assert.equal(fences.length, 12);
  assert.deepEqual([...fences].sort((a, b) => a - b), fences, 'fences only grow');
  assert.equal(new Set(fences).size, 12);
  const released = await store.get('role/app');
  assert.equal(released.owner, '', 'the last holder released the lease');
  assert.equal(released.holder, null);
  const stats = lanes.map((l) => l.stats().global);
  assert.equal(stats.reduce((n, s) => n + s.committed, 0), 12);
  assert.ok(stats.every((s) => s.store_ops >= 3), JSON.stringify(stats));
  const events = lanes[0].events();
  assert.ok(events.some((e) => e.type === 'lease_acquired' && e.entity === 'role/app'));
});

test('a store given to a lane turns on shared lanes; shared lanes need a store', async () => {
  const lane = new Lane('iam', { store: new MemoryStore(), owner: 'runner-7' });
  assert.equal(lane.policy.toJSON().lanes.mode, 'shared');
  assert.equal(lane.owner, 'runner-7');
  // Whatever the policy said: aws-standard has no lanes, an explicit local mode is local.
  for (const policy of ['aws-standard', { lanes: { mode: 'local' } }, { lanes: { mode: 'none' } }]) {
    assert.equal(new Lane(policy, { store: new MemoryStore() }).policy.toJSON().lanes.mode, 'shared');
  }
  // The default owner is the core's HOST:PID:16-hex-digits, different per lane.
  const a = new Lane('iam', { store: new MemoryStore() });
  const b = new Lane('iam', { store: new MemoryStore() });
  assert.match(a.owner, new RegExp(`^[!-9;-~]+:${process.pid}:[0-9a-f]{16}$`));
  assert.notEqual(a.owner, b.owner);
  assert.throws(() => new Lane({ lanes: { mode: 'shared' } }), (e) => e instanceof UsageError && e.field === 'options.store');
  assert.throws(() => new Lane('iam', { store: { get() {} } }), (e) => e instanceof UsageError && e.field === 'options.store');
  assert.throws(() => new Lane('iam', { store: new MemoryStore(), owner: '' }), (e) => e instanceof UsageError && e.kind === 'invalid_owner');
  assert.throws(() => new Lane('iam', { store: new MemoryStore(), owner: 'x'.repeat(257) }), (e) => e.kind === 'invalid_owner');
  assert.throws(() => new Lane('iam', { store: new MemoryStore(), holder: 5 }), (e) => e.field === 'options.holder');
  const plain = new Lane('iam');
  assert.equal(plain.owner, null);
  assert.equal(plain.store, null);
  assert.equal(plain.policy.toJSON().lanes.mode, 'local');
});

test('a token reported with setToken travels in the lease record to a writer on another lane', async () => {
  const store = new MemoryStore();
  const a = new Lane({ ...FAST }, { store, owner: 'machine-a' });
  const b = new Lane({ ...FAST }, { store, owner: 'machine-b' });
  let reads = 0;
  const read = async () => {
    reads += 1;
    return 'v8';
  };
  await a.run('role/app', async (attempt, ctx) => {
    assert.equal(ctx.baseToken, 'v8');
    ctx.setToken('t9');
  }, { read });
  assert.equal(reads, 1);
  // A version 2 record: the hold just measured is published as hold_ms.
  const { hold_ms: holdMs, ...released } = await store.get('role/app');
  assert.ok(holdMs === undefined || (Number.isSafeInteger(holdMs) && holdMs >= 1), String(holdMs));
  assert.deepEqual(
    { ...released, rvn: 0 },
    { version: 2, owner: '', epoch: 1, rvn: 0, lease_ms: 2000, committed_token: 't9', holder: null },
  );
  const seen = await b.run('role/app', async (attempt, ctx) => ({ attempt, base: ctx.baseToken, fence: ctx.fence }), { read });
  assert.deepEqual(seen, { attempt: 1, base: 't9', fence: 2 });
  assert.equal(reads, 1, 'the second lane wrote on the recorded token without reading');
  // A holder that wrote without reporting a token stores none: the next one reads first.
  assert.equal((await store.get('role/app')).committed_token, null);
  await a.run('role/app', async (attempt, ctx) => assert.equal(ctx.baseToken, 'v8'), { read });
  assert.equal(reads, 2);
});

test('an unreachable store: the writer gives up with lock_unavailable and never writes', async () => {
  const down = new StoreError('unavailable', 'connection refused');
  const store = {
    get: async () => { throw down; },
    putIfAbsent: async () => { throw down; },
    compareAndSwap: async () => { throw down; },
  };
  const lane = new Lane({ ...FAST }, { store });
  let writes = 0;
  await assert.rejects(lane.run('role/app', async () => { writes += 1; }), (e) => {
    assert.ok(e instanceof GaveUpError, String(e));
    assert.equal(e.reason, 'lock_unavailable');
    assert.equal(e.cause, down, 'the store error is the cause');
    return true;
  });
  assert.equal(writes, 0);
});

test('a lease held elsewhere and renewed is waited for; a stale one is taken over with a new epoch', async () => {
  const store = new MemoryStore();
  // Another machine holds the lease and keeps renewing it for a while.
  const other = { owner: 'other-host:1:a', epoch: 5, rvn: 1, lease_ms: 300, committed_token: 'c1:sha256:aa', holder: 'other pipeline' };
  await store.putIfAbsent('role/app', other);
  let renewals = 0;
  const renewer = setInterval(async () => {
    const cur = await store.get('role/app');
    if (cur.owner !== other.owner || renewals >= 5) return;
    renewals += 1;
    await store.compareAndSwap('role/app', cur.rvn, { ...cur, rvn: cur.rvn + 1 });
  }, 100);
  const policy = { lease: { lease_ms: 1200, renew_ms: 400, lock_delay_ms: 100, poll_ms: 20, unavailable_ms: 1000, max_write_ms: 200 } };
  const lane = new Lane(policy, { store });
  const started = Date.now();
  let fence;
  let base;
  try {
    await lane.run('role/app', async (attempt, ctx) => {
      fence = ctx.fence;
      base = ctx.baseToken;
    });
  } finally {
    clearInterval(renewer);
  }
  const waited = Date.now() - started;
  assert.equal(renewals, 5, 'the other holder renewed five times');
  // Renewed for ~500 ms, then stale only after a whole lease (300 ms) unchanged.
  assert.ok(waited >= 700, `waited only ${waited} ms`);
  assert.equal(fence, 6, 'takeover bumps the epoch');
  // The taken-over holder may have written after storing its token: it is not trusted.
  assert.equal(base, null, 'a taken-over record hands on no token');
  const events = lane.events();
  assert.ok(events.some((e) => e.type === 'lease_acquired' && e.takeover === true && e.epoch === 6), JSON.stringify(events));
});

test('an abort while waiting for a held lease gives up at once and leaves the record alone', async () => {
  const store = new MemoryStore();
  const other = { owner: 'other-host:1:a', epoch: 2, rvn: 9, lease_ms: 60000, committed_token: null, holder: null };
  await store.putIfAbsent('role/app', other);
  const lane = new Lane({ ...FAST }, { store });
  const controller = new AbortController();
  setTimeout(() => controller.abort(new Error('deploy cancelled')), 100);
  await assert.rejects(lane.run('role/app', async () => assert.fail('no write without the lease'), { signal: controller.signal }), (e) => {
    assert.ok(e instanceof GaveUpError);
    assert.equal(e.reason, 'cancelled');
    return true;
  });
  assert.deepEqual(await store.get('role/app'), other);
});

test('dropped store replies are resolved by reading the record back', async () => {
  const inner = new MemoryStore();
  const dropped = [];
  // Carries every operation out, but loses the reply of every conditional write once.
  const lossy = {
    get: (key) => inner.get(key),
    putIfAbsent: async (key, record) => {
      await inner.putIfAbsent(key, record);
      dropped.push('put_if_absent');
      throw new StoreError('lost', 'reply dropped');
    },
    compareAndSwap: async (key, rvn, record) => {
      await inner.compareAndSwap(key, rvn, record);
      dropped.push('compare_and_swap');
      throw new StoreError('lost', 'reply dropped');
    },
  };
  const lane = new Lane({ ...FAST }, { store: lossy, holder: 'lossy' });
  const rival = new Lane({ ...FAST }, { store: inner, holder: 'rival' });
  let inside = 0;
  let most = 0;
  const write = async (attempt, ctx) => {
    inside += 1;
    most = Math.max(most, inside);
    assert.equal((await inner.get('role/app')).epoch, ctx.fence);
    await sleep(5);
    inside -= 1;
    return ctx.fence;
  };
  const fences = await Promise.all([
    lane.run('role/app', write), rival.run('role/app', write), lane.run('role/app', write), rival.run('role/app', write),
  ]);
  assert.equal(most, 1);
  assert.equal(new Set(fences).size, 4);
  assert.ok(dropped.includes('put_if_absent') || dropped.includes('compare_and_swap'), JSON.stringify(dropped));
  const record = await inner.get('role/app');
  assert.equal(record.owner, '', 'released, though the release reply was lost');
  assert.equal(record.epoch, Math.max(...fences));
});

test('a store that never answers: each operation times out as lost and the writer gives up without writing', async () => {
  const hang = () => new Promise(() => {});
  const store = { get: hang, putIfAbsent: hang, compareAndSwap: hang };
  const lane = new Lane({ ...FAST, lease: { ...FAST.lease, store_timeout_ms: 50 } }, { store });
  assert.equal(lane.policy.toJSON().lease.store_timeout_ms, 50);
  let writes = 0;
  const started = Date.now();
  await assert.rejects(lane.run('role/app', async () => { writes += 1; }), (e) => {
    assert.ok(e instanceof GaveUpError, String(e));
    assert.equal(e.reason, 'lock_unavailable');
    assert.ok(e.cause instanceof StoreError && e.cause.kind === 'lost', String(e.cause));
    return true;
  });
  assert.equal(writes, 0);
  assert.ok(Date.now() - started < 5000, 'bounded by unavailable_ms and the store timeout');
  // The bound is the policy's, one field for every binding; the old per-lane option is refused.
  assert.throws(() => new Lane('iam', { store: new MemoryStore(), storeTimeoutMs: 50 }), (e) => e instanceof UsageError && e.field === 'options.storeTimeoutMs');
  assert.throws(() => new Lane({ ...FAST, lease: { ...FAST.lease, store_timeout_ms: 1500 } }, { store }), (e) => e.path === 'lease.store_timeout_ms');
});

test('three lanes queued behind a holder commit in the order they registered, a fence apart', async () => {
  // The holder's write waits for the waiters to register: max_write_ms bounds it.
  const QUEUE = { lease: { lease_ms: 6000, renew_ms: 1000, lock_delay_ms: 200, poll_ms: 20, unavailable_ms: 3000, max_write_ms: 4000 } };
  const store = new MemoryStore();
  const key = 'role/queue';
  const holder = new Lane({ ...QUEUE }, { store, owner: 'holder-0' });
  const waiters = [1, 2, 3].map((i) => new Lane({ ...QUEUE }, { store, owner: `waiter-${i}` }));
  const owners = waiters.map((l) => l.owner);
  const queued = async () => ((await store.get(key))?.queue ?? []).map((t) => t.owner);
  const waitUntil = async (check, what) => {
    const deadline = Date.now() + 10_000;
    while (!(await check())) {
      assert.ok(Date.now() < deadline, `still waiting for ${what}`);
      await sleep(5);
    }
  };
  const commits = [];
  let allQueued;
  const registered = new Promise((resolve) => { allQueued = resolve; });
  const write = (lane) => async (attempt, ctx) => {
    if (lane === holder) await registered;
    commits.push([lane.owner, ctx.fence]);
  };
  const runs = [holder.run(key, write(holder))];
  await waitUntil(async () => (await store.get(key))?.owner === holder.owner, "the holder's lease");
  const tickets = [];
  for (let i = 0; i < waiters.length; i += 1) {
    // Each waiter starts once the one before it holds a ticket.
    runs.push(waiters[i].run(key, write(waiters[i])));
    await waitUntil(async () => JSON.stringify(await queued()) === JSON.stringify(owners.slice(0, i + 1)), `waiter ${i}'s ticket`);
    tickets.push((await store.get(key)).queue[i].ticket);
  }
  const record = await store.get(key);
  assert.equal(record.version, 2);
  assert.equal(record.owner, holder.owner);
  allQueued();
  await Promise.all(runs);
  assert.deepEqual(tickets, [...tickets].sort((a, b) => a - b));
  assert.equal(new Set(tickets).size, 3);
  assert.deepEqual(commits.map(([owner]) => owner), [holder.owner, ...owners]);
  const first = commits[0][1];
  assert.deepEqual(commits.map(([, fence]) => fence), [first, first + 1, first + 2, first + 3]);
  const after = await store.get(key);
  assert.equal(after.owner, '');
  assert.deepEqual(after.queue ?? [], []);
  const takeovers = waiters.flatMap((l) => l.events()).filter((e) => e.type === 'lease_acquired' && e.takeover);
  assert.deepEqual(takeovers, []);
});
