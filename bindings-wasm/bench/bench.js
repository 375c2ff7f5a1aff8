'use strict';
// Overhead benchmark, with every baseline measured in the same run:
//
//   1. `lane.run` on an uncontended write against the bare async call it wraps
//      (target: at most 10 µs of overhead per write);
//   2. a `RetryStrategy` decision (acquire, refresh after a failure, record success)
//      against the same cycle through the SDK's own `StandardRetryStrategy` from
//      @smithy/util-retry (target: no slower). The SDK strategy sleeps inside
//      `refreshRetryTokenForRetry`; for the measurement its timer is replaced by a
//      microtask so that only the decision is timed, as ours is;
//   3. shared lanes: `lane.run` with a read through an in-memory lease store (get,
//      put-if-absent or compare-and-swap, and the release: three store operations per
//      write), against the same run on a local lane, so the row shows what the lease
//      protocol costs in this process beyond the store's own round trips;
//   4. for reference, one call into WebAssembly that copies a short string, against one
//      that passes numbers only (why the hot path interns strings).
//
//   5. with --otel: `lane.run(entity, write)` on a lane with OpenTelemetry on
//      (writelane/otel; sdk-metrics' MeterProvider with a reader, sdk-trace-base's
//      BasicTracerProvider with no span processor: spans are made, not exported) against
//      the same run with it off (paired run).
//
// Usage: node bench/bench.js [--quick] [--otel]   (prints a table and one JSON line)

const { StandardRetryStrategy } = require('@smithy/util-retry');
const native = require('../pkg/writelane_wasm.js');
const { Lane, RetryStrategy, MemoryStore } = require('..');

const quick = process.argv.includes('--quick');
const otel = process.argv.includes('--otel');
const ROUNDS = quick ? 3 : 7;

/** Median nanoseconds per operation of `body(n)` over ROUNDS rounds (after a warm-up). */
async function measure(n, body) {
  await body(Math.max(1000, n / 10));
  const samples = [];
  for (let r = 0; r < ROUNDS; r++) {
    const t0 = process.hrtime.bigint();
    await body(n);
    samples.push(Number(process.hrtime.bigint() - t0) / n);
  }
  samples.sort((a, b) => a - b);
  return samples[Math.floor(samples.length / 2)];
}

/** Like `measure` for two bodies, alternating them round by round so drift hits both. */
async function measurePair(n, a, b) {
  await a(n);
  await b(n);
  const sa = [];
  const sb = [];
  for (let r = 0; r < ROUNDS; r++) {
    for (const [body, samples] of [[a, sa], [b, sb]]) {
      const t0 = process.hrtime.bigint();
      await body(n);
      samples.push(Number(process.hrtime.bigint() - t0) / n);
    }
  }
  const median = (xs) => xs.sort((x, y) => x - y)[Math.floor(xs.length / 2)];
  return [median(sa), median(sb)];
}

function serverError() {
  const e = new Error('We encountered an internal error');
  e.name = 'InternalFailure';
  e.$fault = 'server';
  e.$metadata = { httpStatusCode: 500 };
  return { error: e, errorType: 'TRANSIENT' };
}

function throttlingError() {
  const e = new Error('Rate exceeded');
  e.name = 'Throttling';
  e.$fault = 'client';
  e.$metadata = { httpStatusCode: 400 };
  return { error: e, errorType: 'THROTTLING' };
}

async function cycle(strategy, info, n) {
  for (let i = 0; i < n; i++) {
    const t = await strategy.acquireInitialRetryToken('');
    const next = await strategy.refreshRetryTokenForRetry(t, info);
    strategy.recordSuccess(next);
  }
}

/** Run `fn` with setTimeout resolving on a microtask (for the SDK's in-strategy sleep). */
async function withoutSleeps(fn) {
  const real = global.setTimeout;
  global.setTimeout = (cb, _ms, ...args) => {
    queueMicrotask(() => cb(...args));
    return 0;
  };
  try {
    return await fn();
  } finally {
    global.setTimeout = real;
  }
}

