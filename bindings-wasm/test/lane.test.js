'use strict';
// Lane: FIFO per entity, retries on timers, change-token checks, abort signals, error
// mapping, and refusal of bad input with typed errors.

const { test } = require('node:test');
const assert = require('node:assert/strict');
const { spawnSync } = require('node:child_process');
const path = require('node:path');
const {
  Lane, Policy, failureFromError,
  WritelaneError, PolicyError, UsageError, GaveUpError, StaleRevisionError,
} = require('..');

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

/** An error shaped as AWS SDK v3 throws it. */
function awsError(code, status, extra = {}) {
  const e = new Error(`${code} (${status})`);
  e.name = `${code}Exception`;
  e.Code = code;
  e.$fault = status >= 500 ? 'server' : 'client';
  e.$metadata = { httpStatusCode: status, attempts: 1 };
  return Object.assign(e, extra);
}

/** The iam preset with no jitter and short conflict delays, for exact timings. */
function quick(overrides = {}) {
  return {
    preset: 'iam',
    retry: { conflict: { base_ms: 20, cap_ms: 1000, jitter: 'none' } },
    ...overrides,
  };
}

test('writes to one entity go one at a time, first come first served', async () => {
  const lane = new Lane('iam', { seed: 1 });
  const log = [];
  let inside = 0;
  let most = 0;
  const writer = (i) => lane.run('role/app', async () => {
    inside += 1;
    most = Math.max(most, inside);
    log.push(`start ${i}`);
    await sleep(5);
    log.push(`end ${i}`);
    inside -= 1;
    return i;
  });
  const results = await Promise.all([0, 1, 2, 3, 4].map(writer));
  assert.deepEqual(results, [0, 1, 2, 3, 4]);
  assert.equal(most, 1);
  assert.deepEqual(log, [0, 1, 2, 3, 4].flatMap((i) => [`start ${i}`, `end ${i}`]));
  const stats = lane.stats();
  assert.equal(stats.global.committed, 5);
  assert.equal(stats.global.lane_waits, 4);
  assert.equal(stats.entities['role/app'].busy, false);
});

test('different entities do not wait for each other', async () => {
  const lane = new Lane('iam', { seed: 1 });
  let inside = 0;
  let most = 0;
  await Promise.all(['a', 'b', 'c'].map((e) => lane.run(`role/${e}`, async () => {
    inside += 1;
    most = Math.max(most, inside);
    await sleep(20);
    inside -= 1;
  })));
  assert.equal(most, 3);
});

test('conflicts are retried after the engine\'s delays, re-reading each time', async () => {
  const lane = new Lane(quick(), { seed: 2 });
  const calls = [];
  const t0 = performance.now();
  const result = await lane.run('role/app', async (attempt, ctx) => {
    calls.push({ attempt, base: ctx.baseToken, at: performance.now() - t0 });
    if (attempt < 3) throw awsError('ConcurrentModification', 409);
    return 'written';
  }, { read: async () => `v${calls.length}` });
  assert.equal(result, 'written');
  assert.deepEqual(calls.map((c) => [c.attempt, c.base]), [[1, 'v0'], [2, 'v1'], [3, 'v2']]);
  // No jitter: 20 ms before the second attempt, 40 ms before the third.
  assert.ok(calls[1].at - calls[0].at >= 19, `first delay ${calls[1].at - calls[0].at}`);
  assert.ok(calls[2].at - calls[1].at >= 39, `second delay ${calls[2].at - calls[1].at}`);
  const events = lane.events().map((e) => e.type);
  assert.deepEqual(events, [
    'submitted', 'conflict', 'retry_scheduled', 'conflict', 'retry_scheduled', 'committed',
  ]);
  assert.deepEqual(lane.events(), [], 'events() drains');
  const delays = [];
  const lane2 = new Lane(quick(), { seed: 2 });
  await lane2.run('role/x', async (a) => { if (a < 3) throw awsError('ConcurrentModification', 409); });
  for (const e of lane2.events()) if (e.type === 'retry_scheduled') delays.push(e.delay_ms);
  assert.deepEqual(delays, [20, 40]);
});

