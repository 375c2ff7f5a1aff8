'use strict';
// `lane.update` (group commit): tasks batch their changes, a refused change fails alone
// with its own error, a write too large fails only the changes that break it, misuse is
// refused naming the option, the `iam` helpers; and end to end with the real
// @aws-sdk/client-iam against the IAM lab: 8 tasks x 5 appends of a statement to one
// role's inline policy land all 41 statements (one initial + 40) in at most 10 writes.

const { test, before, after } = require('node:test');
const assert = require('node:assert/strict');
const {
  IAMClient, CreateRoleCommand, GetRolePolicyCommand, PutRolePolicyCommand,
} = require('@aws-sdk/client-iam');
const {
  Lane, GaveUpError, UsageError, DocumentError, iam, policyToken,
} = require('..');
const { spawn } = require('node:child_process');
const path = require('node:path');
const { startLab } = require('./helpers/iamlab');
const { startRedis } = require('./helpers/servers');

const TASKS = 8;
const ROUNDS = 5;
const POLICY_NAME = 'grouped';
const sleep = (ms) => new Promise((resolve) => { setTimeout(resolve, ms); });

/** An in-memory document with a token; each write takes `writeMs`. */
function store({ writeMs = 20, maxItems = null } = {}) {
  const s = {
    items: [], version: 0, writes: 0, reads: 0,
  };
  s.read = async () => {
    s.reads += 1;
    return { document: [...s.items], token: `v${s.version}` };
  };
  s.write = async (doc, attempt, context) => {
    await sleep(writeMs);
    assert.equal(context.baseToken, `v${s.version}`, 'a batch writes on what it read');
    s.writes += 1;
    if (maxItems !== null && doc.length > maxItems) {
      // As the SDK throws IAM's error: the class is named LimitExceededException, Code is IAM's own.
      throw Object.assign(new Error('LimitExceeded: too large'), { name: 'LimitExceededException', Code: 'LimitExceeded', $fault: 'client', $metadata: { httpStatusCode: 409 } });
    }
    s.items = [...doc];
    s.version += 1;
    context.setToken(`v${s.version}`);
  };
  return s;
}

const add = (item) => (doc) => (doc.includes(item) ? doc : [...doc, item]);

test('tasks batch their updates: every change lands in far fewer writes', async () => {
  const s = store();
  const lane = new Lane('iam', { seed: 1 });
  const tokens = await Promise.all(Array.from({ length: TASKS }, async (_, t) => {
    const out = [];
    for (let n = 0; n < ROUNDS; n++) out.push(await lane.update('doc/1', { read: s.read, change: add(`T${t}N${n}`), write: s.write }));
    return out;
  }));
  assert.equal(s.items.length, TASKS * ROUNDS);
  assert.ok(s.writes <= TASKS * ROUNDS / 4, `${s.writes} writes`);
  for (const token of tokens.flat()) assert.match(token, /^v\d+$/);
  const g = lane.stats().global;
  assert.equal(g.committed, TASKS * ROUNDS);
  assert.equal(g.conflicts, 0);
});

test('a refused change fails alone, with its own error as the cause', async () => {
  const s = store({ writeMs: 30 });
  const lane = new Lane('iam', { seed: 2 });
  class Nope extends Error {}
  const results = await Promise.allSettled([0, 1, 2, 3].map(async (t) => {
    await sleep(5 * t);
    const change = t === 2 ? () => { throw new Nope('not this one'); } : add(String(t));
    return lane.update('doc/2', { read: s.read, change, write: s.write });
  }));
  const err = results[2].reason;
  assert.ok(err instanceof GaveUpError, String(err));
  assert.equal(err.reason, 'fatal');
  assert.equal(err.errorCode, 'Nope');
  assert.ok(err.cause instanceof Nope);
  assert.deepEqual([...s.items].sort(), ['0', '1', '3']);
  assert.equal(results[0].value, 'v1');
  assert.equal(results[3].value, `v${s.version}`);
});

test('a write too large fails only the changes that break it, with the write\'s error', async () => {
  const s = store({ writeMs: 20, maxItems: 4 });
  const lane = new Lane('iam', { seed: 3 });
  const results = await Promise.allSettled([0, 1, 2, 3, 4, 5].map(async (t) => {
    await sleep(3 * t);
    return lane.update('doc/3', { read: s.read, change: add(String(t)), write: s.write });
  }));
  const failed = results.filter((r) => r.status === 'rejected');
  assert.equal(failed.length, 2, JSON.stringify(results.map((r) => r.status)));
  for (const { reason } of failed) {
    assert.ok(reason instanceof GaveUpError);
    assert.equal(reason.reason, 'fatal');
    assert.equal(reason.errorCode, 'LimitExceeded');
    assert.equal(reason.cause?.name, 'LimitExceededException');
  }
  assert.equal(s.items.length, 4);
});

