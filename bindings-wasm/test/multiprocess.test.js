'use strict';
// Writers in separate processes share a lease store: 4 Node processes x 10
// read-modify-write appends to one role's inline policy at the IAM contention lab, through
// a DynamoDB lease store, an S3 one (a moto server playing both) and Redis (a redis-server). Nothing
// conflicts at the lab and all 40 statements land. Then the faults: a holder killed with
// SIGKILL in the middle of its write is taken over after the lease with a higher epoch and
// nothing is lost; a store stopped mid-run makes writers give up without writing.

const { test, before, after } = require('node:test');
const assert = require('node:assert/strict');
const { spawn } = require('node:child_process');
const path = require('node:path');
const readline = require('node:readline');
const { IAMClient, CreateRoleCommand, GetRolePolicyCommand } = require('@aws-sdk/client-iam');
const { DynamoDBStore, RedisStore, S3Store } = require('..');
const { startLab } = require('./helpers/iamlab');
const { startRedis, startMoto, AWS_TEST_CONFIG } = require('./helpers/servers');

const TRUST = JSON.stringify({
  Version: '2012-10-17',
  Statement: [{ Effect: 'Allow', Principal: { Service: 'ec2.amazonaws.com' }, Action: 'sts:AssumeRole' }],
});
const TABLE = 'writelane-leases';
/**
 * Short leases so that takeovers and give-ups happen within a fault test's time. (A lease
 * this short leaves little room for a process stalled on a busy 2-core machine, so the
 * runs without faults use the default lease of 10 s.)
 */
const POLICY_FAULTS = {
  preset: 'iam',
  lease: { lease_ms: 1500, renew_ms: 500, lock_delay_ms: 200, poll_ms: 50, unavailable_ms: 1000, max_write_ms: 300 },
};

let lab;
let redis;
let moto;
let iam;

before(async () => {
  [lab, redis, moto] = await Promise.all([startLab({ serviceMs: 20 }), startRedis(), startMoto()]);
  const admin = new DynamoDBStore({ table: TABLE, endpoint: moto.endpoint, ...AWS_TEST_CONFIG });
  await admin.createTable();
  admin.close();
  const bucketAdmin = new S3Store({ bucket: TABLE, endpoint: moto.endpoint, ...AWS_TEST_CONFIG });
  const { CreateBucketCommand } = require('@aws-sdk/client-s3');
  await bucketAdmin.client.send(new CreateBucketCommand({ Bucket: TABLE }));
  bucketAdmin.close();
  iam = new IAMClient({ region: 'us-east-1', endpoint: lab.endpoint, credentials: { accessKeyId: 'testing', secretAccessKey: 'testing' } });
});

after(async () => {
  iam?.destroy();
  await Promise.all([lab?.stop(), redis?.stop(), moto?.stop()]);
});

function storeConfig(kind) {
  if (kind === 'redis') return { kind, options: { url: redis.url, connectTimeoutMs: 300, commandTimeoutMs: 1000 } };
  if (kind === 's3') return { kind, options: { bucket: TABLE, prefix: 'mp/', endpoint: moto.endpoint, ...AWS_TEST_CONFIG, requestTimeoutMs: 1000 } };
  return { kind, options: { table: TABLE, endpoint: moto.endpoint, ...AWS_TEST_CONFIG, requestTimeoutMs: 1000 } };
}

const ADAPTERS = { redis: RedisStore, dynamodb: DynamoDBStore, s3: S3Store };

/** Start one appender process; `lines` collects its JSON lines with arrival times. */
function appender(config) {
  const script = path.join(__dirname, 'helpers', 'appender.js');
  const child = spawn(process.execPath, [script, JSON.stringify({ endpoint: lab.endpoint, policy: POLICY_FAULTS, ...config })], {
    stdio: ['ignore', 'pipe', 'pipe'],
    env: { ...process.env, NODE_NO_WARNINGS: '1' },
  });
  const proc = { child, lines: [], stderr: '', listeners: [] };
  child.stderr.on('data', (d) => { proc.stderr += d; });
  readline.createInterface({ input: child.stdout }).on('line', (line) => {
    const entry = { at: Date.now(), value: JSON.parse(line) };
    proc.lines.push(entry);
    proc.listeners.forEach((f) => f(entry));
  });
  proc.exited = new Promise((resolve) => child.once('exit', (code, signal) => resolve({ code, signal })));
  proc.summary = async () => {
    const { code } = await proc.exited;
    assert.equal(code, 0, `appender failed: ${proc.stderr}`);
    return proc.lines.at(-1).value;
  };
  proc.writing = () => new Promise((resolve) => {
    const hit = proc.lines.find((l) => l.value.writing !== undefined);
    if (hit) resolve(hit.value);
    else proc.listeners.push((l) => { if (l.value.writing !== undefined) resolve(l.value); });
  });
  return proc;
}

async function createRole(name) {
  await iam.send(new CreateRoleCommand({ RoleName: name, AssumeRolePolicyDocument: TRUST }));
}

async function sids(role) {
  try {
    const out = await iam.send(new GetRolePolicyCommand({ RoleName: role, PolicyName: 'appended' }));
    const text = out.PolicyDocument.trimStart().startsWith('{') ? out.PolicyDocument : decodeURIComponent(out.PolicyDocument);
    const doc = JSON.parse(text);
    return (Array.isArray(doc.Statement) ? doc.Statement : [doc.Statement]).map((s) => s.Sid).sort();
  } catch (e) {
    if (e.name === 'NoSuchEntityException') return [];
    throw e;
  }
}