test('waiting uses timers, not a busy loop', async () => {
  const lane = new Lane({ ...quick(), retry: { conflict: { base_ms: 300, cap_ms: 300, jitter: 'none' } } }, { seed: 1 });
  const cpu0 = process.cpuUsage();
  const wall0 = performance.now();
  await lane.run('role/app', async (a) => { if (a === 1) throw awsError('ConcurrentModification', 409); });
  const wall = performance.now() - wall0;
  const cpu = process.cpuUsage(cpu0);
  assert.ok(wall >= 299, `waited ${wall} ms`);
  assert.ok((cpu.user + cpu.system) / 1000 < wall / 3, `used ${(cpu.user + cpu.system) / 1000} ms of CPU in ${wall} ms`);
});

test('a stale revision is refused before writing', async () => {
  const lane = new Lane('iam', { seed: 1 });
  let writes = 0;
  await assert.rejects(
    lane.run('role/app', async () => { writes += 1; }, { read: async () => 'v2', expected: 'v1' }),
    (e) => {
      assert.ok(e instanceof StaleRevisionError);
      assert.ok(e instanceof WritelaneError);
      assert.equal(e.code, 'ERR_WRITELANE_STALE_REVISION');
      assert.equal(e.expected, 'v1');
      assert.equal(e.found, 'v2');
      assert.equal(e.attempts, 0);
      return true;
    },
  );
  assert.equal(writes, 0);
  assert.equal(await lane.run('role/app', async () => 'ok', { read: async () => 'v1', expected: 'v1' }), 'ok');
  await assert.rejects(
    lane.run('role/app', async () => {}, { read: async () => null, expected: 'v1' }),
    (e) => e instanceof StaleRevisionError && e.found === null,
  );
});

test('a fatal error gives up at once with the error as cause', async () => {
  const lane = new Lane('iam', { seed: 1 });
  const boom = new Error('boom');
  await assert.rejects(lane.run('role/app', async () => { throw boom; }), (e) => {
    assert.ok(e instanceof GaveUpError);
    assert.equal(e.code, 'ERR_WRITELANE_GAVE_UP');
    assert.equal(e.reason, 'fatal');
    assert.equal(e.attempts, 1);
    assert.equal(e.cause, boom);
    return true;
  });
  await assert.rejects(
    lane.run('role/app', async () => { throw awsError('LimitExceeded', 409); }),
    (e) => e.reason === 'fatal' && e.errorCode === 'LimitExceeded' && e.httpStatus === 409,
  );
});

test('attempts run out with the class and code of the last failure', async () => {
  const lane = new Lane(quick({ retry: { conflict: { max_attempts: 3, base_ms: 1, cap_ms: 1, jitter: 'none' } } }), { seed: 1 });
  let last;
  await assert.rejects(lane.run('role/app', async () => {
    last = awsError('ConcurrentModification', 409);
    throw last;
  }), (e) => {
    assert.equal(e.reason, 'attempts_exhausted');
    assert.equal(e.attempts, 3);
    assert.equal(e.errorClass, 'conflict');
    assert.equal(e.errorCode, 'ConcurrentModification');
    assert.equal(e.cause, last);
    return true;
  });
});

test('a deadline refuses a retry that would pass it', async () => {
  const lane = new Lane(quick({ retry: { conflict: { base_ms: 5000, cap_ms: 5000, jitter: 'none' } } }), { seed: 1 });
  const t0 = performance.now();
  await assert.rejects(
    lane.run('role/app', async () => { throw awsError('ConcurrentModification', 409); }, { deadlineMs: 1000 }),
    (e) => e.reason === 'deadline_exceeded' && e.attempts === 1,
  );
  assert.ok(performance.now() - t0 < 1000);
});

test('throttling, 5xx and network errors are understood from SDK errors', async () => {
  const lane = new Lane({
    preset: 'iam',
    retry: {
      throttle: { base_ms: 1, cap_ms: 1, jitter: 'none' },
      transient: { base_ms: 1, cap_ms: 1, jitter: 'none' },
      unknown: { base_ms: 1, cap_ms: 1, jitter: 'none' },
    },
  }, { seed: 1 });
  const errors = [
    awsError('Throttling', 400),
    Object.assign(new Error('unavailable'), { name: 'ServiceUnavailable', $metadata: { httpStatusCode: 503 } }),
    Object.assign(new Error('connect ECONNREFUSED'), { code: 'ECONNREFUSED' }),
  ];
  const reads = [];
  const result = await lane.run('role/app', async (attempt) => {
    if (attempt <= errors.length) throw errors[attempt - 1];
    return attempt;
  }, { read: async () => { reads.push(1); return null; } });
  assert.equal(result, 4);
  const classes = lane.events().filter((e) => e.type === 'retry_scheduled').map((e) => e.class);
  assert.deepEqual(classes, ['throttle', 'transient', 'transient']);
});

