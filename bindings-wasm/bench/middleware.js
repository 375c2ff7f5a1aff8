'use strict';
// Cost of the lane plugin (`client.middlewareStack.use(lane.plugin())`):
//
//   1. overhead per call on a local lane (best of several repeats): the plugin's middleware
//      around an async no-op in place of the rest of the SDK's stack, against the no-op
//      alone, for a write (PutRolePolicy: the entity lookup in the core's table and
//      `Lane.run`) and a read (GetRole: the lookup only); and PutRolePolicyCommand through a
//      real IAMClient whose transport is stubbed (no network), bare and with the plugin.
//      Target: at most 10 µs per write against a call that takes milliseconds.
//   2. with --stores: the latency a shared store adds per call, the lease taken per call:
//      sequential 100 ms writes (--write-ms N) through the middleware with a lane on each
//      store (memory, Redis, DynamoDB and S3 via moto), minus the median of the same write
//      made bare.
//
// Usage: node bench/middleware.js [--quick] [--stores] [--write-ms N] [--calls N]

const { IAMClient, PutRolePolicyCommand } = require('@aws-sdk/client-iam');
const {
  Lane, MemoryStore, RedisStore, DynamoDBStore, S3Store,
} = require('..');

const quick = process.argv.includes('--quick');
const arg = (name, fallback) => {
  const i = process.argv.indexOf(name);
  return i >= 0 ? Number(process.argv[i + 1]) : fallback;
};
const writeMs = arg('--write-ms', 100);
const calls = arg('--calls', quick ? 3 : 20);

const INPUT = { RoleName: 'bench', PolicyName: 'p', PolicyDocument: '{"Version":"2012-10-17","Statement":[]}' };
const PUT = { clientName: 'IAMClient', commandName: 'PutRolePolicyCommand' };
const GET = { clientName: 'IAMClient', commandName: 'GetRoleCommand' };

async function bestNs(fn, number, repeat) {
  let best = Infinity;
  for (let r = 0; r < repeat; r++) {
    const t0 = process.hrtime.bigint();
    for (let i = 0; i < number; i++) await fn();
    best = Math.min(best, Number(process.hrtime.bigint() - t0) / number);
  }
  return best;
}

function iam(plugin) {
  const c = new IAMClient({ region: 'us-east-1', credentials: { accessKeyId: 'testing', secretAccessKey: 'testing' }, endpoint: 'http://127.0.0.1:9' });
  if (plugin) c.middlewareStack.use(plugin);
  // In place of the transport: an empty 200 answer, after serialisation and signing.
  c.middlewareStack.add(() => async () => ({ output: { $metadata: { httpStatusCode: 200 } }, response: { statusCode: 200, headers: {} } }), { step: 'deserialize', priority: 'low', name: 'benchStub' });
  return c;
}

async function overhead() {
  const [number, repeat] = quick ? [2000, 3] : [20000, 7];
  const next = async () => ({ output: {} });
  const plugin = new Lane().plugin();
  const mw = plugin.middleware();
  const put = mw(next, PUT);
  const get = mw(next, GET);
  const args = { input: INPUT };
  const noop = await bestNs(() => next(args), number, repeat);
  const write = await bestNs(() => put(args), number, repeat);
  const read = await bestNs(() => get(args), number, repeat);
  const keys = await bestNs(() => plugin.keys('iam', 'PutRolePolicy', INPUT), number, repeat);
  const sdkNumber = Math.max(Math.floor(number / 20), 50);
  const bare = iam(null);
  const laned = iam(new Lane().plugin());
  const cmd = () => new PutRolePolicyCommand(INPUT);
  // Interleaved rounds, best of each: the SDK's own path varies by tens of µs run to run.
  let sdkBare = Infinity;
  let sdkLaned = Infinity;
  for (let r = 0; r < repeat; r++) {
    sdkBare = Math.min(sdkBare, await bestNs(() => bare.send(cmd()), sdkNumber, 1));
    sdkLaned = Math.min(sdkLaned, await bestNs(() => laned.send(cmd()), sdkNumber, 1));
  }
  return {
    noop_ns: noop,
    write_overhead_us: (write - noop) / 1000,
    read_overhead_us: (read - noop) / 1000,
    keys_us: keys / 1000,
    sdk_stubbed_bare_us: sdkBare / 1000,
    sdk_stubbed_plugin_us: sdkLaned / 1000,
    sdk_stubbed_overhead_us: (sdkLaned - sdkBare) / 1000,
  };
}