test('a write may resolve to its token', async () => {
  const lane = new Lane('iam', { seed: 4 });
  const token = await lane.update('doc/4', { read: async () => ({ document: [], token: null }), change: add('x'), write: async () => 't1' });
  assert.equal(token, 't1');
});

test('misuse is refused, naming the option', async () => {
  const lane = new Lane('iam', { seed: 5 });
  const ok = { read: async () => ({ document: [], token: null }), change: add('x'), write: async () => undefined };
  await assert.rejects(lane.update('e', { ...ok, change: 1 }), (e) => e instanceof UsageError && e.field === 'options.change');
  await assert.rejects(lane.update('e', { ...ok, read: undefined }), (e) => e instanceof UsageError && e.field === 'options.read');
  await assert.rejects(lane.update('e', { ...ok, expected: 'v1' }), (e) => e instanceof UsageError && e.field === 'options.expected');
  await assert.rejects(lane.update('e'), (e) => e instanceof UsageError && e.field === 'options');
  await assert.rejects(lane.update('e', { ...ok, read: async () => 'v1' }), (e) => e instanceof UsageError && /document, token/.test(e.message));
  await assert.rejects(lane.update('', ok), (e) => e instanceof UsageError && e.kind === 'invalid_entity');
  assert.equal(await lane.update('e', { ...ok, write: async () => 't' }), 't');
  assert.equal(lane.stats().active_ops, 0);
});

test('max_changes bounds a batch', async () => {
  const s = store({ writeMs: 20 });
  const lane = new Lane({ preset: 'iam', batch: { max_changes: 2 } }, { seed: 6 });
  await Promise.all([0, 1, 2, 3, 4, 5].map((t) => lane.update('doc/6', { read: s.read, change: add(String(t)), write: s.write })));
  assert.equal(s.items.length, 6);
  assert.ok(s.writes >= 3, `${s.writes} writes: a batch holds at most two changes`);
});

const stmt = (sid) => ({
  Sid: sid, Effect: 'Allow', Action: 's3:GetObject', Resource: `arn:aws:s3:::b/${sid}`,
});

test('the iam helpers wrap the core and name the field', () => {
  let doc = iam.putStatement(null, stmt('A'));
  assert.deepEqual(doc, { Version: '2012-10-17', Statement: [stmt('A')] });
  assert.deepEqual(iam.putStatement(doc, stmt('A')), doc, 'idempotent');
  doc = iam.putStatement(doc, stmt('B'));
  doc = iam.putStatement(doc, { ...stmt('A'), Action: 's3:*' });
  assert.deepEqual(doc.Statement, [{ ...stmt('A'), Action: 's3:*' }, stmt('B')]);
  assert.deepEqual(iam.removeStatement(doc, 'A').Statement, [stmt('B')]);
  let trust = iam.addTrustPrincipal(null, 'Trust', 'Service', 'lambda.amazonaws.com');
  trust = iam.addTrustPrincipal(trust, 'Trust', 'Service', 'ec2.amazonaws.com');
  assert.deepEqual(iam.addTrustPrincipal(trust, 'Trust', 'Service', 'ec2.amazonaws.com'), trust);
  assert.deepEqual(trust.Statement[0].Principal, { Service: ['lambda.amazonaws.com', 'ec2.amazonaws.com'] });
  const tags = iam.setTags(null, { team: 'a', env: 'prod' });
  assert.deepEqual(iam.setTags(tags, [['team', 'b']]), [{ Key: 'team', Value: 'b' }, { Key: 'env', Value: 'prod' }]);
  const field = (fn) => { try { fn(); } catch (e) { assert.ok(e instanceof DocumentError, String(e)); return e.path; } return null; };
  assert.equal(field(() => iam.putStatement(null, { Effect: 'Allow' })), 'statement.Sid');
  assert.equal(field(() => iam.putStatement({ Statement: [1] }, stmt('A'))), 'Statement[0]');
  assert.equal(field(() => iam.addTrustPrincipal(null, 'T', 'Root', 'x')), 'kind');
  assert.equal(field(() => iam.setTags([{ Value: 'x' }], { a: 'b' })), '[0].Key');
  assert.equal(field(() => iam.removeStatement({}, 7)), 'sid');
});