test('an unknown outcome is read back: a write that landed is not repeated', async () => {
  const lane = new Lane('iam', { seed: 1 });
  let state = 'v1';
  let writes = 0;
  const result = await lane.run('role/app', async () => {
    writes += 1;
    state = 'v2';
    throw Object.assign(new Error('socket hang up'), { code: 'ECONNRESET' });
  }, {
    read: async () => state,
    classify: (e) => (e.code === 'ECONNRESET' ? { outcomeUnknown: true, intendedToken: 'v2' } : null),
  });
  assert.equal(result, undefined);
  assert.equal(writes, 1);
  assert.equal(lane.stats().global.committed, 1);
});

test('classify maps errors the lane does not know', async () => {
  class Busy extends Error {}
  const lane = new Lane(quick(), {
    seed: 1,
    classify: (e) => (e instanceof Busy ? { code: 'ConcurrentModification' } : undefined),
  });
  const out = await lane.run('role/app', async (a) => { if (a === 1) throw new Busy('busy'); return a; });
  assert.equal(out, 2);
  await assert.rejects(lane.run('role/app', async () => { throw new Error('other'); }), (e) => e.reason === 'fatal');
  await assert.rejects(
    new Lane('iam', { classify: () => ({ status: 'x' }) }).run('role/a', async () => { throw new Error('e'); }),
    (e) => e instanceof UsageError && e.field === 'classify().status',
  );
});

test('an abort during back-off rejects promptly and releases the lane', async () => {
  const lane = new Lane(quick({ retry: { conflict: { base_ms: 10000, cap_ms: 10000, jitter: 'none' } } }), { seed: 1 });
  const controller = new AbortController();
  const t0 = performance.now();
  const first = lane.run('role/app', async () => { throw awsError('ConcurrentModification', 409); }, { signal: controller.signal });
  const second = lane.run('role/app', async () => performance.now() - t0);
  setTimeout(() => controller.abort(new Error('deploy cancelled')), 50);
  await assert.rejects(first, (e) => {
    assert.ok(e instanceof GaveUpError);
    assert.equal(e.reason, 'cancelled');
    assert.equal(e.cause.message, 'deploy cancelled');
    return true;
  });
  const elapsed = performance.now() - t0;
  assert.ok(elapsed < 1000, `rejected after ${elapsed} ms`);
  const secondAt = await second;
  assert.ok(secondAt < 1000, `the next writer started after ${secondAt} ms`);
  assert.equal(lane.stats().entities['role/app'].busy, false);
});

test('an abort while queued, or before the call, gives up without writing', async () => {
  const lane = new Lane('iam', { seed: 1 });
  let release;
  const holder = lane.run('role/app', () => new Promise((r) => { release = r; }));
  const controller = new AbortController();
  let wrote = false;
  const queued = lane.run('role/app', async () => { wrote = true; }, { signal: controller.signal });
  await sleep(5);
  controller.abort();
  await assert.rejects(queued, (e) => e.reason === 'cancelled' && e.attempts === 0);
  release('held');
  assert.equal(await holder, 'held');
  assert.equal(wrote, false);
  await assert.rejects(
    lane.run('role/app', async () => { wrote = true; }, { signal: AbortSignal.abort() }),
    (e) => e.reason === 'cancelled',
  );
  assert.equal(wrote, false);
});

test('an abort during a write holds the lane until the write settles, then gives up cancelled', async () => {
  // The lane cannot know whether an aborted write landed: it waits for the write (so no
  // other writer overlaps it), does not use its result, and the next writer reads first.
  const lane = new Lane('iam', { seed: 1 });
  const controller = new AbortController();
  const log = [];
  const run = lane.run('role/app', async (_, ctx) => {
    assert.equal(ctx.signal, controller.signal);
    controller.abort(new Error('deploy cancelled'));
    await sleep(10);
    log.push('first settled');
    ctx.setToken('t1');
    return 'landed';
  }, { signal: controller.signal, read: async () => 'v1' });
  const next = lane.run('role/app', async (_, ctx) => {
    log.push(`second writes on ${ctx.baseToken}`);
  }, { read: async () => 'v2' });
  await assert.rejects(run, (e) => {
    assert.ok(e instanceof GaveUpError, String(e));
    assert.equal(e.reason, 'cancelled');
    assert.equal(e.attempts, 1);
    assert.equal(e.cause.message, 'deploy cancelled');
    return true;
  });
  await next;
  assert.deepEqual(log, ['first settled', 'second writes on v2'], 'the token of the aborted write was not handed on');
});

