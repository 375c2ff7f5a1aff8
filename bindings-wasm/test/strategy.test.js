'use strict';
// RetryStrategy: the AWS SDK v3 RetryStrategyV2 interface with writelane's decisions.
// With the aws-standard preset it follows the AWS standard retry rules step by step
// (checked against the rules with jitter "none", and against the SDK's own
// StandardRetryStrategy decision by decision).

const { test } = require('node:test');
const assert = require('node:assert/strict');
const { StandardRetryStrategy } = require('@smithy/util-retry');
const { Lane, RetryStrategy, RetryToken, RetryRefusedError, UsageError, WritelaneError } = require('..');

const NO_JITTER = {
  retry: {
    conflict: { jitter: 'none' },
    throttle: { jitter: 'none' },
    transient: { jitter: 'none' },
    unknown: { jitter: 'none' },
  },
};

function standard(overrides = {}, now = () => 0) {
  const policy = { preset: 'aws-standard', ...NO_JITTER, ...overrides };
  return new RetryStrategy(policy, { seed: 1, now });
}

function sdkError(code, status, extra = {}) {
  const e = new Error(code);
  e.name = code;
  e.$fault = status >= 500 ? 'server' : 'client';
  e.$metadata = { httpStatusCode: status };
  return Object.assign(e, extra);
}

const internal = () => ({ error: sdkError('InternalFailure', 500), errorType: 'TRANSIENT' });
const throttled = () => ({ error: sdkError('Throttling', 400), errorType: 'THROTTLING' });

async function refused(promise, reason) {
  await assert.rejects(promise, (e) => {
    assert.ok(e instanceof RetryRefusedError, String(e));
    assert.ok(e instanceof WritelaneError);
    assert.equal(e.code, 'ERR_WRITELANE_RETRY_REFUSED');
    assert.equal(e.reason, reason);
    return true;
  });
}

test('implements RetryStrategyV2', async () => {
  const s = new RetryStrategy('aws-standard');
  assert.equal(s.mode, 'standard');
  for (const m of ['acquireInitialRetryToken', 'refreshRetryTokenForRetry', 'recordSuccess']) {
    assert.equal(typeof s[m], 'function');
  }
  const t = await s.acquireInitialRetryToken('us-east-1');
  assert.ok(t instanceof RetryToken);
  assert.equal(t.getRetryCount(), 0);
  assert.equal(t.getRetryDelay(), 0);
  assert.equal(typeof s.refreshRetryTokenForRetry(t, internal()).then, 'function');
});

test('aws-standard: attempts, delays and quota step by step', async () => {
  const s = standard();
  const t0 = await s.acquireInitialRetryToken('iam');
  assert.equal(s.capacity('iam'), 500);
  const t1 = await s.refreshRetryTokenForRetry(t0, internal());
  assert.deepEqual([t1.getRetryCount(), t1.getRetryDelay(), t1.getRetryCost(), t1.errorClass], [1, 50, 14, 'transient']);
  assert.equal(s.capacity('iam'), 486);
  const t2 = await s.refreshRetryTokenForRetry(t1, internal());
  assert.deepEqual([t2.getRetryCount(), t2.getRetryDelay(), t2.getRetryCost()], [2, 100, 14]);
  assert.equal(s.capacity('iam'), 472);
  await refused(s.refreshRetryTokenForRetry(t2, internal()), 'attempts_exhausted');
  assert.equal(s.capacity('iam'), 472, 'a refusal charges nothing');
  s.recordSuccess(t2);
  assert.equal(s.capacity('iam'), 486, 'a success refunds the last retry\'s cost');
  const fresh = await s.acquireInitialRetryToken('iam');
  s.recordSuccess(fresh);
  assert.equal(s.capacity('iam'), 487, 'a first-try success adds one');
  s.recordSuccess(await s.acquireInitialRetryToken('iam'));
  assert.equal(s.capacity('iam'), 488);
});

