'use strict';
// The lane plugin of the AWS SDK v3 (`client.middlewareStack.use(lane.plugin())`) with the
// real @aws-sdk/client-iam against the IAM lab: plain SDK calls serialised per entity, with
// no call-site changes.

const { test, before, after } = require('node:test');
const assert = require('node:assert/strict');
const { spawn } = require('node:child_process');
const path = require('node:path');
const {
  IAMClient, CreateRoleCommand, CreateUserCommand, CreateGroupCommand, PutRolePolicyCommand,
  ListRolePoliciesCommand, GetRoleCommand, ListRolesCommand, TagRoleCommand, AddUserToGroupCommand,
  PutUserPolicyCommand, ListGroupsForUserCommand, RemoveUserFromGroupCommand, CreateAccessKeyCommand,
} = require('@aws-sdk/client-iam');
const { S3Client, PutObjectCommand } = require('@aws-sdk/client-s3');
const {
  Lane, LanePlugin, EntityError, UsageError,
} = require('..');
const { startLab } = require('./helpers/iamlab');
const { startRedis, startMoto, AWS_TEST_CONFIG } = require('./helpers/servers');

const TASKS = 8;
const FAST = { preset: 'iam', retry: { conflict: { base_ms: 5, cap_ms: 40 } } };
const TRUST = JSON.stringify({ Version: '2012-10-17', Statement: [] });

let lab;
before(async () => { lab = await startLab({ serviceMs: 20 }); });
after(async () => { if (lab) await lab.stop(); });

function client(options = {}) {
  return new IAMClient({
    region: 'us-east-1', endpoint: lab.endpoint, credentials: { accessKeyId: 'testing', secretAccessKey: 'testing' }, ...options,
  });
}

function doc(sid) {
  return JSON.stringify({ Version: '2012-10-17', Statement: [{ Sid: sid, Effect: 'Allow', Action: 's3:GetObject', Resource: '*' }] });
}

async function settle(n, body) {
  const results = await Promise.allSettled(Array.from({ length: n }, (_, i) => body(i)));
  return results.filter((r) => r.status === 'rejected').map((r) => r.reason);
}

test('8 tasks of PutRolePolicyCommand on one role through lane.plugin(): 0 conflicts, 0 failures', async () => {
  const admin = client();
  await admin.send(new CreateRoleCommand({ RoleName: 'mw-eight', AssumeRolePolicyDocument: TRUST }));
  const put = (c) => settle(TASKS, (i) => c.send(new PutRolePolicyCommand({ RoleName: 'mw-eight', PolicyName: `P${i}`, PolicyDocument: doc(`S${i}`) })));
  // Retries only (lane.retryStrategy()): the eight writes collide at the lab.
  const retrying = client({ retryStrategy: new Lane(FAST).retryStrategy() });
  await lab.reset();
  const retryFailures = (await put(retrying)).length;
  const retryOnly = await lab.stats();
  assert.ok(retryOnly.conflicts > 0, JSON.stringify(retryOnly));
  // With the plugin: one at a time.
  const lane = new Lane(FAST);
  const laned = client();
  const plugin = lane.plugin();
  laned.middlewareStack.use(plugin);
  await laned.send(new GetRoleCommand({ RoleName: 'mw-eight' }));
  await lab.reset();
  assert.deepEqual(await put(laned), []);
  const stats = await lab.stats();
  console.log(`node 8 tasks x PutRolePolicyCommand on one role: retry strategy only ${retryOnly.conflicts} conflicts, ${retryOnly.calls} calls, ${retryFailures} failures; with lane.plugin() ${stats.conflicts} conflicts, ${stats.calls} calls`);
  assert.equal(stats.conflicts, 0);
  assert.equal(stats.writes, TASKS);
  assert.equal(stats.calls, TASKS);
  assert.equal(plugin.serialised, TASKS);
  assert.deepEqual(plugin.unserialised, {});
  const names = (await admin.send(new ListRolePoliciesCommand({ RoleName: 'mw-eight' }))).PolicyNames.sort();
  assert.deepEqual(names, Array.from({ length: TASKS }, (_, i) => `P${i}`));
  const entities = new Set(lane.events().filter((e) => e.type === 'submitted').map((e) => e.entity));
  assert.deepEqual([...entities], ['role/mw-eight']);
});

