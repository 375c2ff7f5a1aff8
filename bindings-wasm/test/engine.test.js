'use strict';
// The sans-IO Engine: a host loop on a virtual clock, and misuse refused with typed errors.

const { test } = require('node:test');
const assert = require('node:assert/strict');
const { Engine, UsageError, PolicyError } = require('..');

test('a host loop on a virtual clock: conflict, back-off, commit', () => {
  const e = new Engine({ retry: { conflict: { base_ms: 100, cap_ms: 100, jitter: 'none' } } }, { seed: 3 });
  const op = e.submit('role/app', 0);
  assert.equal(op, 1);
  assert.deepEqual(e.pollCommand(), { type: 'read', op });
  assert.equal(e.pollCommand(), null);
  e.handle(5, { type: 'read_done', op, token: 'v1' });
  assert.deepEqual(e.pollCommand(), { type: 'write', op, attempt: 1, base_token: 'v1' });
  e.handle(10, { type: 'write_failed', op, failure: { code: 'ConcurrentModification', status: 409, retry_after_ms: '50' } });
  assert.equal(e.pollCommand(), null);
  assert.equal(e.pollTimeout(), 110);
  assert.equal(e.pollTimeoutFor(op), 110);
  e.handleTimeout(109);
  assert.equal(e.pollCommandFor(op), null);
  e.handleTimeout(110);
  assert.deepEqual(e.pollCommandFor(op), { type: 'read', op });
  e.handle(111, { type: 'read_done', op, token: 'v2' });
  assert.deepEqual(e.pollCommand(), { type: 'write', op, attempt: 2, base_token: 'v2' });
  e.handle(120, { type: 'write_done', op, token: 'v3' });
  assert.deepEqual(e.pollCommand(), { type: 'finish', op, outcome: { status: 'committed', token: 'v3', attempts: 2 } });
  const types = [];
  for (let ev = e.pollEvent(); ev !== null; ev = e.pollEvent()) types.push(ev.type);
  assert.deepEqual(types, ['submitted', 'conflict', 'retry_scheduled', 'committed']);
  const stats = e.stats();
  assert.equal(stats.global.conflicts, 1);
  assert.equal(stats.entities['role/app'].committed_token, 'v3');
  // The success refunded the retry's cost to both budgets.
  assert.deepEqual(e.exportState(), { version: 1, budget: 500, entities: { 'role/app': { committed_token: 'v3', budget: 100 } } });
  assert.equal(e.pollTimeout(), null);
});

test('misuse is refused with UsageError and changes nothing', () => {
  const e = new Engine('iam', { seed: 1 });
  const op = e.submit('role/app', 10);
  const refused = (fn, kind, field) => assert.throws(fn, (err) => {
    assert.ok(err instanceof UsageError, String(err));
    assert.equal(err.kind, kind);
    if (field !== undefined) assert.equal(err.field, field);
    return true;
  });
  refused(() => e.handle(11, { type: 'read_done', op, token: 'v1' }), 'command_not_drained');
  e.pollCommand();
  refused(() => e.handle(5, { type: 'read_done', op }), 'time_went_backwards');
  refused(() => e.handle(11, { type: 'write_done', op }), 'unexpected_input');
  refused(() => e.handle(11, { type: 'read_done', op: 99 }), 'unknown_op');
  refused(() => e.handle(11, { type: 'teleport', op }), 'invalid_argument', 'input');
  refused(() => e.handle(11, { type: 'read_done', op, token: 1n }), 'invalid_argument', 'input');
  refused(() => e.handle(11, null), 'invalid_argument', 'input');
  refused(() => e.handle('11', { type: 'read_done', op }), 'invalid_argument', 'now');
  refused(() => e.handle(-1, { type: 'read_done', op }), 'invalid_argument', 'now');
  refused(() => e.submit('role/x', 1.5), 'invalid_argument', 'now');
  refused(() => e.submit(7, 20), 'invalid_argument', 'entity');
  refused(() => e.submit('', 20), 'invalid_entity');
  refused(() => e.submit('role/x', 20, { deadlineMs: '5' }), 'invalid_argument', 'options.deadlineMs');
  refused(() => e.handleTimeout(Number.NaN), 'invalid_argument', 'now');
  refused(() => e.pollCommandFor(-1), 'invalid_argument', 'op');
  refused(() => e.importState({ version: 2 }), 'invalid_state', 'state');
  e.handle(11, { type: 'read_done', op, token: 'v1' });
  assert.equal(e.pollCommand().type, 'write');
  assert.throws(() => new Engine('nope'), PolicyError);
  assert.throws(() => new Engine('iam', { seed: 1.5 }), UsageError);
});

test('Engine: shared lanes through store commands, with applyStoreOp as the host', async () => {
  const { MemoryStore, applyStoreOp } = require('..');
  const refused = (fn, kind, field) => assert.throws(fn, (err) => {
    assert.ok(err instanceof UsageError, String(err));
    assert.equal(err.kind, kind);
    if (field !== undefined) assert.equal(err.field, field);
    return true;
  });
  const shared = { lanes: { mode: 'shared' } };
  refused(() => new Engine(shared, { owner: '' }), 'invalid_owner', 'options.owner');
  refused(() => new Engine(shared, { owner: 7 }), 'invalid_argument', 'options.owner');
  refused(() => new Engine(shared).submit('role/app', 0), 'invalid_owner');
  const e = new Engine(shared, { seed: 3, owner: 'host-a:1:x' });
  refused(() => e.submit('role/app', 0, { holder: 5 }), 'invalid_argument', 'options.holder');
  const store = new MemoryStore();
  const op = e.submit('role/app', 0, { holder: 'run 9' });
  let now = 0;
  let cmd = e.pollCommand();
  const kinds = [];
  while (cmd.type === 'store') {
    kinds.push(cmd.operation.op);
    const reply = await applyStoreOp(store, cmd.operation);
    now += 1;
    e.handle(now, { type: 'store_reply', op, reply });
    cmd = e.pollCommand();
  }
  assert.deepEqual(kinds, ['get', 'put_if_absent']);
  assert.equal(cmd.type, 'read');
  const held = await store.get('role/app');
  assert.equal(held.owner, 'host-a:1:x');
  assert.equal(held.holder, 'run 9');
  e.handle(now + 1, { type: 'read_done', op, token: 'v1' });
  cmd = e.pollCommand();
  assert.deepEqual(cmd, { type: 'write', op, attempt: 1, base_token: 'v1', fence: 1 });
  e.handle(now + 2, { type: 'write_done', op, token: 'v2' });
  cmd = e.pollCommand();
  assert.equal(cmd.type, 'store');
  assert.equal(cmd.operation.op, 'compare_and_swap');
  e.handle(now + 3, { type: 'store_reply', op, reply: await applyStoreOp(store, cmd.operation) });
  assert.deepEqual(e.pollCommand(), { type: 'finish', op, outcome: { status: 'committed', token: 'v2', attempts: 1 } });
  const released = await store.get('role/app');
  assert.equal(released.owner, '');
  assert.equal(released.committed_token, 'v2', 'the next writer on any machine starts from v2');
  refused(() => e.handle(now + 4, { type: 'store_reply', op, reply: { reply: 'done' } }), 'unknown_op');
});