// -- end to end against the IAM lab ---------------------------------------------------------

let lab;
before(async () => { lab = await startLab({ serviceMs: 20 }); });
after(async () => { if (lab) await lab.stop(); });

test('8 tasks x 5 update appends through one Lane against the IAM lab: 41/41, no conflict, at most 10 writes', async () => {
  const client = new IAMClient({
    region: 'us-east-1', endpoint: lab.endpoint, credentials: { accessKeyId: 'testing', secretAccessKey: 'testing' },
  });
  const role = 'grouped-tasks';
  await client.send(new CreateRoleCommand({ RoleName: role, AssumeRolePolicyDocument: JSON.stringify({ Version: '2012-10-17', Statement: [] }) }));
  await client.send(new PutRolePolicyCommand({ RoleName: role, PolicyName: POLICY_NAME, PolicyDocument: JSON.stringify(iam.putStatement(null, stmt('Initial'))) }));
  await lab.reset();
  const read = async () => {
    const out = await client.send(new GetRolePolicyCommand({ RoleName: role, PolicyName: POLICY_NAME }));
    const text = out.PolicyDocument.trimStart().startsWith('{') ? out.PolicyDocument : decodeURIComponent(out.PolicyDocument);
    return { document: JSON.parse(text), token: policyToken(text) };
  };
  const write = async (doc) => {
    const text = JSON.stringify(doc);
    await client.send(new PutRolePolicyCommand({ RoleName: role, PolicyName: POLICY_NAME, PolicyDocument: text }));
    return policyToken(text);
  };
  const lane = new Lane('iam', { seed: 12 });
  const entity = `role/${role}`;
  await Promise.all(Array.from({ length: TASKS }, async (_, t) => {
    for (let n = 0; n < ROUNDS; n++) {
      await lane.update(entity, { read, change: iam.statementPutter(stmt(`T${t}N${n}`)), write });
    }
  }));
  const stats = await lab.stats();
  const sids = (await read()).document.Statement.map((s) => s.Sid).sort();
  const want = ['Initial', ...Array.from({ length: TASKS * ROUNDS }, (_, i) => `T${Math.floor(i / ROUNDS)}N${i % ROUNDS}`)].sort();
  console.log(`node tasks: ${sids.length} statements, ${stats.conflicts} conflicts, ${stats.entities[entity].writes} IAM writes for ${TASKS * ROUNDS} updates (+1 initial put before the counters were reset)`);
  assert.deepEqual(sids, want);
  assert.equal(stats.conflicts, 0);
  assert.ok(stats.entities[entity].writes <= 10, JSON.stringify(stats));
  assert.equal(stats.writes, stats.entities[entity].writes);
  const g = lane.stats().global;
  assert.equal(g.committed, TASKS * ROUNDS);
  assert.equal(g.gave_up, 0);
  assert.equal(g.conflicts, 0);
});

test('against the IAM lab, a change IAM refuses fails only its writer, with IAM\'s error', async () => {
  const client = new IAMClient({
    region: 'us-east-1', endpoint: lab.endpoint, credentials: { accessKeyId: 'testing', secretAccessKey: 'testing' },
  });
  const role = 'grouped-malformed';
  await client.send(new CreateRoleCommand({ RoleName: role, AssumeRolePolicyDocument: JSON.stringify({ Version: '2012-10-17', Statement: [] }) }));
  await client.send(new PutRolePolicyCommand({ RoleName: role, PolicyName: POLICY_NAME, PolicyDocument: JSON.stringify(iam.putStatement(null, stmt('Initial'))) }));
  await lab.reset();
  const read = async () => {
    const out = await client.send(new GetRolePolicyCommand({ RoleName: role, PolicyName: POLICY_NAME }));
    const text = decodeURIComponent(out.PolicyDocument);
    return { document: JSON.parse(text), token: policyToken(text) };
  };
  const write = async (doc) => {
    const text = JSON.stringify(doc);
    await client.send(new PutRolePolicyCommand({ RoleName: role, PolicyName: POLICY_NAME, PolicyDocument: text }));
    return policyToken(text);
  };
  const lane = new Lane('iam', { seed: 13 });
  const results = await Promise.allSettled(Array.from({ length: TASKS }, (_, t) => {
    const s = t === 5 ? { ...stmt(`T${t}`), Effect: 'Perhaps' } : stmt(`T${t}`); // IAM: MalformedPolicyDocument
    return lane.update(`role/${role}`, { read, change: iam.statementPutter(s), write });
  }));
  const err = results[5].reason;
  assert.ok(err instanceof GaveUpError, String(err));
  assert.equal(err.reason, 'fatal');
  assert.equal(err.errorCode, 'MalformedPolicyDocument');
  assert.equal(err.cause?.name, 'MalformedPolicyDocumentException');
  results.forEach((r, t) => { if (t !== 5) assert.equal(r.status, 'fulfilled', `task ${t}`); });
  const sids = (await read()).document.Statement.map((s) => s.Sid).sort();
  assert.deepEqual(sids, ['Initial', ...[0, 1, 2, 3, 4, 6, 7].map((t) => `T${t}`)].sort());
  const stats = await lab.stats();
  console.log(`node malformed change: ${stats.entities[`role/${role}`].writes} IAM writes (those IAM refused while the batch was bisected among them), 7/7 other statements present`);
  assert.equal(stats.conflicts, 0);
});