const sleep = (ms) => new Promise((r) => { setTimeout(r, ms); });
const median = (xs) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];

async function stores() {
  const { startRedis, startMoto, AWS_TEST_CONFIG } = require('../test/helpers/servers');
  const out = {};
  const bare = [];
  for (let i = 0; i < calls; i++) {
    const t0 = performance.now();
    await sleep(writeMs);
    bare.push(performance.now() - t0);
  }
  const base = median(bare);
  out['bare write'] = { median_added_ms: base - writeMs, max_added_ms: Math.max(...bare) - writeMs };
  const redis = quick ? null : await startRedis();
  const moto = quick ? null : await startMoto();
  try {
    const made = { 'local lanes (no store)': () => undefined, 'memory store': () => new MemoryStore() };
    if (redis) made['redis store'] = () => new RedisStore({ url: redis.url, prefix: 'mwbench:' });
    if (moto) {
      const dyn = { table: 'mwbench', endpoint: moto.endpoint, ...AWS_TEST_CONFIG, requestTimeoutMs: 2000 };
      await new DynamoDBStore(dyn).createTable();
      made['dynamodb store (moto)'] = () => new DynamoDBStore(dyn);
      const s3 = { bucket: 'mwbench', prefix: 'l/', endpoint: moto.endpoint, ...AWS_TEST_CONFIG, requestTimeoutMs: 2000 };
      const { CreateBucketCommand } = require('@aws-sdk/client-s3');
      await new S3Store(s3).client.send(new CreateBucketCommand({ Bucket: 'mwbench' }));
      made['s3 store (moto)'] = () => new S3Store(s3);
    }
    for (const [name, make] of Object.entries(made)) {
      const store = make();
      const lane = store === undefined ? new Lane() : new Lane('iam', { store });
      const mw = lane.plugin().middleware()(async () => { await sleep(writeMs); return { output: {} }; }, PUT);
      await mw({ input: INPUT }); // warm up
      const laps = [];
      for (let i = 0; i < calls; i++) {
        const t0 = performance.now();
        await mw({ input: { ...INPUT, RoleName: `bench${i % 4}` } });
        laps.push(performance.now() - t0 - base);
      }
      out[name] = { median_added_ms: median(laps), max_added_ms: Math.max(...laps), calls };
      if (typeof store?.close === 'function') await store.close();
    }
  } finally {
    if (redis) await redis.stop();
    if (moto) await moto.stop();
  }
  return out;
}

async function main() {
  const result = { overhead: await overhead() };
  if (process.argv.includes('--stores')) result.stores = await stores();
  const o = result.overhead;
  console.log(`plugin overhead per call, local lane: write ${o.write_overhead_us.toFixed(2)} µs, read ${o.read_overhead_us.toFixed(2)} µs (entity lookup alone ${o.keys_us.toFixed(2)} µs)`);
  console.log(`PutRolePolicyCommand with a stubbed transport: bare ${o.sdk_stubbed_bare_us.toFixed(1)} µs, with the plugin ${o.sdk_stubbed_plugin_us.toFixed(1)} µs (${o.sdk_stubbed_overhead_us >= 0 ? '+' : ''}${o.sdk_stubbed_overhead_us.toFixed(1)} µs)`);
  for (const [name, s] of Object.entries(result.stores ?? {})) {
    console.log(`${name}: ${writeMs} ms write + ${s.median_added_ms.toFixed(2)} ms median (${s.max_added_ms.toFixed(2)} max)${s.calls ? ` over ${s.calls} calls` : ''}`);
  }
  console.log(JSON.stringify(result));
}

main().catch((e) => { console.error(e); process.exit(1); });