test('a conflict is retried inside the lane; a fatal error reaches the caller as the SDK\'s own', async () => {
  const admin = client();
  await admin.send(new CreateRoleCommand({ RoleName: 'mw-retry', AssumeRolePolicyDocument: TRUST }));
  const lane = new Lane(FAST);
  const c = client();
  c.middlewareStack.use(lane.plugin());
  await lab.reset();
  await lab.config({ inject_conflicts: 2 });
  await c.send(new TagRoleCommand({ RoleName: 'mw-retry', Tags: [{ Key: 'k', Value: 'v' }] }));
  const stats = await lab.stats();
  assert.equal(stats.conflicts, 2);
  assert.equal(stats.writes, 1);
  const kinds = lane.events().map((e) => e.type);
  assert.deepEqual(kinds, ['submitted', 'conflict', 'retry_scheduled', 'conflict', 'retry_scheduled', 'committed']);
  await assert.rejects(
    c.send(new TagRoleCommand({ RoleName: 'nobody', Tags: [{ Key: 'k', Value: 'v' }] })),
    (e) => e.name === 'NoSuchEntityException' && e.$metadata?.httpStatusCode === 404,
  );
});

test('AddUserToGroupCommand against concurrent PutUserPolicyCommand on the same user: serialised', async () => {
  const admin = client();
  await admin.send(new CreateUserCommand({ UserName: 'mw-user' }));
  for (let g = 0; g < 4; g++) await admin.send(new CreateGroupCommand({ GroupName: `mw-group${g}` }));
  const race = (c) => settle(TASKS, (i) => (i % 2 === 0
    ? c.send(new AddUserToGroupCommand({ UserName: 'mw-user', GroupName: `mw-group${i / 2}` }))
    : c.send(new PutUserPolicyCommand({ UserName: 'mw-user', PolicyName: `P${i}`, PolicyDocument: doc(`S${i}`) }))));
  await lab.reset();
  await race(client());
  const unlaned = (await lab.stats()).conflicts;
  assert.ok(unlaned > 0, 'without lanes the calls collide on the user');
  for (const g of (await admin.send(new ListGroupsForUserCommand({ UserName: 'mw-user' }))).Groups) {
    await admin.send(new RemoveUserFromGroupCommand({ UserName: 'mw-user', GroupName: g.GroupName }));
  }
  const lane = new Lane(FAST);
  const c = client();
  const plugin = lane.plugin();
  c.middlewareStack.use(plugin);
  await lab.reset();
  assert.deepEqual(await race(c), []);
  assert.equal((await lab.stats()).conflicts, 0);
  assert.equal(plugin.serialised, TASKS);
  const submitted = lane.events().filter((e) => e.type === 'submitted').map((e) => e.entity);
  assert.equal(submitted.filter((k) => k === 'user/mw-user').length, TASKS);
  assert.deepEqual(submitted.filter((k) => k.startsWith('group/')).sort(), ['group/mw-group0', 'group/mw-group1', 'group/mw-group2', 'group/mw-group3']);
  assert.equal((await admin.send(new ListGroupsForUserCommand({ UserName: 'mw-user' }))).Groups.length, 4);
});

