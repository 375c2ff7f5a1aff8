'use strict';
// writelane/otel with the real OpenTelemetry SDKs (a metric reader collected in memory,
// sdk-trace-base's InMemorySpanExporter), after runs of @aws-sdk/client-iam against the
// IAM contention lab: conflicts counted, a spike raised by a conflict storm, writes equal
// to what the lab counted, spans carrying the entity and the events.

const { test, before, after } = require('node:test');
const assert = require('node:assert/strict');
const { createHash } = require('node:crypto');
const { execFileSync } = require('node:child_process');
const path = require('node:path');
const api = require('@opentelemetry/api');
const { MeterProvider, MetricReader } = require('@opentelemetry/sdk-metrics');
const { BasicTracerProvider, InMemorySpanExporter, SimpleSpanProcessor } = require('@opentelemetry/sdk-trace-base');
const { AsyncLocalStorageContextManager } = require('@opentelemetry/context-async-hooks');
const {
  IAMClient, CreateRoleCommand, GetRolePolicyCommand, PutRolePolicyCommand,
} = require('@aws-sdk/client-iam');
const {
  Lane, MemoryStore, policyToken, GaveUpError, UsageError,
} = require('..');
const { instrument } = require('../js/otel.js');
const { version } = require('../package.json');
const { startLab } = require('./helpers/iamlab');

const POLICY_NAME = 'inline';
/** Small backoffs and a spike after 3 conflicts in a minute, cooled down for 50 ms. */
const FAST = {
  preset: 'iam', retry: { conflict: { base_ms: 5, cap_ms: 20 } }, spike: { threshold: 3, window_ms: 60000, cooldown_ms: 50 },
};
const TRUST = JSON.stringify({ Version: '2012-10-17', Statement: [] });
const sleep = (ms) => new Promise((resolve) => { setTimeout(resolve, ms); });

let lab;

before(async () => {
  lab = await startLab({ serviceMs: 20 });
  // What the Node SDK registers: without a context manager no span is ever active.
  api.context.setGlobalContextManager(new AsyncLocalStorageContextManager().enable());
});

after(async () => {
  if (lab) await lab.stop();
});

class Reader extends MetricReader {
  async onForceFlush() {}

  async onShutdown() {}
}

/** Providers with in-memory collection, and what they collected. */
class Otel {
  constructor() {
    this.reader = new Reader();
    this.meters = new MeterProvider({ readers: [this.reader] });
    this.exporter = new InMemorySpanExporter();
    this.tracers = new BasicTracerProvider({ spanProcessors: [new SimpleSpanProcessor(this.exporter)] });
  }

  instrument(lane, options = {}) {
    return instrument(lane, { meterProvider: this.meters, tracerProvider: this.tracers, ...options });
  }

  /** The writelane scope's metrics by name. */
  async metrics() {
    const { resourceMetrics, errors } = await this.reader.collect();
    assert.deepEqual(errors, []);
    const out = new Map();
    for (const sm of resourceMetrics.scopeMetrics) {
      if (sm.scope.name !== 'writelane') continue;
      assert.equal(sm.scope.version, version);
      for (const m of sm.metrics) out.set(m.descriptor.name, m);
    }
    return out;
  }

  async points(name) {
    return (await this.metrics()).get(name)?.dataPoints ?? [];
  }

  /** Sum of a counter's points whose attributes include `attrs` (a histogram's count). */
  async total(name, attrs = {}) {
    let total = 0;
    for (const p of await this.points(name)) {
      if (Object.entries(attrs).every(([k, v]) => p.attributes[k] === v)) {
        total += typeof p.value === 'number' ? p.value : p.value.count;
      }
    }
    return total;
  }

  spans() {
    return this.exporter.getFinishedSpans().filter((s) => s.name === 'writelane.run');
  }
}

function client() {
  return new IAMClient({
    region: 'us-east-1',
    endpoint: lab.endpoint,
    credentials: { accessKeyId: 'testing', secretAccessKey: 'testing' },
    maxAttempts: 1,
  });
}