async function main() {
  const N = quick ? 20000 : 100000;
  const write = async () => 1;
  const read = async () => 'v1';

  const bare = await measure(N, async (n) => {
    for (let i = 0; i < n; i++) await write();
  });
  const lane = new Lane('iam', { seed: 1 });
  const laned = await measure(N, async (n) => {
    for (let i = 0; i < n; i++) await lane.run('arn:aws:iam::123456789012:role/deploy', write);
  });
  const bareRead = await measure(N, async (n) => {
    for (let i = 0; i < n; i++) {
      await read();
      await write();
    }
  });
  const lane2 = new Lane('iam', { seed: 1 });
  const lanedRead = await measure(N, async (n) => {
    for (let i = 0; i < n; i++) await lane2.run('arn:aws:iam::123456789012:role/deploy', write, { read });
  });

  const S = quick ? 5000 : 20000;
  const local = new Lane('iam', { seed: 1 });
  const shared = new Lane('iam', { seed: 1, store: new MemoryStore(), owner: 'bench:1' });
  const [localNs, sharedNs] = await measurePair(
    S,
    async (n) => {
      for (let i = 0; i < n; i++) await local.run('arn:aws:iam::123456789012:role/deploy', write, { read });
    },
    async (n) => {
      for (let i = 0; i < n; i++) await shared.run('arn:aws:iam::123456789012:role/deploy', write, { read });
    },
  );
  if (shared.stats().global.store_ops < 3 * S) throw new Error('the shared lane should use the store');

  let otelPair = null;
  if (otel) {
    const { MeterProvider, MetricReader } = require('@opentelemetry/sdk-metrics');
    const { BasicTracerProvider } = require('@opentelemetry/sdk-trace-base');
    const { instrument } = require('../js/otel.js');
    class Reader extends MetricReader {
      async onForceFlush() {}

      async onShutdown() {}
    }
    const off = new Lane('iam', { seed: 1 });
    const on = new Lane('iam', { seed: 1 });
    instrument(on, { meterProvider: new MeterProvider({ readers: [new Reader()] }), tracerProvider: new BasicTracerProvider() });
    otelPair = await measurePair(
      S,
      async (n) => {
        for (let i = 0; i < n; i++) await off.run('arn:aws:iam::123456789012:role/deploy', write);
        off.events();
      },
      async (n) => {
        for (let i = 0; i < n; i++) await on.run('arn:aws:iam::123456789012:role/deploy', write);
      },
    );
  }

  const M = quick ? 20000 : 100000;
  const ours = new RetryStrategy('aws-standard', { seed: 1 });
  const sdk = new StandardRetryStrategy(3);
  const results = {};
  for (const [name, info] of [['transient', serverError()], ['throttling', throttlingError()]]) {
    const [sdkNs, oursNs] = await measurePair(
      M,
      (n) => withoutSleeps(() => cycle(sdk, info, n)),
      (n) => cycle(ours, info, n),
    );
    results[name] = { sdk: sdkNs, writelane: oursNs };
  }
  if (ours.capacity('') !== 500 || sdk.getCapacity() !== 500) {
    throw new Error('the quota should be back at 500 after refunds');
  }

  const raw = native.RawEngine.create('"iam"', 1);
  const K = quick ? 100000 : 1000000;
  const numeric = await measure(K, (n) => {
    for (let i = 0; i < n; i++) raw.pollTimeout();
  });
  const text = await measure(K, (n) => {
    for (let i = 0; i < n; i++) native.parseRetryAfter('arn:aws:iam::123456789012:role/deploy');
  });

  const us = (ns) => (ns / 1000).toFixed(2);
  const rows = [
    ['bare async write', us(bare), ''],
    ['lane.run(entity, write)', us(laned), `overhead ${us(laned - bare)} µs (target <= 10)`],
    ['bare read + write', us(bareRead), ''],
    ['lane.run(entity, write, {read})', us(lanedRead), `overhead ${us(lanedRead - bareRead)} µs (target <= 10)`],
    ['  the same, local lane (paired run)', us(localNs), ''],
    ['  the same, shared lane, MemoryStore', us(sharedNs), `lease protocol ${us(sharedNs - localNs)} µs per write (3 store ops), ${(sharedNs / localNs).toFixed(1)}x local`],
    ...Object.entries(results).map(([k, v]) => [
      `retry decision, ${k}: SDK StandardRetryStrategy`, us(v.sdk), ''],
    ).flatMap((row, i) => {
      const [k, v] = Object.entries(results)[i];
      return [row, [`retry decision, ${k}: writelane RetryStrategy`, us(v.writelane),
        `ratio writelane/SDK ${(v.writelane / v.sdk).toFixed(2)} (target <= 1)`]];
    }),
    ...(otelPair === null ? [] : [
      ['lane.run(entity, write), telemetry off (paired run)', us(otelPair[0]), ''],
      ['lane.run(entity, write), OpenTelemetry on', us(otelPair[1]), `telemetry ${us(otelPair[1] - otelPair[0])} µs per run`],
    ]),
    ['wasm call, numbers only', us(numeric), ''],
    ['wasm call, copying a 38-byte string', us(text), `${(text / numeric).toFixed(1)}x a numeric call`],
  ];
  const width = Math.max(...rows.map((r) => r[0].length));
  console.log(`node ${process.version}, ${ROUNDS} rounds, median µs per operation`);
  for (const [name, v, note] of rows) console.log(`${name.padEnd(width)}  ${v.padStart(8)}  ${note}`);
  console.log(JSON.stringify({
    lane_overhead_us: +us(laned - bare),
    lane_with_read_overhead_us: +us(lanedRead - bareRead),
    strategy_ratio_transient: +(results.transient.writelane / results.transient.sdk).toFixed(3),
    strategy_ratio_throttling: +(results.throttling.writelane / results.throttling.sdk).toFixed(3),
    string_copy_ns: Math.round(text - numeric),
    shared_lane_extra_us: +us(sharedNs - localNs),
    ...(otelPair === null ? {} : { otel_extra_us: +us(otelPair[1] - otelPair[0]) }),
  }));
}

main().catch((e) => {
  console.error(e);
  process.exit(1);
});
