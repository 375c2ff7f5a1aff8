'use strict';
// End to end with the real @aws-sdk/client-iam against the IAM contention lab: eight
// concurrent async writers each append their own statement to one role's inline policy
// five times. Without writelane the lab refuses overlapping writes and statements are
// lost; through one Lane nothing conflicts and all forty statements land. An IAMClient
// configured with lane.retryStrategy() survives injected conflicts with unchanged calls.

const { test, before, after } = require('node:test');
const assert = require('node:assert/strict');
const {
  IAMClient, CreateRoleCommand, GetRolePolicyCommand, PutRolePolicyCommand,
} = require('@aws-sdk/client-iam');
const { Lane, policyToken, GaveUpError } = require('..');
const { startLab } = require('./helpers/iamlab');

const WRITERS = 8;
const ROUNDS = 5;
const POLICY_NAME = 'appended';
const TRUST = JSON.stringify({
  Version: '2012-10-17',
  Statement: [{ Effect: 'Allow', Principal: { Service: 'ec2.amazonaws.com' }, Action: 'sts:AssumeRole' }],
});

let lab;

function client(extra = {}) {
  return new IAMClient({
    region: 'us-east-1',
    endpoint: lab.endpoint,
    credentials: { accessKeyId: 'testing', secretAccessKey: 'testing' },
    ...extra,
  });
}

before(async () => {
  lab = await startLab({ serviceMs: 20 });
});

after(async () => {
  if (lab) await lab.stop();
});

async function createRole(iam, name) {
  await iam.send(new CreateRoleCommand({ RoleName: name, AssumeRolePolicyDocument: TRUST }));
}

/** The role's inline policy as text (IAM returns it URL-encoded), or null when absent. */
async function getDocument(iam, role) {
  try {
    const out = await iam.send(new GetRolePolicyCommand({ RoleName: role, PolicyName: POLICY_NAME }));
    const text = out.PolicyDocument;
    return text.trimStart().startsWith('{') ? text : decodeURIComponent(text);
  } catch (e) {
    if (e.name === 'NoSuchEntityException') return null;
    throw e;
  }
}

function statement(writer, round) {
  return {
    Sid: `W${writer}R${round}`,
    Effect: 'Allow',
    Action: 's3:GetObject',
    Resource: `arn:aws:s3:::bucket-${writer}/${round}/*`,
  };
}

function appended(text, stmt) {
  const doc = text === null ? { Version: '2012-10-17', Statement: [] } : JSON.parse(text);
  const list = Array.isArray(doc.Statement) ? doc.Statement : [doc.Statement];
  return JSON.stringify({ ...doc, Statement: [...list, stmt] });
}

async function sids(iam, role) {
  const text = await getDocument(iam, role);
  if (text === null) return new Set();
  const doc = JSON.parse(text);
  return new Set((Array.isArray(doc.Statement) ? doc.Statement : [doc.Statement]).map((s) => s.Sid));
}

test('without writelane the lab records conflicts and statements are lost', async () => {
  const iam = client();
  const role = 'plain-writers';
  await createRole(iam, role);
  await lab.reset();
  let failures = 0;
  await Promise.all(Array.from({ length: WRITERS }, async (_, w) => {
    for (let r = 0; r < ROUNDS; r++) {
      try {
        const text = await getDocument(iam, role);
        await iam.send(new PutRolePolicyCommand({
          RoleName: role, PolicyName: POLICY_NAME, PolicyDocument: appended(text, statement(w, r)),
        }));
      } catch (e) {
        assert.equal(e.name, 'ConcurrentModificationException', `unexpected ${e}`);
        failures += 1;
      }
    }
  }));
  const stats = await lab.stats();
  const present = await sids(iam, role);
  assert.ok(stats.entities[`role/${role}`].conflicts > 0, 'the lab refused overlapping writes');
  assert.equal(stats.entities[`role/${role}`].conflicts, failures);
  assert.ok(present.size < WRITERS * ROUNDS, `statements lost: ${present.size} of ${WRITERS * ROUNDS} present`);
});