test('reads, other services and unknown operations take no lane; unkeyable writes pass and are counted', async () => {
  const admin = client();
  await admin.send(new CreateRoleCommand({ RoleName: 'mw-read', AssumeRolePolicyDocument: TRUST }));
  const lane = new Lane();
  const c = client();
  const plugin = lane.plugin();
  c.middlewareStack.use(plugin);
  await c.send(new GetRoleCommand({ RoleName: 'mw-read' }));
  await c.send(new ListRolesCommand({}));
  assert.deepEqual(lane.events(), []);
  assert.equal(plugin.serialised, 0);
  assert.deepEqual(plugin.unserialised, {});
  // CreateAccessKey without UserName acts on the calling user, whom the client does not
  // know: it goes through (the lab's moto answers it) and is counted.
  await c.send(new CreateAccessKeyCommand({})).catch((e) => assert.equal(e.name, 'NoSuchEntityException'));
  assert.deepEqual(plugin.unserialised, { CreateAccessKey: 1 });
  assert.match(plugin.lastUnserialised, /calling user/);
  assert.deepEqual(lane.events(), []);
  // An operation the table does not know is counted and handed on.
  let reached = false;
  const mw = plugin.middleware()(async () => { reached = true; return { output: {} }; }, { clientName: 'IAMClient', commandName: 'FrobnicateRoleCommand' });
  await mw({ input: { RoleName: 'mw-read' } });
  assert.ok(reached);
  assert.deepEqual(plugin.unserialised, { CreateAccessKey: 1, FrobnicateRole: 1 });
  // Another service's client: untouched, no lane events.
  const s3 = new S3Client({ ...AWS_TEST_CONFIG, endpoint: 'http://127.0.0.1:9', forcePathStyle: true, maxAttempts: 1 });
  s3.middlewareStack.use(plugin);
  s3.middlewareStack.add((next) => async () => ({ output: { $metadata: {} }, response: {} }), { step: 'finalizeRequest', name: 'stub' });
  await s3.send(new PutObjectCommand({ Bucket: 'b', Key: 'k', Body: 'x' }));
  assert.deepEqual(lane.events(), []);
  assert.deepEqual(plugin.unserialised, { CreateAccessKey: 1, FrobnicateRole: 1 });
});

test('an aborted call waiting for its lane leaves the queue; the lane stays usable', async () => {
  const admin = client();
  await admin.send(new CreateRoleCommand({ RoleName: 'mw-abort', AssumeRolePolicyDocument: TRUST }));
  const lane = new Lane(FAST);
  const c = client();
  c.middlewareStack.use(lane.plugin());
  let release;
  const held = lane.run('role/mw-abort', () => new Promise((r) => { release = r; }));
  const controller = new AbortController();
  const waiting = c.send(new TagRoleCommand({ RoleName: 'mw-abort', Tags: [{ Key: 'k', Value: 'v' }] }), { abortSignal: controller.signal });
  await new Promise((r) => { setTimeout(r, 20); });
  controller.abort();
  await assert.rejects(waiting);
  release('done');
  assert.equal(await held, 'done');
  await c.send(new TagRoleCommand({ RoleName: 'mw-abort', Tags: [{ Key: 'k', Value: 'w' }] }));
  const events = lane.events().map((e) => e.type);
  assert.ok(events.includes('cancelled') || events.includes('gave_up'), events.join(','));
});

test('keys and bad arguments', () => {
  const plugin = new Lane().plugin({ account: '123456789012' });
  assert.ok(plugin instanceof LanePlugin);
  assert.deepEqual(plugin.keys('iam', 'PutRolePolicy', { RoleName: 'r', PolicyName: 'p', PolicyDocument: '{}' }), { access: 'write', keys: ['arn:aws:iam::123456789012:role/r'] });
  assert.deepEqual(plugin.keys('iam', 'AddRoleToInstanceProfile', { RoleName: 'r', InstanceProfileName: 'ip' }).keys, ['arn:aws:iam::123456789012:instance-profile/ip', 'arn:aws:iam::123456789012:role/r']);
  assert.deepEqual(plugin.keys('iam', 'GetRole', { RoleName: 'r' }), { access: 'read', keys: [] });
  assert.throws(() => plugin.keys('iam', 'PutRolePolicy', { PolicyName: 'p' }), (e) => e instanceof EntityError && e.parameter === 'RoleName' && e.operation === 'PutRolePolicy');
  assert.throws(() => plugin.keys('s3', 'PutObject', {}), (e) => e instanceof EntityError && e.parameter === 'service');
  assert.throws(() => new Lane().plugin({ account: 12 }), (e) => e instanceof UsageError && e.field === 'options.account');
  assert.throws(() => new Lane().plugin({ deadlineMs: -1 }), (e) => e instanceof UsageError && e.field === 'options.deadlineMs');
});