async function newRole(name) {
  const iam = client();
  await iam.send(new CreateRoleCommand({ RoleName: name, AssumeRolePolicyDocument: TRUST }));
  await lab.reset();
  return iam;
}

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

const statement = (sid) => ({ Sid: sid, Effect: 'Allow', Action: 's3:GetObject', Resource: `arn:aws:s3:::b/${sid}` });

/** One read-modify-write of the role's inline policy. */
async function append(iam, role, sid) {
  const text = await getDocument(iam, role);
  const doc = text === null ? { Version: '2012-10-17', Statement: [] } : JSON.parse(text);
  const list = Array.isArray(doc.Statement) ? doc.Statement : [doc.Statement];
  await iam.send(new PutRolePolicyCommand({
    RoleName: role, PolicyName: POLICY_NAME, PolicyDocument: JSON.stringify({ ...doc, Statement: [...list, statement(sid)] }),
  }));
}

function reader(iam, role) {
  return async () => {
    const text = await getDocument(iam, role);
    return text === null ? null : policyToken(text);
  };
}

const names = (span) => span.events.map((e) => e.name);

test('injected conflicts are counted and raise a spike', async () => {
  const role = 'otel-injected';
  const iam = await newRole(role);
  const entity = `role/${role}`;
  const otel = new Otel();
  const lane = new Lane(FAST, { seed: 11 });
  otel.instrument(lane);
  await lab.config({ inject_conflicts: 3 });
  const attempts = await lane.run(entity, async (attempt) => {
    await append(iam, role, 'X');
    return attempt;
  }, { read: reader(iam, role) });
  assert.equal(attempts, 4);
  const stats = await lab.stats();
  assert.equal(stats.conflicts, 3);
  assert.equal(stats.writes, 1);
  // Every attempt the engine commanded reached the lab: accepted or refused.
  assert.equal(await otel.total('writelane.writes'), stats.writes + stats.conflicts);
  assert.equal(await otel.total('writelane.conflicts'), 3);
  assert.equal(await otel.total('writelane.retries'), 3);
  assert.equal(await otel.total('writelane.spikes'), 1);
  assert.equal(await otel.total('writelane.give_ups'), 0);
  assert.equal(await otel.total('writelane.budget.refusals'), 0);
  assert.equal(await otel.total('writelane.write.duration'), 4);
  const [durations] = await otel.points('writelane.write.duration');
  assert.ok(durations.value.max >= 0.02, 'the lab holds the accepted write 20 ms');
  assert.deepEqual(durations.value.buckets.boundaries.slice(0, 3), [0.005, 0.01, 0.025], 'buckets in seconds');
  assert.equal(await otel.total('writelane.lane.wait.duration'), 1);
  assert.ok((await otel.points('writelane.conflicts')).every((p) => Object.keys(p.attributes).length === 0), 'no entity on metrics by default');
  const [level] = await otel.points('writelane.budget.level');
  assert.equal(level.value, lane.stats().budget);
  assert.ok(level.value < 500);

  const [span, ...more] = otel.spans();
  assert.equal(more.length, 0);
  assert.equal(span.kind, api.SpanKind.INTERNAL);
  assert.equal(span.status.code, api.SpanStatusCode.UNSET);
  assert.equal(span.instrumentationScope.name, 'writelane');
  assert.equal(span.attributes['writelane.entity'], entity);
  assert.equal(span.attributes['writelane.attempts'], 4);
  const seen = names(span);
  assert.equal(seen.filter((n) => n === 'writelane.attempt').length, 4);
  assert.equal(seen.filter((n) => n === 'writelane.conflict').length, 3);
  assert.equal(seen.filter((n) => n === 'writelane.backoff').length, 3);
  assert.equal(seen.filter((n) => n === 'writelane.spike_started').length, 1);
  assert.deepEqual(span.events.filter((e) => e.name === 'writelane.attempt').map((e) => e.attributes['writelane.attempt']), [1, 2, 3, 4]);
  assert.ok(span.events.filter((e) => e.name === 'writelane.backoff').every((e) => e.attributes['writelane.backoff.delay_ms'] >= 0));
  // Each conflict comes between the attempt it follows and the next.
  const at = (name) => seen.flatMap((n, i) => (n === name ? [i] : []));
  const [tries, conflicts] = [at('writelane.attempt'), at('writelane.conflict')];
  for (let k = 0; k < 3; k++) assert.ok(tries[k] < conflicts[k] && conflicts[k] < tries[k + 1], seen.join(' '));
});