test('through one Lane: zero conflicts and all 40 statements present', async () => {
  const iam = client();
  const role = 'lane-writers';
  await createRole(iam, role);
  await lab.reset();
  const lane = new Lane('iam', { seed: 11 });
  const entity = `role/${role}`;
  const results = await Promise.all(Array.from({ length: WRITERS }, async (_, w) => {
    const done = [];
    for (let r = 0; r < ROUNDS; r++) {
      let current = null;
      done.push(await lane.run(entity, async (attempt) => {
        await iam.send(new PutRolePolicyCommand({
          RoleName: role, PolicyName: POLICY_NAME, PolicyDocument: appended(current, statement(w, r)),
        }));
        return attempt;
      }, {
        read: async () => {
          current = await getDocument(iam, role);
          return current === null ? null : policyToken(current);
        },
      }));
    }
    return done;
  }));
  const stats = await lab.stats();
  const present = await sids(iam, role);
  assert.equal(stats.entities[entity].conflicts, 0, 'no write overlapped another');
  assert.equal(stats.entities[entity].writes, WRITERS * ROUNDS);
  assert.equal(present.size, WRITERS * ROUNDS, 'every statement is present');
  assert.deepEqual(results.flat(), Array(WRITERS * ROUNDS).fill(1), 'every write landed first time');
  const laneStats = lane.stats();
  assert.equal(laneStats.global.committed, WRITERS * ROUNDS);
  assert.ok(laneStats.global.lane_waits > 0, 'writers waited for the lane');
});

test('a Lane retries injected conflicts, re-reading before each retry', async () => {
  const iam = client();
  const role = 'lane-injected';
  await createRole(iam, role);
  await lab.reset();
  await lab.config({ inject_conflicts: 2 });
  const lane = new Lane({ preset: 'iam', retry: { conflict: { base_ms: 10, cap_ms: 50 } } }, { seed: 3 });
  let reads = 0;
  let current = null;
  const attempt = await lane.run(`role/${role}`, async (n) => {
    await iam.send(new PutRolePolicyCommand({
      RoleName: role, PolicyName: POLICY_NAME, PolicyDocument: appended(current, statement(0, 0)),
    }));
    return n;
  }, {
    read: async () => {
      reads += 1;
      current = await getDocument(iam, role);
      return current === null ? null : policyToken(current);
    },
  });
  assert.equal(attempt, 3);
  assert.equal(reads, 3, 'one read before each attempt');
  assert.equal((await lab.stats()).conflicts, 2);
  assert.equal(lane.stats().global.conflicts, 2);
});

test('an IAMClient with lane.retryStrategy() survives injected conflicts', async () => {
  const lane = new Lane({ preset: 'iam', retry: { conflict: { base_ms: 10, cap_ms: 100 } } }, { seed: 5 });
  const setup = client();
  const role = 'strategy-client';
  await createRole(setup, role);
  const doc = appended(null, statement(1, 1));

  // The same call with the SDK's own retries fails on the first conflict.
  await lab.reset();
  await lab.config({ inject_conflicts: 1 });
  await assert.rejects(
    setup.send(new PutRolePolicyCommand({ RoleName: role, PolicyName: POLICY_NAME, PolicyDocument: doc })),
    (e) => e.name === 'ConcurrentModificationException',
  );

  await lab.reset();
  await lab.config({ inject_conflicts: 3 });
  const iam = client({ retryStrategy: lane.retryStrategy() });
  const out = await iam.send(new PutRolePolicyCommand({ RoleName: role, PolicyName: POLICY_NAME, PolicyDocument: doc }));
  assert.equal(out.$metadata.attempts, 4);
  assert.equal((await lab.stats()).conflicts, 3);
  assert.deepEqual([...(await sids(setup, role))], ['W1R1']);
  assert.equal(lane.retryStrategy(), lane.retryStrategy(), 'one strategy per lane');
  // The budget was charged for the three retries and refunded on success.
  const cost = lane.policy.toJSON().retry.conflict.cost;
  assert.equal(lane.retryStrategy().capacity(''), 500 - 3 * cost + cost);
});

test('a fatal IAM error gives up at once with the SDK error as cause', async () => {
  const iam = client();
  const lane = new Lane('iam', { seed: 9 });
  await assert.rejects(
    lane.run('role/missing', () => iam.send(new PutRolePolicyCommand({
      RoleName: 'no-such-role', PolicyName: POLICY_NAME, PolicyDocument: appended(null, statement(2, 2)),
    }))),
    (e) => {
      assert.ok(e instanceof GaveUpError);
      assert.equal(e.reason, 'fatal');
      assert.equal(e.attempts, 1);
      assert.equal(e.errorCode, 'NoSuchEntity');
      assert.equal(e.httpStatus, 404);
      assert.equal(e.cause.name, 'NoSuchEntityException');
      return true;
    },
  );
});