test('bad arguments are refused with UsageError naming the field', async () => {
  const lane = new Lane('iam');
  const cases = [
    [() => lane.run('role/a', 'not a function'), 'write'],
    [() => lane.run(42, async () => {}), 'entity'],
    [() => lane.run('', async () => {}), 'entity'],
    [() => lane.run('x'.repeat(3000), async () => {}), 'entity'],
    [() => lane.run('role/a', async () => {}, { deadlineMs: -1 }), 'options.deadlineMs'],
    [() => lane.run('role/a', async () => {}, { deadlineMs: 1.5 }), 'options.deadlineMs'],
    [() => lane.run('role/a', async () => {}, { read: 'x' }), 'options.read'],
    [() => lane.run('role/a', async () => {}, { expected: 'v1' }), 'options.expected'],
    [() => lane.run('role/a', async () => {}, { read: async () => null, expected: 7 }), 'options.expected'],
    [() => lane.run('role/a', async () => {}, { signal: {} }), 'options.signal'],
    [() => lane.run('role/a', async () => {}, 'x'), 'options'],
  ];
  for (const [call, field] of cases) {
    await assert.rejects(call(), (e) => {
      assert.ok(e instanceof UsageError, `${field}: ${e}`);
      assert.equal(e.code, 'ERR_WRITELANE_USAGE');
      assert.equal(e.field, field);
      return true;
    });
  }
  await assert.rejects(lane.run('', async () => {}), (e) => e.kind === 'invalid_entity');
  assert.throws(() => new Lane('iam', { seed: -1 }), (e) => e instanceof UsageError && e.field === 'options.seed');
  assert.throws(() => new Lane('iam', { seed: 2 ** 53 }), (e) => e instanceof UsageError);
  assert.throws(() => new Lane('iam', { classify: 3 }), (e) => e instanceof UsageError && e.field === 'options.classify');
});

test('a read that resolves to a non-token is refused and the lane released', async () => {
  const lane = new Lane('iam', { seed: 1 });
  await assert.rejects(
    lane.run('role/app', async () => {}, { read: async () => 42 }),
    (e) => e instanceof UsageError && e.field === 'read()',
  );
  await assert.rejects(
    lane.run('role/app', async () => {}, { read: async () => 'x'.repeat(2000) }),
    (e) => e instanceof UsageError && e.kind === 'invalid_token',
  );
  assert.equal(await lane.run('role/app', async () => 'next'), 'next');
  assert.equal(lane.stats().entities['role/app'].busy, false);
});

test('bad policies are refused with PolicyError naming the field', () => {
  const cases = [
    [() => new Lane(42), '$'],
    [() => new Lane([1]), '$'],
    [() => new Lane('fast'), 'preset'],
    [() => new Lane('{"retry": '), '$'],
    [() => new Lane({ deadline_ms: Number.NaN }), 'deadline_ms'],
    [() => new Lane({ retry: { conflict: { base_ms: 10n } } }), 'retry.conflict.base_ms'],
    [() => new Lane({ retry: { conflict: { base_ms: '10' } } }), 'retry.conflict.base_ms'],
    [() => new Lane({ codes: { conflict: [() => 1] } }), 'codes.conflict[0]'],
    [() => new Lane({ budget: new Map() }), 'budget'],
    [() => Policy.preset('nope'), 'preset'],
    [() => Policy.preset(5), 'preset'],
    [() => Policy.preset('iam', { preset: 'aws-standard' }), 'preset'],
    [() => Policy.preset('iam', 'x'), '$'],
    [() => Policy.fromJSON({}), '$'],
    [() => Policy.fromJSON('{"tokens": {"validate": "yes"}}'), 'tokens.validate'],
  ];
  for (const [build, path] of cases) {
    assert.throws(build, (e) => {
      assert.ok(e instanceof PolicyError, `${path}: ${e}`);
      assert.ok(e instanceof WritelaneError && e instanceof Error);
      assert.equal(e.code, 'ERR_WRITELANE_POLICY');
      assert.equal(e.path, path);
      assert.ok(e.message.includes(path));
      return true;
    });
  }
});