test('a conflict storm from writers without a lane', async () => {
  const role = 'otel-storm';
  const iam = await newRole(role);
  const entity = `role/${role}`;
  const otel = new Otel();
  const lane = new Lane({ ...FAST, spike: { threshold: 2, window_ms: 60000, cooldown_ms: 20 } }, { seed: 12 });
  otel.instrument(lane);
  let stop = false;
  let naive = 0;
  const hammer = async (t) => { // no discipline at all, paced so the lab answers everyone
    while (!stop) {
      naive += 1;
      try {
        await iam.send(new PutRolePolicyCommand({
          RoleName: role, PolicyName: 'naive', PolicyDocument: JSON.stringify({ Version: '2012-10-17', Statement: [statement(`N${t}`)] }),
        }));
      } catch (e) {
        assert.equal(e.name, 'ConcurrentModificationException', `unexpected ${e}`);
      }
      await sleep(10);
    }
  };
  const hammers = Array.from({ length: 4 }, (_, t) => hammer(t));
  await sleep(100);
  // One writer through the lane, run after run, while the storm goes on.
  const RUNS = 4;
  const outcomes = [];
  try {
    for (let n = 0; n < RUNS; n++) {
      try {
        await lane.run(entity, () => append(iam, role, `L${n}`), { read: reader(iam, role) });
        outcomes.push('committed');
      } catch (e) {
        if (!(e instanceof GaveUpError)) throw e;
        outcomes.push(e.reason);
      }
    }
  } finally {
    stop = true;
    await Promise.all(hammers);
  }
  const g = lane.stats().global;
  const stats = (await lab.stats()).entities[entity];
  assert.ok(g.conflicts > 0, 'the storm must hit the lane\'s writes');
  assert.equal(await otel.total('writelane.conflicts'), g.conflicts);
  assert.equal(await otel.total('writelane.writes'), g.writes);
  assert.equal(await otel.total('writelane.retries'), g.retries);
  assert.equal(await otel.total('writelane.spikes'), g.spikes);
  assert.ok(g.spikes >= 1, 'a spike was raised');
  // The lab saw every attempt of both kinds of writer, accepted or refused.
  assert.equal(stats.writes + stats.conflicts, await otel.total('writelane.writes') + naive);
  const gaveUp = outcomes.filter((o) => o !== 'committed');
  assert.equal(await otel.total('writelane.give_ups'), gaveUp.length);
  for (const reason of new Set(gaveUp)) {
    assert.equal(await otel.total('writelane.give_ups', { 'error.type': reason }), gaveUp.filter((o) => o === reason).length);
  }
  assert.equal(await otel.total('writelane.lane.wait.duration'), RUNS, 'one writer: every run had the lane at once');
  const spans = otel.spans();
  assert.equal(spans.length, RUNS);
  assert.ok(spans.every((s) => s.attributes['writelane.entity'] === entity));
  const count = (name) => spans.reduce((n, s) => n + names(s).filter((x) => x === name).length, 0);
  assert.equal(count('writelane.attempt'), g.writes);
  assert.equal(count('writelane.conflict'), g.conflicts);
  assert.equal(spans.reduce((n, s) => n + s.attributes['writelane.attempts'], 0), g.writes);
  assert.ok(count('writelane.spike_started') >= 1);
});