test('4 processes x 2 tasks x 5 updates on a shared lease (Redis): each batches its own queue, 41/41, no conflict', async () => {
  const redis = await startRedis();
  try {
    const client = new IAMClient({
      region: 'us-east-1', endpoint: lab.endpoint, credentials: { accessKeyId: 'testing', secretAccessKey: 'testing' },
    });
    const role = 'grouped-processes';
    await client.send(new CreateRoleCommand({ RoleName: role, AssumeRolePolicyDocument: JSON.stringify({ Version: '2012-10-17', Statement: [] }) }));
    await client.send(new PutRolePolicyCommand({ RoleName: role, PolicyName: POLICY_NAME, PolicyDocument: JSON.stringify(iam.putStatement(null, stmt('Initial'))) }));
    await lab.reset();
    const script = path.join(__dirname, 'helpers', 'updater.js');
    const summaries = await Promise.all([0, 1, 2, 3].map((writer) => new Promise((resolve, reject) => {
      const config = {
        endpoint: lab.endpoint, role, writer, tasks: 2, rounds: ROUNDS, policy: 'iam', store: { kind: 'redis', options: { url: redis.url, prefix: 'grouped:' } },
      };
      const child = spawn(process.execPath, [script, JSON.stringify(config)], { stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, NODE_NO_WARNINGS: '1' } });
      let out = '';
      let err = '';
      child.stdout.on('data', (d) => { out += d; });
      child.stderr.on('data', (d) => { err += d; });
      child.once('exit', (code) => (code === 0 ? resolve(JSON.parse(out.trim().split('\n').pop())) : reject(new Error(`updater ${writer}: ${err}`))));
    })));
    for (const s of summaries) {
      assert.deepEqual(s.errors, []);
      assert.equal(s.committed, 2 * ROUNDS);
    }
    const out = await client.send(new GetRolePolicyCommand({ RoleName: role, PolicyName: POLICY_NAME }));
    const sids = JSON.parse(decodeURIComponent(out.PolicyDocument)).Statement.map((s) => s.Sid).sort();
    const want = ['Initial'];
    for (let w = 0; w < 4; w++) for (let t = 0; t < 2; t++) for (let r = 0; r < ROUNDS; r++) want.push(`W${w}T${t}R${r}`);
    assert.deepEqual(sids, want.sort());
    const stats = await lab.stats();
    const { writes } = stats.entities[`role/${role}`];
    console.log(`node 4 processes x 2 tasks x 5 updates on a shared lease: ${sids.length} statements, ${stats.conflicts} conflicts, ${writes} IAM writes for 40 updates`);
    assert.equal(stats.conflicts, 0);
    assert.ok(writes < 40, `${writes} writes: each process batched its own queue`);
  } finally {
    await redis.stop();
  }
});

test('with telemetry on, an update\'s write gets its document, attempt and context', async () => {
  const s = store({ writeMs: 5 });
  const lane = new Lane('iam', { seed: 7, telemetry: true });
  const tokens = await Promise.all([0, 1, 2].map((t) => lane.update('doc/7', { read: s.read, change: add(String(t)), write: s.write })));
  assert.deepEqual([...s.items].sort(), ['0', '1', '2']);
  for (const token of tokens) assert.match(token, /^v\d$/);
});
