'use strict';
/**
 * OpenTelemetry for a `Lane`: metrics, one span per run. Switch it on with
 * `instrument(lane, options)` from `writelane/otel`, or `new Lane(policy, { telemetry: true })`
 * (or `telemetry: options`). Needs `@opentelemetry/api` (an optional peer dependency): with
 * telemetry off this module is never loaded.
 *
 * Everything comes from the events the engine records (the ones `lane.events()` drains),
 * except the write attempts themselves, which are counted and timed where the write is
 * called. Instrumentation scope `writelane`, version the package's. Metrics:
 *
 * | name                            | unit        | what                                                  |
 * |---------------------------------|-------------|-------------------------------------------------------|
 * | `writelane.writes`              | {write}     | entity writes the engine commanded (every attempt)    |
 * | `writelane.conflicts`           | {conflict}  | writes refused as conflicts                           |
 * | `writelane.retries`             | {retry}     | retries scheduled                                     |
 * | `writelane.give_ups`            | {operation} | runs that gave up, `error.type` = the reason          |
 * | `writelane.budget.refusals`     | {retry}     | retries the retry budget refused                      |
 * | `writelane.spikes`              | {spike}     | conflict spikes started                               |
 * | `writelane.lane.wait.duration`  | s           | submit to the lane (shared lanes: the lease) granted  |
 * | `writelane.write.duration`      | s           | one write attempt, called to settled                  |
 * | `writelane.budget.level`        | {token}     | the lane's retry budget (observable gauge)            |
 *
 * Metrics carry no entity by default (entities are unbounded): `entityAttribute: 'name'`
 * adds `writelane.entity`, `'hash'` adds `writelane.entity.hash` (the first 16 hex digits of
 * the SHA-256 of the name), and the names in `entityAllowlist` get `writelane.entity`
 * whatever the mode.
 *
 * Spans: one `writelane.run` span (kind INTERNAL) per `lane.run`, active while `write` and
 * `read` run (with a context manager registered, as the Node SDK does), with
 * `writelane.entity` and, at the end, `writelane.attempts`; events `writelane.attempt`
 * (`writelane.attempt`), `writelane.conflict`, `writelane.backoff`
 * (`writelane.backoff.delay_ms`), `writelane.spike_started` and `writelane.spike_ended`. A
 * run that gives up ends with status ERROR, `error.type` = the reason and the error's
 * message as the description.
 *
 * @module writelane/otel
 */

const api = require('@opentelemetry/api');
const { createHash } = require('node:crypto');
const { UsageError, GaveUpError, StaleRevisionError } = require('./errors.js');
const { Lane, TELEMETRY } = require('./lane.js');
const { version } = require('../package.json');

const ENTITY_ATTRIBUTES = ['none', 'name', 'hash'];
/** Bucket boundaries in seconds (OpenTelemetry's advice for durations in s). */
const BUCKETS = [0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.25, 0.5, 0.75, 1, 2.5, 5, 7.5, 10];
/** Entities whose metric attributes are kept ready. */
const ATTRS_CACHE = 4096;
/** The `writelane.budget.level` gauge of each meter provider, over its lanes. */
const budgets = new WeakMap();

function budgetGauge(provider, meter, lane) {
  let lanes = budgets.get(provider);
  if (lanes === undefined) {
    lanes = new Set();
    budgets.set(provider, lanes);
    const gauge = meter.createObservableGauge('writelane.budget.level', {
      unit: '{token}', description: "Tokens in the lane's engine-wide retry budget",
    });
    gauge.addCallback((result) => {
      let low = Infinity;
      for (const ref of lanes) {
        const live = ref.deref();
        if (live === undefined) lanes.delete(ref);
        else low = Math.min(low, live.stats().budget);
      }
      if (low !== Infinity) result.observe(low);
    });
  }
  lanes.add(new WeakRef(lane));
}

/** One instrumented run: its span and context, its op, what its events said. */
class Record {
  constructor(span, entity, op) {
    this.span = span;
    this.ctx = api.trace.setSpan(api.context.active(), span);
    this.entity = entity;
    this.op = op;
    this.attempts = null;
    this.reason = null;
  }
}

/** The instrumentation of one lane (what `instrument` returns). */
class Telemetry {
  #lane;
  #meters;
  #tracer;
  #mode;
  #allow;
  #attrs = new Map();
  /** Bound runs by op, runs by entity (for spike events). */
  #runs = new Map();
  #byEntity = new Map();
  /** Per op: when it was submitted and whether it queued (for the lane wait). */
  #submits = new Map();