for (const kind of ['redis', 'dynamodb']) {
  test(`4 processes x 2 tasks x 5 PutRolePolicyCommand on a shared ${kind} lease: 0 conflicts`, async () => {
    const server = kind === 'redis' ? await startRedis() : await startMoto();
    try {
      const role = `mw-shared-${kind}`;
      await client().send(new CreateRoleCommand({ RoleName: role, AssumeRolePolicyDocument: TRUST }));
      let store;
      if (kind === 'redis') {
        store = { kind, options: { url: server.url, prefix: 'mw:' } };
      } else {
        const { DynamoDBStore } = require('..');
        const options = { table: 'mw-leases', endpoint: server.endpoint, ...AWS_TEST_CONFIG, requestTimeoutMs: 2000 };
        await new DynamoDBStore(options).createTable();
        store = { kind, options };
      }
      await lab.reset();
      const script = path.join(__dirname, 'helpers', 'sdkwriter.js');
      const start = Date.now() + 3000;
      const summaries = await Promise.all([0, 1, 2, 3].map((writer) => new Promise((resolve, reject) => {
        const config = { endpoint: lab.endpoint, role, writer, tasks: 2, rounds: 5, policy: FAST, store, start };
        const child = spawn(process.execPath, [script, JSON.stringify(config)], { stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, NODE_NO_WARNINGS: '1' } });
        let out = '';
        let err = '';
        child.stdout.on('data', (d) => { out += d; });
        child.stderr.on('data', (d) => { err += d; });
        child.once('exit', (code) => (code === 0 ? resolve(JSON.parse(out.trim().split('\n').pop())) : reject(new Error(`sdkwriter ${writer}: ${err}`))));
      })));
      for (const s of summaries) {
        assert.deepEqual(s.errors, []);
        assert.equal(s.ok, 10);
        assert.equal(s.serialised, 10);
      }
      const stats = await lab.stats();
      console.log(`node 4 processes x 2 tasks x 5 PutRolePolicyCommand on a shared ${kind} lease: ${stats.conflicts} conflicts, ${stats.entities[`role/${role}`].writes} IAM writes`);
      assert.equal(stats.conflicts, 0);
      assert.equal(stats.entities[`role/${role}`].writes, 40);
    } finally {
      await server.stop();
    }
  });
}

test('a two-entity write takes both leases in canonical order', async () => {
  const { MemoryStore } = require('..');
  const lane = new Lane('iam', { store: new MemoryStore() });
  const plugin = lane.plugin();
  const order = [];
  const mw = plugin.middleware()(async () => { order.push('call'); return { output: {} }; }, { clientName: 'IAMClient', commandName: 'AddUserToGroupCommand' });
  await mw({ input: { UserName: 'u', GroupName: 'g' } });
  const steps = lane.events().filter((e) => ['submitted', 'lease_acquired', 'committed'].includes(e.type)).map((e) => `${e.type} ${e.entity}`);
  assert.deepEqual(steps, ['submitted group/g', 'lease_acquired group/g', 'submitted user/u', 'lease_acquired user/u', 'committed user/u', 'committed group/g']);
  assert.deepEqual(order, ['call']);
  assert.equal(plugin.serialised, 1);
});

test('a client with the plugin called inside lane.run on the same entity does not wait for itself', async () => {
  const admin = client();
  await admin.send(new CreateRoleCommand({ RoleName: 'mw-nested', AssumeRolePolicyDocument: TRUST }));
  const lane = new Lane(FAST);
  const c = client();
  const plugin = lane.plugin({ deadlineMs: 5000 });
  c.middlewareStack.use(plugin);
  const put = () => c.send(new PutRolePolicyCommand({ RoleName: 'mw-nested', PolicyName: 'P', PolicyDocument: doc('S') }));
  const started = Date.now();
  await lane.run('role/mw-nested', put);
  assert.ok(Date.now() - started < 2000, 'the inner call did not wait for the lane its caller holds');
  assert.equal(plugin.serialised, 1);
  // The caller's lane is the only one taken, and it retries the inner call's conflict.
  lane.events();
  await lab.config({ inject_conflicts: 1 });
  await lane.run('role/mw-nested', put);
  assert.deepEqual(lane.events().map((e) => e.type), ['submitted', 'conflict', 'retry_scheduled', 'committed']);
  // Inside an update's write too.
  await lane.update('role/mw-nested', {
    read: async () => ({ document: {}, token: null }), change: (d) => d, write: async () => { await put(); },
  });
  // Outside any write, the same call takes the lane as before.
  lane.events();
  await put();
  assert.deepEqual(lane.events().filter((e) => e.type === 'submitted').map((e) => e.entity), ['role/mw-nested']);
});