test('a token reported with setToken is handed to the next writer, which writes without reading', async () => {
  const lane = new Lane(quick(), { seed: 1 });
  let reads = 0;
  const read = async () => {
    reads += 1;
    return 'v0';
  };
  let release;
  const gate = new Promise((r) => { release = r; });
  const first = lane.run('role/app', async (attempt, ctx) => {
    assert.equal(ctx.baseToken, 'v0');
    await gate;
    ctx.setToken('t1');
    return 'first';
  }, { read });
  const seen = [];
  const second = lane.run('role/app', async (attempt, ctx) => {
    seen.push({ reads, base: ctx.baseToken });
    return 'second';
  }, { read });
  await sleep(5);
  release();
  assert.deepEqual(await Promise.all([first, second]), ['first', 'second']);
  assert.deepEqual(seen, [{ reads: 1, base: 't1' }], 'the queued writer skipped its read');
  // The second writer reported no token: the next one has to read.
  assert.equal(lane.stats().entities['role/app'].committed_token, null);
  await lane.run('role/app', async (attempt, ctx) => assert.equal(ctx.baseToken, 'v0'), { read });
  assert.equal(reads, 2, 'after a commit with no token the next writer reads');
});

test('only the attempt that commits reports its token; a context outlives its attempt in vain', async () => {
  const lane = new Lane(quick(), { seed: 1 });
  const contexts = [];
  await lane.run('role/app', async (attempt, ctx) => {
    contexts.push(ctx);
    if (attempt === 1) {
      ctx.setToken('t-failed');
      throw awsError('ConcurrentModification', 409);
    }
    ctx.setToken('t2');
  }, { read: async () => 'v1' });
  assert.equal(contexts.length, 2);
  assert.notEqual(contexts[0], contexts[1], 'a new context for every attempt');
  contexts[1].setToken('t-late');
  let base;
  await lane.run('role/app', async (attempt, ctx) => { base = ctx.baseToken; });
  assert.equal(base, 't2');
});

test('setToken with a non-string is a UsageError naming token, even if the write catches it', async () => {
  const lane = new Lane('iam', { seed: 1 });
  let writes = 0;
  for (const bad of [42, null, undefined, { token: 't' }, Symbol('t')]) {
    await assert.rejects(lane.run('role/app', async (attempt, ctx) => {
      writes += 1;
      ctx.setToken(bad);
    }), (e) => {
      assert.ok(e instanceof UsageError, String(e));
      assert.equal(e.code, 'ERR_WRITELANE_USAGE');
      assert.equal(e.kind, 'invalid_argument');
      assert.equal(e.field, 'token');
      return true;
    });
  }
  assert.equal(writes, 5, 'no retry after a misuse');
  await assert.rejects(lane.run('role/app', async (attempt, ctx) => {
    try {
      ctx.setToken(7);
    } catch (e) {
      assert.ok(e instanceof UsageError);
    }
  }), (e) => e instanceof UsageError && e.field === 'token');
  await assert.rejects(
    lane.run('role/app', async (attempt, ctx) => ctx.setToken('x'.repeat(2000))),
    (e) => e instanceof UsageError && e.kind === 'invalid_token' && e.field === 'token',
  );
  assert.equal(await lane.run('role/app', async () => 'next'), 'next');
  assert.equal(lane.stats().entities['role/app'].busy, false);
});

test('policies: presets, overrides, JSON text and round trips', () => {
  const p = Policy.preset('aws-standard', { retry: { throttle: { jitter: 'none' } } });
  assert.equal(p.preset, 'aws-standard');
  assert.equal(p.toJSON().retry.throttle.jitter, 'none');
  assert.equal(p.toJSON().retry.throttle.base_ms, 1000);
  assert.deepEqual(Policy.fromJSON(p.toString()).toJSON(), p.toJSON());
  assert.equal(new Lane().policy.preset, 'iam');
  assert.equal(new Lane('aws-standard').policy.preset, 'aws-standard');
  assert.equal(new Lane('"aws-standard"').policy.preset, 'aws-standard');
  assert.equal(new Lane(p).policy, p);
  assert.equal(new Lane({ retry: { conflict: { max_attempts: 4 } } }).policy.toJSON().retry.conflict.max_attempts, 4);
  assert.throws(() => new Policy(), UsageError);
});