test('a give-up is the span\'s error', async () => {
  const iam = client();
  const otel = new Otel();
  const lane = new Lane('iam', { seed: 13 });
  otel.instrument(lane, { entityAttribute: 'name' });
  const entity = 'role/otel-absent';
  const error = await lane.run(entity, () => iam.send(new PutRolePolicyCommand({
    RoleName: 'otel-absent', PolicyName: 'p', PolicyDocument: JSON.stringify({ Version: '2012-10-17', Statement: [statement('A')] }),
  }))).then(() => null, (e) => e);
  assert.ok(error instanceof GaveUpError);
  assert.equal(error.reason, 'fatal');
  assert.equal(await otel.total('writelane.give_ups', { 'error.type': 'fatal', 'writelane.entity': entity }), 1);
  assert.equal(await otel.total('writelane.writes', { 'writelane.entity': entity }), 1);
  const [span] = otel.spans();
  assert.equal(span.status.code, api.SpanStatusCode.ERROR);
  assert.equal(span.status.message, error.message);
  assert.equal(span.attributes['error.type'], 'fatal');
  assert.equal(span.attributes['writelane.attempts'], 1);
});

test('runs that contend for the lane: waits recorded, spans parent the SDK calls', async () => {
  const role = 'otel-contend';
  const iam = await newRole(role);
  const entity = `role/${role}`;
  const otel = new Otel();
  const lane = new Lane('iam', { seed: 14 });
  otel.instrument(lane);
  const tracer = otel.tracers.getTracer('user');
  await Promise.all(Array.from({ length: 4 }, (_, t) => lane.run(entity, () => tracer.startActiveSpan('append', async (child) => {
    await append(iam, role, `C${t}`);
    child.end();
  }), { read: reader(iam, role) })));
  const stats = await lab.stats();
  assert.equal(await otel.total('writelane.writes'), stats.writes + stats.conflicts);
  assert.equal(stats.writes, 4);
  assert.equal(await otel.total('writelane.conflicts'), 0);
  const [waits] = await otel.points('writelane.lane.wait.duration');
  assert.equal(waits.value.count, 4);
  assert.ok(waits.value.sum > 0, 'three of the four runs waited for the lane');
  const spans = otel.spans();
  assert.equal(spans.length, 4);
  assert.ok(spans.every((s) => names(s).join() === 'writelane.attempt'));
  const children = otel.exporter.getFinishedSpans().filter((s) => s.name === 'append');
  assert.equal(children.length, 4);
  const runIds = new Set(spans.map((s) => s.spanContext().spanId));
  assert.ok(children.every((c) => runIds.has(c.parentSpanContext?.spanId ?? c.parentSpanId)), 'each SDK call is a child of its run');
});

test('entity attribute modes and the allow-list', async () => {
  const otel = new Otel();
  const [named, hashed, plain] = [new Lane('iam', { seed: 1 }), new Lane('iam', { seed: 2 }), new Lane('iam', { seed: 3 })];
  otel.instrument(named, { entityAttribute: 'name' });
  otel.instrument(hashed, { entityAttribute: 'hash' });
  otel.instrument(plain, { entityAllowlist: ['role/vip'] });
  await named.run('role/a', async () => 1);
  await hashed.run('role/a', async () => 1);
  await plain.run('role/vip', async () => 1);
  await plain.run('role/other', async () => 1);
  const digest = createHash('sha256').update('role/a').digest('hex').slice(0, 16);
  assert.equal(await otel.total('writelane.writes'), 4);
  assert.equal(await otel.total('writelane.writes', { 'writelane.entity': 'role/a' }), 1);
  assert.equal(await otel.total('writelane.writes', { 'writelane.entity.hash': digest }), 1);
  assert.equal(await otel.total('writelane.writes', { 'writelane.entity': 'role/vip' }), 1);
  const attrs = (await otel.points('writelane.writes')).map((p) => p.attributes);
  assert.equal(attrs.length, 4);
  assert.ok(attrs.some((a) => Object.keys(a).length === 0));
  assert.deepEqual(otel.spans().map((s) => s.attributes['writelane.entity']).sort(), ['role/a', 'role/a', 'role/other', 'role/vip']);
  const [level] = await otel.points('writelane.budget.level');
  assert.equal(level.value, Math.min(...[named, hashed, plain].map((l) => l.stats().budget)));
});