  constructor(lane, hooks, options) {
    const { meterProvider, tracerProvider, entityAttribute = 'none', entityAllowlist = [] } = options;
    if (!ENTITY_ATTRIBUTES.includes(entityAttribute)) {
      throw new UsageError(`options.entityAttribute must be one of none, name, hash, found ${JSON.stringify(entityAttribute)}`, 'invalid_argument', 'options.entityAttribute');
    }
    if (typeof entityAllowlist === 'string' || typeof entityAllowlist?.[Symbol.iterator] !== 'function'
      || [...entityAllowlist].some((name) => typeof name !== 'string')) {
      throw new UsageError('options.entityAllowlist must be an iterable of entity names (strings)', 'invalid_argument', 'options.entityAllowlist');
    }
    this.#lane = hooks;
    this.#mode = entityAttribute;
    this.#allow = new Set(entityAllowlist);
    const provider = meterProvider ?? api.metrics.getMeterProvider();
    const meter = provider.getMeter('writelane', version);
    this.#tracer = (tracerProvider ?? api.trace.getTracerProvider()).getTracer('writelane', version);
    const advice = { explicitBucketBoundaries: BUCKETS };
    this.#meters = {
      writes: meter.createCounter('writelane.writes', { unit: '{write}', description: 'Entity writes the engine commanded (every attempt)' }),
      conflicts: meter.createCounter('writelane.conflicts', { unit: '{conflict}', description: 'Writes refused as conflicts' }),
      retries: meter.createCounter('writelane.retries', { unit: '{retry}', description: 'Retries scheduled' }),
      giveUps: meter.createCounter('writelane.give_ups', { unit: '{operation}', description: 'Runs that gave up, by reason (error.type)' }),
      refusals: meter.createCounter('writelane.budget.refusals', { unit: '{retry}', description: 'Retries the retry budget refused' }),
      spikes: meter.createCounter('writelane.spikes', { unit: '{spike}', description: 'Conflict spikes started' }),
      laneWait: meter.createHistogram('writelane.lane.wait.duration', { unit: 's', description: 'Time from submit to the lane or lease granted', advice }),
      writeDuration: meter.createHistogram('writelane.write.duration', { unit: 's', description: 'One entity write, called to settled', advice }),
    };
    budgetGauge(provider, meter, lane);
  }

  #attributes(entity) {
    let attrs = this.#attrs.get(entity);
    if (attrs !== undefined) return attrs;
    if (this.#mode === 'name' || this.#allow.has(entity)) attrs = { 'writelane.entity': entity };
    else if (this.#mode === 'hash') attrs = { 'writelane.entity.hash': createHash('sha256').update(entity).digest('hex').slice(0, 16) };
    else attrs = {};
    if (this.#attrs.size >= ATTRS_CACHE) this.#attrs.clear();
    this.#attrs.set(entity, attrs);
    return attrs;
  }

  /** A run was submitted as `op`: start its span and wrap its write and read (lane hook). */
  start(entity, run) {
    const span = this.#tracer.startSpan('writelane.run', { kind: api.SpanKind.INTERNAL, attributes: { 'writelane.entity': entity } });
    const rec = new Record(span, entity, run.op);
    this.#runs.set(run.op, rec);
    let runs = this.#byEntity.get(entity);
    if (runs === undefined) this.#byEntity.set(entity, runs = new Set());
    runs.add(rec);
    const write = run.write;
    const attrs = this.#attributes(entity);
    const { writes, writeDuration } = this.#meters;
    run.write = async (attempt, context) => {
      if (attempt > 1) this.flush(); // the previous attempt's conflict and backoff come first
      span.addEvent('writelane.attempt', { 'writelane.attempt': attempt });
      writes.add(1, attrs);
      const t0 = performance.now();
      try {
        return await api.context.with(rec.ctx, write, undefined, attempt, context);
      } finally {
        writeDuration.record((performance.now() - t0) / 1000, attrs);
      }
    };
    const read = run.read;
    if (read !== undefined) run.read = () => api.context.with(rec.ctx, read);
    return rec;
  }

  /** The run ended, with `error` or not (lane hook). */
  end(rec, error) {
    this.flush();
    this.#runs.delete(rec.op);
    const runs = this.#byEntity.get(rec.entity);
    runs?.delete(rec);
    if (runs?.size === 0) this.#byEntity.delete(rec.entity);
    const { span } = rec;
    if (rec.attempts !== null) span.setAttribute('writelane.attempts', rec.attempts);
    if (error !== null) {
      let reason;
      if (error instanceof StaleRevisionError) reason = 'stale_revision';
      else if (error instanceof GaveUpError) reason = error.reason;
      else reason = rec.reason ?? error?.constructor?.name ?? 'Error';
      span.setAttribute('error.type', reason);
      span.setStatus({ code: api.SpanStatusCode.ERROR, message: error instanceof Error ? error.message : String(error) });
    }
    span.end();
  }

  /** Drain the lane's events into the metrics and spans now (runs do it as they end). */
  flush() {
    const events = this.#lane.events();
    if (events.length === 0) return;
    const base = Date.now() - this.#lane.nowMs();
    const m = this.#meters;
    for (const e of events) {
      const attrs = this.#attributes(e.entity);
      switch (e.type) {
        case 'conflict': m.conflicts.add(1, attrs); break;
        case 'retry_scheduled': m.retries.add(1, attrs); break;
        case 'budget_refused': m.refusals.add(1, attrs); break;
        case 'gave_up': m.giveUps.add(1, { ...attrs, 'error.type': e.reason }); break;
        case 'spike_started':
        case 'spike_ended': {
          if (e.type === 'spike_started') m.spikes.add(1, attrs);
          const at = new Date(base + e.at);
          for (const rec of this.#byEntity.get(e.entity) ?? []) rec.span.addEvent(`writelane.${e.type}`, at);
          continue;
        }
        default: break;
      }
      this.#laneWait(e, attrs);
      const rec = this.#runs.get(e.op);
      if (rec === undefined) continue;
      if (e.type === 'conflict') rec.span.addEvent('writelane.conflict', { 'writelane.attempt': e.attempt }, new Date(base + e.at));
      else if (e.type === 'retry_scheduled') rec.span.addEvent('writelane.backoff', { 'writelane.backoff.delay_ms': e.delay_ms }, new Date(base + e.at));
      else if (e.type === 'committed') rec.attempts = e.attempts;
      else if (e.type === 'gave_up') { rec.attempts = e.attempts; rec.reason = e.reason; }
    }
  }

  #laneWait(e, attrs) {
    if (e.type === 'submitted') {
      this.#submits.set(e.op, { at: e.at, queued: false });
      return;
    }
    const state = this.#submits.get(e.op);
    if (state === undefined) return;
    const shared = this.#lane.shared;
    if (e.type === 'lane_wait_started') {
      state.queued = true;
    } else if (e.type === 'lane_wait_ended' && !shared) {
      this.#submits.delete(e.op);
      this.#meters.laneWait.record(e.waited_ms / 1000, attrs);
    } else if (e.type === 'lease_acquired' && shared) {
      this.#submits.delete(e.op);
      this.#meters.laneWait.record(Math.max(0, e.at - state.at) / 1000, attrs);
    } else if (e.type === 'committed' || e.type === 'gave_up') {
      this.#submits.delete(e.op);
      // A local op that never queued had the lane at submit; one that gave up while
      // queued, or a shared one that never held the lease, was never granted.
      if (!shared && !state.queued) this.#meters.laneWait.record(0, attrs);
    }
  }
}

/**
 * Send `lane`'s telemetry to OpenTelemetry (see the module's description). Options:
 * `meterProvider` and `tracerProvider` (the global ones by default), `entityAttribute`
 * (`'none'`, the default, `'name'` or `'hash'`), `entityAllowlist` (entities whose metrics
 * carry the name anyway). Runs drain the lane's events as they end: with telemetry on,
 * `lane.events()` returns only what no run has drained yet.
 * @param {Lane} lane
 * @param {object} [options]
 * @returns {Telemetry}
 */
function instrument(lane, options) {
  if (!(lane instanceof Lane)) throw new UsageError('lane must be a writelane Lane', 'invalid_argument', 'lane');
  if (options !== undefined && options !== null && typeof options !== 'object') {
    throw new UsageError('options must be an object', 'invalid_argument', 'options');
  }
  let telemetry;
  lane[TELEMETRY]((hooks) => {
    telemetry = new Telemetry(lane, hooks, options ?? {});
    return telemetry;
  });
  return telemetry;
}

module.exports = { instrument, Telemetry, ENTITY_ATTRIBUTES };