async function leaseRecord(kind, key) {
  const store = new ADAPTERS[kind](storeConfig(kind).options);
  try {
    return await store.get(key);
  } finally {
    await store.close();
  }
}

const REPEAT = Number(process.env.WL_REPEAT || 1);
for (const kind of ['dynamodb', 's3', 'redis']) for (let rep = 0; rep < REPEAT; rep += 1) {
  test(`4 processes x 10 appends through a ${kind} lease store: no conflicts, all 40 statements`, async () => {
    const role = `mp-${kind}-${rep}`;
    await createRole(role);
    await lab.reset();
    const procs = [0, 1, 2, 3].map((writer) => appender({ role, writer, rounds: 10, policy: 'iam', store: storeConfig(kind) }));
    const summaries = await Promise.all(procs.map((p) => p.summary()));
    for (const s of summaries) {
      assert.deepEqual(s.errors, [], `writer ${s.writer}`);
      assert.equal(s.committed, 10);
    }
    const expected = [0, 1, 2, 3].flatMap((w) => Array.from({ length: 10 }, (_, r) => `W${w}R${r}`)).sort();
    assert.deepEqual(await sids(role), expected);
    // Every append held its own lease: 40 holdings, each under a higher epoch.
    const fences = procs.flatMap((p) => p.lines.filter((l) => l.value.writing !== undefined).map((l) => [l.at, l.value.fence]));
    assert.equal(new Set(fences.map(([, f]) => f)).size, fences.length, `one fence per write: ${JSON.stringify(fences)}`);
    const stats = await lab.stats();
    const takeovers = procs.flatMap((p) => p.lines.filter((l) => l.value.takeover !== undefined).map((l) => l.value));
    assert.equal(stats.entities[`role/${role}`].conflicts, 0, `${JSON.stringify(stats)} fences ${JSON.stringify(fences)} takeovers ${JSON.stringify(takeovers)}`);
    assert.deepEqual(takeovers, [], 'no holder went stale');
    assert.equal(stats.entities[`role/${role}`].writes, 40);
    const record = await leaseRecord(kind, `role/${role}`);
    assert.equal(record.owner, '', 'released at the end');
    assert.equal(record.epoch, Math.max(...fences.map(([, f]) => f)));
  });
}

test('a holder killed in the middle of its write is taken over after the lease; nothing is lost', async () => {
  const kind = 'dynamodb';
  const role = 'mp-killed';
  await createRole(role);
  await lab.reset();
  const victim = appender({ role, writer: 9, rounds: 1, hangOnRound: 0, store: storeConfig(kind) });
  const { fence: victimFence } = await victim.writing();
  victim.child.kill('SIGKILL');
  const killedAt = Date.now();
  assert.equal((await victim.exited).signal, 'SIGKILL');
  const held = await leaseRecord(kind, `role/${role}`);
  assert.equal(held.epoch, victimFence, 'the killed process still holds the lease');
  assert.match(held.holder, /^appender 9 pid \d+$/, 'the record says who holds it');
  const others = [0, 1].map((writer) => appender({ role, writer, rounds: 3, store: storeConfig(kind) }));
  const firstWrite = await Promise.race(others.map((p) => p.writing()));
  const waited = Date.now() - killedAt;
  const summaries = await Promise.all(others.map((p) => p.summary()));
  summaries.forEach((s) => assert.deepEqual(s.errors, []));
  assert.ok(firstWrite.fence > victimFence, `takeover bumps the epoch (${firstWrite.fence} > ${victimFence})`);
  // Stale only after the record stood still for a whole lease, then the lock-delay.
  assert.ok(waited >= POLICY_FAULTS.lease.lease_ms, `took over after ${waited} ms`);
  assert.deepEqual(await sids(role), ['W0R0', 'W0R1', 'W0R2', 'W1R0', 'W1R1', 'W1R2']);
  assert.equal((await lab.stats()).entities[`role/${role}`].conflicts, 0);
});

test('a store stopped mid-run: writers give up with lock_unavailable or lease_lost, no write without a lease', async () => {
  const kind = 'redis';
  const role = 'mp-store-down';
  await createRole(role);
  await lab.reset();
  const procs = [0, 1].map((writer) => appender({ role, writer, rounds: 30, stopOnError: true, store: storeConfig(kind) }));
  // Let a few appends land, then stop Redis.
  await new Promise((resolve) => {
    const check = () => {
      if (procs.reduce((n, p) => n + p.lines.filter((l) => l.value.writing !== undefined).length, 0) >= 4) resolve();
      else setTimeout(check, 20);
    };
    check();
  });
  await redis.stop();
  const stoppedAt = Date.now();
  const summaries = await Promise.all(procs.map((p) => p.summary()));
  const errors = summaries.flatMap((s) => s.errors);
  assert.ok(errors.length > 0, 'writers gave up');
  for (const e of errors) assert.ok(['lock_unavailable', 'lease_lost'].includes(e.reason), JSON.stringify(e));
  // A write may start only while its lease is surely held: never later than one lease
  // after the store went away.
  const writes = procs.flatMap((p) => p.lines.filter((l) => l.value.writing !== undefined));
  for (const w of writes) assert.ok(w.at < stoppedAt + POLICY_FAULTS.lease.lease_ms, `a write started ${w.at - stoppedAt} ms after the store stopped`);
  const committed = summaries.reduce((n, s) => n + s.committed, 0);
  assert.equal((await sids(role)).length, committed, 'every committed append is there, nothing else');
  assert.equal((await lab.stats()).entities[`role/${role}`].conflicts, 0);
});