test('shared lanes time the wait to the lease', async () => {
  const otel = new Otel();
  const store = new MemoryStore();
  const first = new Lane('iam', { seed: 8, store, owner: 'first:1:a' });
  const second = new Lane('iam', { seed: 9, store, owner: 'second:1:b' });
  otel.instrument(first);
  otel.instrument(second);
  let release;
  let held;
  const holding = new Promise((resolve) => { held = resolve; });
  const one = first.run('role/shared', () => {
    held();
    return new Promise((resolve) => { release = resolve; });
  });
  await holding;
  const two = second.run('role/shared', async () => 2);
  await sleep(300); // the second lane finds the lease held and queues for it
  release(1);
  assert.deepEqual(await Promise.all([one, two]), [1, 2]);
  const [waits] = await otel.points('writelane.lane.wait.duration');
  assert.equal(waits.value.count, 2, 'one wait per lease acquired');
  assert.ok(waits.value.max >= 0.25, "the second lane waited for the first lane's lease");
  assert.equal(await otel.total('writelane.writes'), 2);
  assert.equal(otel.spans().length, 2);
});

test('bad options name the option', () => {
  const otel = new Otel();
  const lane = new Lane('iam', { seed: 6 });
  assert.throws(() => otel.instrument(lane, { entityAttribute: 'names' }), (e) => e instanceof UsageError && e.field === 'options.entityAttribute');
  assert.throws(() => otel.instrument(lane, { entityAllowlist: 'role/a' }), (e) => e instanceof UsageError && e.field === 'options.entityAllowlist');
  assert.throws(() => instrument({}), (e) => e instanceof UsageError && e.field === 'lane');
  assert.throws(() => new Lane('iam', { telemetry: 'yes' }), (e) => e instanceof UsageError && e.field === 'options.telemetry');
  otel.instrument(lane);
  assert.throws(() => otel.instrument(lane), /already on/);
});

test('telemetry: true reports to the global providers', async () => {
  const otel = new Otel();
  api.metrics.setGlobalMeterProvider(otel.meters);
  api.trace.setGlobalTracerProvider(otel.tracers);
  const lane = new Lane('iam', { seed: 7, telemetry: true });
  await lane.run('role/g', async () => 1);
  assert.equal(await otel.total('writelane.writes'), 1);
  assert.equal(otel.spans().length, 1);
});

test('ESM: writelane/otel loads and instruments', () => {
  const root = path.resolve(__dirname, '..');
  const out = execFileSync(process.execPath, ['--input-type=module', '-e', `
    import { Lane } from ${JSON.stringify(path.join(root, 'js/index.mjs'))};
    import { instrument } from ${JSON.stringify(path.join(root, 'js/otel.mjs'))};
    const lane = new Lane('iam', { seed: 1 });
    instrument(lane);
    console.log(await lane.run('role/esm', async () => 'ok'));
  `], { encoding: 'utf8' });
  assert.equal(out.trim(), 'ok');
});

test('with telemetry off nothing of OpenTelemetry is loaded', () => {
  const root = path.resolve(__dirname, '..');
  const out = execFileSync(process.execPath, ['-e', `
    const { Lane } = require(${JSON.stringify(root)});
    new Lane('iam', { seed: 1 }).run('role/off', async () => 1).then(() => {
      console.log(JSON.stringify(Object.keys(require.cache).filter((f) => f.includes('opentelemetry') || f.endsWith('otel.js'))));
    });
  `], { encoding: 'utf8' });
  assert.equal(out.trim(), '[]');
});