test('aws-standard: throttling starts at 1 s and costs 5; delays cap at 20 s', async () => {
  const s = standard({ retry: { ...NO_JITTER.retry, throttle: { jitter: 'none', max_attempts: 9 }, transient: { jitter: 'none', max_attempts: 12 } } });
  let t = await s.acquireInitialRetryToken('iam');
  const delays = [];
  for (let i = 0; i < 8; i++) {
    t = await s.refreshRetryTokenForRetry(t, throttled());
    delays.push(t.getRetryDelay());
    assert.equal(t.getRetryCost(), 5);
  }
  assert.deepEqual(delays, [1000, 2000, 4000, 8000, 16000, 20000, 20000, 20000]);
  assert.equal(s.capacity('iam'), 500 - 8 * 5);
  let u = await s.acquireInitialRetryToken('other');
  const transient = [];
  for (let i = 0; i < 11; i++) {
    u = await s.refreshRetryTokenForRetry(u, internal());
    transient.push(u.getRetryDelay());
  }
  assert.deepEqual(transient, [50, 100, 200, 400, 800, 1600, 3200, 6400, 12800, 20000, 20000]);
});

test('aws-standard: an empty quota refuses and charges nothing', async () => {
  const s = standard();
  for (let i = 0; i < 35; i++) {
    await s.refreshRetryTokenForRetry(await s.acquireInitialRetryToken('q'), internal());
  }
  assert.equal(s.capacity('q'), 10);
  await refused(s.refreshRetryTokenForRetry(await s.acquireInitialRetryToken('q'), internal()), 'budget_exhausted');
  assert.equal(s.capacity('q'), 10);
  const t = await s.refreshRetryTokenForRetry(await s.acquireInitialRetryToken('q'), throttled());
  assert.equal(t.getRetryCost(), 5, 'a throttling retry still fits');
  assert.equal(s.capacity('q'), 5);
  assert.equal(s.capacity('elsewhere'), 500, 'each scope has its own quota');
});

test('aws-standard: full jitter stays within the ceiling and varies', async () => {
  const s = new RetryStrategy('aws-standard', { seed: 42 });
  const seen = new Set();
  for (let i = 0; i < 30; i++) {
    const t = await s.refreshRetryTokenForRetry(await s.acquireInitialRetryToken(`j${i}`), internal());
    assert.ok(t.getRetryDelay() >= 0 && t.getRetryDelay() <= 50);
    assert.ok(Number.isInteger(t.getRetryDelay()));
    seen.add(t.getRetryDelay());
  }
  assert.ok(seen.size > 5, `delays vary: ${[...seen]}`);
});

test('aws-standard decides as the SDK\'s own StandardRetryStrategy', async () => {
  const ours = new RetryStrategy('aws-standard', { seed: 7 });
  const sdk = new StandardRetryStrategy(3);
  const scenario = [
    internal, internal, internal, 'success',
    throttled, 'success',
    () => ({ error: sdkError('AccessDenied', 403), errorType: 'CLIENT_ERROR' }),
    () => ({ error: sdkError('ServiceUnavailable', 503), errorType: 'TRANSIENT' }),
    throttled, throttled, 'success',
  ];
  let a = await ours.acquireInitialRetryToken('');
  let b = await sdk.acquireInitialRetryToken('');
  for (const [i, step] of scenario.entries()) {
    if (step === 'success') {
      ours.recordSuccess(a);
      sdk.recordSuccess(b);
      a = await ours.acquireInitialRetryToken('');
      b = await sdk.acquireInitialRetryToken('');
    } else {
      const info = step();
      const [x, y] = await Promise.allSettled([
        ours.refreshRetryTokenForRetry(a, info),
        sdk.refreshRetryTokenForRetry(b, info),
      ]);
      assert.equal(x.status, y.status, `step ${i}: both retry or both refuse`);
      if (x.status === 'fulfilled') {
        a = x.value;
        b = y.value;
        assert.equal(a.getRetryCount(), b.getRetryCount(), `step ${i}: retry count`);
        assert.equal(a.getRetryCost(), b.getRetryCost(), `step ${i}: cost`);
      }
    }
    assert.equal(ours.capacity(''), sdk.getCapacity(), `step ${i}: quota`);
  }
});

