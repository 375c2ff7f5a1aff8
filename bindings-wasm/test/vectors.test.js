'use strict';
// Every conformance vector in tests/vectors/ and tests/vectors-lease/ (shared lanes, with a
// top-level "owner"), run through the public JavaScript API:
// engine vectors through `Engine`, strategy vectors through the SDK-facing
// `RetryStrategy` (failures become AWS SDK v3 errors), policy errors through `Policy` and
// `Lane`, tokens through `policyToken`. Results must be identical to Rust and Python.

const { test } = require('node:test');
const assert = require('node:assert/strict');
const fs = require('node:fs');
const path = require('node:path');
const {
  Engine, Lane, Policy, RetryStrategy, policyToken,
  UsageError, PolicyError, TokenError, RetryRefusedError,
} = require('..');

const dir = path.resolve(__dirname, '../../tests/vectors');
const leaseDir = path.resolve(__dirname, '../../tests/vectors-lease');
const list = (d) => (fs.existsSync(d) ? fs.readdirSync(d).filter((f) => f.endsWith('.json')).sort().map((f) => path.join(d, f)) : []);
const files = [...list(dir), ...list(leaseDir)];

test('vector files are present', () => {
  assert.ok(list(dir).length > 0, `no vector files in ${dir}`);
  // Shared-lane vectors live in tests/vectors-lease/ until every binding runs them, then
  // move into tests/vectors/: either way some must be found.
  assert.ok(files.some((f) => JSON.parse(fs.readFileSync(f, 'utf8')).owner !== undefined), 'no shared-lane vectors (with an owner) found');
});

/** Build the error an AWS SDK v3 client throws for a failure in the vectors' form. */
function sdkError(failure) {
  if (failure.outcome_unknown) {
    return Object.assign(new Error('socket hang up'), { code: 'ECONNRESET', $metadata: {} });
  }
  const error = new Error(failure.code ?? 'service error');
  if (failure.code !== undefined) error.name = failure.code;
  error.$fault = failure.status !== undefined && failure.status >= 500 ? 'server' : 'client';
  error.$metadata = failure.status !== undefined ? { httpStatusCode: failure.status } : {};
  if (failure.retry_after_ms !== undefined) {
    error.$response = { statusCode: failure.status, headers: { 'x-amz-retry-after': String(failure.retry_after_ms) } };
  }
  return error;
}

function drain(engine) {
  const commands = [];
  for (let c = engine.pollCommand(); c !== null; c = engine.pollCommand()) commands.push(c);
  const events = [];
  for (let e = engine.pollEvent(); e !== null; e = engine.pollEvent()) events.push(e);
  return { commands, events };
}

function runEngine(v) {
  const engine = new Engine(JSON.stringify(v.policy), { seed: v.seed, owner: v.owner });
  if (v.import_state !== undefined) engine.importState(v.import_state);
  v.steps.forEach((step, i) => {
    const where = `step ${i} at ${step.at}`;
    let error = null;
    try {
      if (step.submit !== undefined) {
        const s = step.submit;
        const op = engine.submit(s.entity, step.at, {
          expected: s.expected, deadlineMs: s.deadline_ms, holder: s.holder, noRead: s.no_read,
        });
        if (step.op !== undefined) assert.equal(op, step.op, `${where}: op id`);
      } else if (step.input !== undefined) {
        engine.handle(step.at, step.input);
      } else if (step.timeout) {
        engine.handleTimeout(step.at);
      } else {
        assert.fail(`${where}: no action`);
      }
    } catch (e) {
      if (!(e instanceof UsageError)) throw e;
      error = e;
    }
    if (step.error !== undefined) {
      assert.ok(error !== null, `${where}: expected usage error ${step.error}`);
      assert.equal(error.kind, step.error, `${where}: usage-error kind`);
      assert.equal(error.code, 'ERR_WRITELANE_USAGE');
    } else if (error !== null) {
      throw error;
    }
    const { commands, events } = drain(engine);
    assert.deepEqual(commands, step.commands ?? [], `${where}: commands`);
    assert.deepEqual(events, step.events ?? [], `${where}: events`);
    if ('next_timeout' in step) assert.equal(engine.pollTimeout(), step.next_timeout, `${where}: next timeout`);
  });
  if (v.final_stats !== undefined) {
    const stats = engine.stats();
    assert.deepEqual({ global: stats.global, budget: stats.budget }, v.final_stats, 'final stats');
  }
}

async function runStrategy(v) {
  let now = 0;
  const strategy = new RetryStrategy(JSON.stringify(v.policy), { seed: v.seed, now: () => now });
  const tokens = new Map();
  for (const [i, step] of v.steps.entries()) {
    const where = `step ${i} at ${step.at}`;
    now = step.at;
    if (step.acquire !== undefined) {
      tokens.set(step.acquire.token, await strategy.acquireInitialRetryToken(step.acquire.scope));
    } else if (step.refresh !== undefined) {
      const token = tokens.get(step.refresh.token);
      const error = sdkError(step.refresh.failure);
      try {
        const next = await strategy.refreshRetryTokenForRetry(token, { error, errorType: 'CLIENT_ERROR' });
        assert.deepEqual(
          { delay_ms: next.getRetryDelay(), cost: next.getRetryCost(), class: next.errorClass },
          step.result,
          `${where}: result`,
        );
        assert.equal(next.getRetryCount(), token.getRetryCount() + 1);
        tokens.set(step.refresh.token, next);
      } catch (e) {
        if (!(e instanceof RetryRefusedError)) throw e;
        assert.deepEqual({ refused: e.reason }, step.result, `${where}: refusal`);
        assert.equal(e.cause, error, `${where}: the refusal carries the SDK error`);
      }
    } else if (step.success !== undefined) {
      strategy.recordSuccess(tokens.get(step.success.token));
    } else {
      assert.fail(`${where}: no action`);
    }
    assert.equal(strategy.capacity(step.capacity.scope), step.capacity.level, `${where}: capacity`);
  }
}

function runPolicyError(v) {
  const text = JSON.stringify(v.policy);
  for (const build of [() => Policy.fromJSON(text), () => new Lane(text), () => new Lane(v.policy), () => new Engine(v.policy)]) {
    assert.throws(build, (e) => {
      assert.ok(e instanceof PolicyError, `expected PolicyError, got ${e}`);
      assert.equal(e.code, 'ERR_WRITELANE_POLICY');
      assert.equal(e.path, v.error.path);
      assert.ok(e.message.includes(v.error.rule), `${e.message} should contain ${v.error.rule}`);
      return true;
    });
  }
}

function runToken(v) {
  if (v.error !== undefined) {
    assert.throws(() => policyToken(v.document), (e) => {
      assert.ok(e instanceof TokenError, `expected TokenError, got ${e}`);
      assert.equal(e.path, v.error.path);
      return true;
    });
  } else {
    assert.equal(policyToken(v.document), v.token);
  }
}

for (const file of files) {
  const v = JSON.parse(fs.readFileSync(file, 'utf8'));
  test(`vector ${path.relative(path.resolve(dir, '..'), file)}`, async () => {
    switch (v.kind) {
      case 'engine': return runEngine(v);
      case 'strategy': return runStrategy(v);
      case 'policy_error': return runPolicyError(v);
      case 'token': return runToken(v);
      default: return assert.fail(`unknown vector kind ${v.kind}`);
    }
  });
}