test('exported state carries committed tokens to another lane', async () => {
  const a = new Lane('iam', { seed: 1 });
  await a.run('role/app', async () => {}, { read: async () => 'v1' });
  const state = a.exportState();
  assert.equal(state.version, 1);
  const b = new Lane('iam', { seed: 1 });
  b.importState(state);
  assert.throws(() => b.importState({ version: 99 }), (e) => e instanceof UsageError && e.field === 'state');
});

test('failureFromError reads AWS SDK v3 errors', () => {
  assert.deepEqual(failureFromError(awsError('ConcurrentModification', 409)),
    { code: 'ConcurrentModification', status: 409, retryAfterMs: null, outcomeUnknown: false });
  const named = Object.assign(new Error('x'), { name: 'ThrottlingException', $metadata: { httpStatusCode: 400 } });
  assert.equal(failureFromError(named).code, 'ThrottlingException');
  const hinted = awsError('Throttling', 400, { $response: { statusCode: 400, headers: { 'X-Amz-Retry-After': '1500' } } });
  assert.equal(failureFromError(hinted).retryAfterMs, 1500);
  const junkHint = awsError('Throttling', 400, { $response: { headers: { 'x-amz-retry-after': 'soon' } } });
  assert.equal(failureFromError(junkHint).retryAfterMs, null);
  const modelled = awsError('Whatever', 400, { $retryable: { throttling: true } });
  assert.equal(failureFromError(modelled).status, 429);
  const modelledTransient = awsError('Whatever', 400, { $retryable: {} });
  assert.equal(failureFromError(modelledTransient).status, 503);
  const reset = Object.assign(new Error('socket hang up'), { code: 'ECONNRESET', $metadata: {} });
  assert.equal(failureFromError(reset).outcomeUnknown, true);
  const timeout = Object.assign(new Error('timed out'), { name: 'TimeoutError' });
  assert.equal(failureFromError(timeout).outcomeUnknown, true);
  const refused = Object.assign(new Error('connect'), { code: 'ECONNREFUSED' });
  assert.equal(failureFromError(refused).code, 'ConnectionError');
  const aborted = Object.assign(new Error('aborted'), { name: 'AbortError', $metadata: {} });
  assert.deepEqual(failureFromError(aborted), { code: null, status: null, retryAfterMs: null, outcomeUnknown: false });
  assert.equal(failureFromError(new TypeError('bug')).code, null);
  assert.equal(failureFromError('a string').code, null);
  assert.equal(failureFromError(null).code, null);
});

test('an idle lane\'s cool-down timer does not keep the process alive', () => {
  const script = `
    const { Lane } = require(${JSON.stringify(path.resolve(__dirname, '..'))});
    const lane = new Lane({ spike: { threshold: 1, cooldown_ms: 60000 },
      retry: { conflict: { base_ms: 1, cap_ms: 1, jitter: 'none' } } }, { seed: 1 });
    const conflict = Object.assign(new Error('c'), { name: 'ConcurrentModification', $metadata: { httpStatusCode: 409 } });
    lane.run('role/a', async (a) => { if (a === 1) throw conflict; return a; })
      .then((a) => console.log('done', a, lane.stats().global.spikes), (e) => { console.error(e); process.exit(1); });
  `;
  const t0 = Date.now();
  const out = spawnSync(process.execPath, ['-e', script], { encoding: 'utf8', timeout: 30000 });
  assert.equal(out.status, 0, out.stderr);
  assert.match(out.stdout, /done 2 1/);
  assert.ok(Date.now() - t0 < 20000, 'exited without waiting for the cool-down');
});

test('an abort from another task while a run is waking cancels it cleanly', async () => {
  // Both writes back off until the same timer; when it fires, the first woken run aborts
  // the second before the second's continuation has run.
  const lane = new Lane(quick({ retry: { conflict: { base_ms: 50, cap_ms: 50, jitter: 'none' } } }), { seed: 1 });
  const controller = new AbortController();
  let secondWrites = 0;
  const first = lane.run('role/a', async (attempt) => {
    if (attempt === 1) throw awsError('ConcurrentModification', 409);
    controller.abort();
    return 'first';
  });
  const second = lane.run('role/b', async (attempt) => {
    secondWrites += 1;
    if (attempt === 1) throw awsError('ConcurrentModification', 409);
    return 'second';
  }, { signal: controller.signal });
  assert.equal(await first, 'first');
  await assert.rejects(second, (e) => e instanceof GaveUpError && e.reason === 'cancelled');
  assert.equal(secondWrites, 1, 'the cancelled run did not write again');
  assert.equal(lane.stats().active_ops, 0);
});