test('retry-after hints: x-amz-retry-after header, then the SDK\'s date hint', async () => {
  const s = standard();
  const header = { error: sdkError('Throttling', 400, { $response: { statusCode: 400, headers: { 'x-amz-retry-after': '3000' } } }) };
  const t = await s.refreshRetryTokenForRetry(await s.acquireInitialRetryToken('h'), header);
  assert.equal(t.getRetryDelay(), 3000);
  const far = { error: sdkError('Throttling', 400, { $response: { headers: { 'x-amz-retry-after': '60000' } } }) };
  const u = await s.refreshRetryTokenForRetry(await s.acquireInitialRetryToken('h'), far);
  assert.equal(u.getRetryDelay(), 6000, 'clamped to delay + 5 s');
  const date = { ...throttled(), retryAfterHint: new Date(Date.now() + 2500) };
  const v = await s.refreshRetryTokenForRetry(await s.acquireInitialRetryToken('h'), date);
  assert.ok(v.getRetryDelay() >= 2400 && v.getRetryDelay() <= 2500, String(v.getRetryDelay()));
});

test('without an error object the SDK\'s error type decides', async () => {
  const s = standard();
  const t = await s.refreshRetryTokenForRetry(await s.acquireInitialRetryToken('x'), { errorType: 'THROTTLING' });
  assert.deepEqual([t.errorClass, t.getRetryCost(), t.getRetryDelay()], ['throttle', 5, 1000]);
  const u = await s.refreshRetryTokenForRetry(await s.acquireInitialRetryToken('x'), { errorType: 'TRANSIENT' });
  assert.equal(u.errorClass, 'transient');
  await refused(s.refreshRetryTokenForRetry(await s.acquireInitialRetryToken('x'), { errorType: 'CLIENT_ERROR' }), 'not_retryable');
});

test('the iam preset retries ConcurrentModification as a conflict; the SDK does not', async () => {
  const conflict = () => ({
    error: sdkError('ConcurrentModificationException', 409, { Code: 'ConcurrentModification' }),
    errorType: 'CLIENT_ERROR',
  });
  const s = new RetryStrategy('iam', { seed: 1 });
  let t = await s.acquireInitialRetryToken('');
  for (let i = 0; i < 11; i++) {
    t = await s.refreshRetryTokenForRetry(t, conflict());
    assert.equal(t.errorClass, 'conflict');
    assert.ok(t.getRetryDelay() <= Math.min(200 * 2 ** i, 15000));
  }
  await assert.rejects(s.refreshRetryTokenForRetry(t, conflict()), (e) => {
    assert.equal(e.reason, 'attempts_exhausted');
    assert.equal(e.attempts, 12);
    assert.equal(e.errorClass, 'conflict');
    assert.equal(e.cause.name, 'ConcurrentModificationException');
    return true;
  });
  await assert.rejects(new StandardRetryStrategy(3).refreshRetryTokenForRetry(
    await new StandardRetryStrategy(3).acquireInitialRetryToken(''), conflict(),
  ));
  const lane = new Lane('iam', { seed: 1 });
  assert.equal(lane.retryStrategy().policy, lane.policy);
});

test('a deadline refuses a retry that would pass it', async () => {
  let now = 0;
  const s = new RetryStrategy({ preset: 'aws-standard', deadline_ms: 120, ...NO_JITTER }, { seed: 1, now: () => now });
  const t = await s.refreshRetryTokenForRetry(await s.acquireInitialRetryToken('d'), internal());
  now = 100;
  await refused(s.refreshRetryTokenForRetry(t, internal()), 'deadline_exceeded');
});

test('misuse is refused with UsageError', async () => {
  const s = standard();
  const other = standard();
  const foreign = await other.acquireInitialRetryToken('x');
  await assert.rejects(s.refreshRetryTokenForRetry(foreign, internal()), (e) => e instanceof UsageError && e.field === 'token');
  await assert.rejects(s.refreshRetryTokenForRetry({ getRetryCount: () => 0 }, internal()), UsageError);
  assert.throws(() => s.recordSuccess(foreign), UsageError);
  let now = 10;
  const clocked = standard({}, () => now);
  const t = await clocked.acquireInitialRetryToken('x');
  now = 5;
  await assert.rejects(clocked.refreshRetryTokenForRetry(t, internal()), (e) => e instanceof UsageError && e.kind === 'time_went_backwards');
  await assert.rejects(standard({}, () => 1.5).acquireInitialRetryToken('x'), (e) => e instanceof UsageError && e.field === 'options.now()');
  assert.throws(() => new RetryStrategy('iam', { now: 5 }), (e) => e instanceof UsageError && e.field === 'options.now');
});
