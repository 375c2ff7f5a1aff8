'use strict';
// One lease-store conformance suite, run with the same expectations against every adapter:
// memory, Redis (a real redis-server), DynamoDB and S3 (a real moto server each). Every operation
// goes through `applyStoreOp`, the path the engine's store commands take, so the replies
// checked are the core's JSON form.

const { test, describe, before, after } = require('node:test');
const assert = require('node:assert/strict');
const { spawn } = require('node:child_process');
const path = require('node:path');
const readline = require('node:readline');
const {
  Lane, MemoryStore, RedisStore, DynamoDBStore, S3Store, applyStoreOp, checkRecord, forceRelease, StoreError, UsageError,
} = require('..');
const { startRedis, startMoto, AWS_TEST_CONFIG } = require('./helpers/servers');

let serial = 0;
/** A key no other test uses. */
function freshKey() {
  serial += 1;
  return `role/conformance-${process.pid}-${serial}`;
}

function record(overrides = {}) {
  serial += 1;
  return {
    owner: `host-a:${process.pid}:${serial}`,
    epoch: 1,
    rvn: 1000 + serial,
    lease_ms: 10000,
    committed_token: null,
    holder: 'deploy pipeline run 7',
    ...overrides,
  };
}

/** A queue of three tickets, oldest first, as the core writes them. */
const QUEUE3 = [
  { owner: 'host-b:2:00000000000000b2', ticket: 9, beat: 3 },
  { owner: 'host-c:3:00000000000000c3', ticket: 10, beat: 0 },
  { owner: 'host-d:4:00000000000000d4', ticket: 11, beat: 7 },
];
/** The fields of a version 2 record in the core's order. */
const V2_FIELDS = ['version', 'owner', 'epoch', 'rvn', 'lease_ms', 'committed_token', 'holder', 'beat', 'next_ticket', 'hold_ms', 'queue'];

/** A version 2 record: a holder with a queue of three waiters, fields in the core's order. */
function v2Record(overrides = {}) {
  return { version: 2, ...record(), beat: 4, next_ticket: 12, hold_ms: 350, queue: QUEUE3.map((t) => ({ ...t })), ...overrides };
}

const get = (key) => ({ op: 'get', key });
const put = (key, r) => ({ op: 'put_if_absent', key, record: r });
const cas = (key, expected, r) => ({ op: 'compare_and_swap', key, expected_rvn: expected, record: r });

/**
 * The adapters under test. `open()` makes a store (a new connection for the networked
 * ones, the same store for memory); `stopServer`/`startServer` exist for real servers;
 * `child` gives the options a separate process needs to open the same store.
 */
const adapters = [
  {
    name: 'memory',
    async setup() {
      const shared = new MemoryStore();
      return { open: () => shared, close: async () => {} };
    },
  },
  {
    name: 'redis',
    async setup() {
      const server = await startRedis();
      const opened = [];
      return {
        server,
        open: () => {
          const s = new RedisStore({ url: server.url, connectTimeoutMs: 500, commandTimeoutMs: 1000 });
          opened.push(s);
          return s;
        },
        child: { kind: 'redis', options: { url: server.url } },
        corrupt: async (key, text) => {
          const s = new RedisStore({ url: server.url });
          await s.client.connect();
          await s.client.set(`writelane:lease:${key}`, text);
          await s.close();
        },
        raw: async (key) => {
          const s = new RedisStore({ url: server.url });
          await s.client.connect();
          const text = await s.client.get(`writelane:lease:${key}`);
          await s.close();
          return JSON.parse(text);
        },
        close: async () => {
          await Promise.all(opened.map((s) => s.close()));
          await server.stop();
        },
      };
    },
  },
  {
    name: 'dynamodb',
    async setup() {
      const server = await startMoto();
      const table = 'writelane-leases';
      const config = { table, endpoint: server.endpoint, ...AWS_TEST_CONFIG, requestTimeoutMs: 2000 };
      const admin = new DynamoDBStore(config);
      await admin.createTable();
      await admin.createTable(); // a second call finds the table and returns
      const opened = [admin];
      const { PutItemCommand, GetItemCommand } = require('@aws-sdk/client-dynamodb');
      return {
        server,
        open: () => {
          const s = new DynamoDBStore(config);
          opened.push(s);
          return s;
        },
        child: { kind: 'dynamodb', options: config },
        // moto keeps everything in memory: a restarted server needs the table again.
        restarted: () => admin.createTable(),
        corrupt: async (key) => {
          await admin.client.send(new PutItemCommand({
            TableName: table,
            Item: { key: { S: key }, owner: { S: 'x' }, epoch: { S: 'one' }, rvn: { N: '1' }, lease_ms: { N: '1' } },
          }));
        },
        raw: async (key) => {
          const out = await admin.client.send(new GetItemCommand({ TableName: table, Key: { key: { S: key } }, ConsistentRead: true }));
          return out.Item;
        },
        close: async () => {
          opened.forEach((s) => s.close());
          await server.stop();
        },
      };
    },
  },
  {
    name: 's3',
    async setup() {
      const server = await startMoto();
      const bucket = 'writelane-leases';
      const config = { bucket, prefix: `writelane/leases/${process.pid}/`, endpoint: server.endpoint, ...AWS_TEST_CONFIG, requestTimeoutMs: 2000 };
      const admin = new S3Store(config);
      const { CreateBucketCommand, GetObjectCommand, PutObjectCommand } = require('@aws-sdk/client-s3');
      const createBucket = () => admin.client.send(new CreateBucketCommand({ Bucket: bucket }));
      await createBucket();
      const opened = [admin];
      return {
        server,
        open: () => {
          const s = new S3Store(config);
          opened.push(s);
          return s;
        },
        child: { kind: 's3', options: config },
        // moto keeps everything in memory: a restarted server needs the bucket again.
        restarted: createBucket,
        corrupt: async (key, text) => {
          await admin.client.send(new PutObjectCommand({ Bucket: bucket, Key: admin.objectKey(key), Body: text }));
        },
        raw: async (key) => {
          const out = await admin.client.send(new GetObjectCommand({ Bucket: bucket, Key: admin.objectKey(key) }));
          return { contentType: out.ContentType, body: await out.Body.transformToString('utf-8') };
        },
        close: async () => {
          opened.forEach((s) => s.close());
          await server.stop();
        },
      };
    },
  },
];

/** Start one process per operation, release them together, collect their replies. */
async function race(child, operations) {
  const script = path.join(__dirname, 'helpers', 'store-child.js');
  const procs = [];
  for (const operation of operations) {
    const p = spawn(process.execPath, [script, child.kind, JSON.stringify(child.options), JSON.stringify(operation)], {
      stdio: ['pipe', 'pipe', 'pipe'],
    });
    let err = '';
    p.stderr.on('data', (d) => { err += d; });
    const lines = readline.createInterface({ input: p.stdout });
    const iter = lines[Symbol.asyncIterator]();
    procs.push({ p, iter, err: () => err });
  }
  for (const { iter, err } of procs) {
    const first = await iter.next();
    assert.equal(first.value, 'ready', `child did not get ready: ${err()}`);
  }
  for (const { p } of procs) p.stdin.write('go\n');
  const replies = [];
  for (const { p, iter, err } of procs) {
    const line = await iter.next();
    assert.ok(!line.done, `child printed no reply: ${err()}`);
    replies.push(JSON.parse(line.value));
    await new Promise((resolve) => (p.exitCode !== null ? resolve() : p.once('exit', resolve)));
  }
  return replies;
}

for (const adapter of adapters) {
  describe(`lease store conformance: ${adapter.name}`, () => {
    let env;
    let store;
    before(async () => {
      env = await adapter.setup();
      store = env.open();
    });
    after(async () => {
      if (env) await env.close();
    });

    test('get of a missing key finds no record', async () => {
      assert.deepEqual(await applyStoreOp(store, get(freshKey())), { reply: 'found', record: null });
    });

    test('put_if_absent creates once; the second is refused with the first record', async () => {
      const key = freshKey();
      const first = record();
      const second = record({ owner: 'host-b:1:1' });
      assert.deepEqual(await applyStoreOp(store, put(key, first)), { reply: 'done' });
      assert.deepEqual(await applyStoreOp(store, put(key, second)), { reply: 'refused', current: first });
      assert.deepEqual(await applyStoreOp(store, get(key)), { reply: 'found', record: first });
    });

    test('compare_and_swap with the right rvn replaces the record, with a wrong one is refused', async () => {
      const key = freshKey();
      const first = record();
      await applyStoreOp(store, put(key, first));
      const renewed = { ...first, rvn: first.rvn + 7, committed_token: 'c1:sha256:ab' };
      assert.deepEqual(await applyStoreOp(store, cas(key, first.rvn, renewed)), { reply: 'done' });
      assert.deepEqual(await applyStoreOp(store, get(key)), { reply: 'found', record: renewed });
      const late = record({ epoch: 2 });
      assert.deepEqual(await applyStoreOp(store, cas(key, first.rvn, late)), { reply: 'refused', current: renewed });
      assert.deepEqual(await applyStoreOp(store, get(key)), { reply: 'found', record: renewed });
    });

    test('compare_and_swap on a missing key is refused with no record', async () => {
      const key = freshKey();
      assert.deepEqual(await applyStoreOp(store, cas(key, 5, record())), { reply: 'refused', current: null });
      assert.deepEqual(await applyStoreOp(store, get(key)), { reply: 'found', record: null });
    });

    test('records round-trip all six fields, nulls, empty owner and the largest values', async () => {
      const key = freshKey();
      const samples = [
        record({ committed_token: null, holder: null }),
        record({ owner: '', epoch: 1, rvn: Number.MAX_SAFE_INTEGER, lease_ms: 1, committed_token: 'c1:sha256:00ff', holder: 'host é ☃ "quoted" \\ run 12' }),
        record({ epoch: Number.MAX_SAFE_INTEGER, rvn: 1, committed_token: '', holder: '' }),
      ];
      await applyStoreOp(store, put(key, samples[0]));
      assert.deepEqual(await applyStoreOp(store, get(key)), { reply: 'found', record: samples[0] });
      for (let i = 1; i < samples.length; i += 1) {
        assert.deepEqual(await applyStoreOp(store, cas(key, samples[i - 1].rvn, samples[i])), { reply: 'done' });
        const found = await applyStoreOp(store, get(key));
        assert.deepEqual(found, { reply: 'found', record: samples[i] });
        assert.deepEqual(Object.keys(found.record), ['owner', 'epoch', 'rvn', 'lease_ms', 'committed_token', 'holder']);
      }
    });

    test('version 2 records with a queue of three round-trip unchanged, refusals included', async () => {
      const key = freshKey();
      const first = v2Record({ rvn: 21 });
      assert.deepEqual(await applyStoreOp(store, put(key, first)), { reply: 'done' });
      const found = await applyStoreOp(store, get(key));
      assert.deepEqual(found, { reply: 'found', record: first });
      assert.deepEqual(Object.keys(found.record), V2_FIELDS);
      assert.deepEqual(found.record.queue.map((t) => Object.keys(t)), Array(3).fill(['owner', 'ticket', 'beat']));
      // The head granted: beat 0 (the core leaves it out), the head gone from the queue.
      const { beat, ...granted } = v2Record({ rvn: 22, owner: QUEUE3[0].owner, epoch: 2, queue: QUEUE3.slice(1) });
      assert.equal(beat, 4);
      assert.deepEqual(await applyStoreOp(store, cas(key, 21, granted)), { reply: 'done' });
      assert.deepEqual(await applyStoreOp(store, get(key)), { reply: 'found', record: granted });
      assert.deepEqual(await applyStoreOp(store, cas(key, 21, v2Record({ rvn: 23 }))), { reply: 'refused', current: granted });
      // Zero counters and no queue: still version 2.
      const bare = { version: 2, ...record({ rvn: 24 }) };
      assert.deepEqual(await applyStoreOp(store, cas(key, 22, bare)), { reply: 'done' });
      assert.deepEqual(await applyStoreOp(store, get(key)), { reply: 'found', record: bare });
    });

    test('concurrent compare_and_swap with the same expected rvn: exactly one wins', async () => {
      const key = freshKey();
      const base = record();
      await applyStoreOp(store, put(key, base));
      const n = 16;
      const stores = Array.from({ length: n }, () => env.open());
      const mine = stores.map((_, i) => record({ owner: `writer-${i}`, epoch: 2 }));
      const replies = await Promise.all(stores.map((s, i) => applyStoreOp(s, cas(key, base.rvn, mine[i]))));
      const winners = replies.flatMap((r, i) => (r.reply === 'done' ? [i] : []));
      assert.equal(winners.length, 1, `replies: ${JSON.stringify(replies)}`);
      const winner = mine[winners[0]];
      for (const [i, r] of replies.entries()) {
        if (i !== winners[0]) assert.deepEqual(r, { reply: 'refused', current: winner });
      }
      assert.deepEqual(await applyStoreOp(store, get(key)), { reply: 'found', record: winner });
    });

    test('forceRelease frees a stuck lease by compare-and-swap, bumping the epoch', async () => {
      assert.deepEqual(await forceRelease(store, freshKey()), { result: 'no_record' });
      const key = freshKey();
      const stuck = record({ epoch: 7, committed_token: 'c1:sha256:cd' });
      await applyStoreOp(store, put(key, stuck));
      assert.deepEqual(await forceRelease(store, key, { expectedRvn: stuck.rvn + 1 }), { result: 'changed', current: stuck });
      assert.deepEqual((await applyStoreOp(store, get(key))).record, stuck, 'a refused force-release changes nothing');
      const freed = await forceRelease(store, key, { expectedRvn: stuck.rvn });
      assert.equal(freed.result, 'released');
      assert.deepEqual({ ...freed.record, rvn: 0 }, { ...stuck, owner: '', holder: null, committed_token: null, epoch: 8, rvn: 0 });
      assert.notEqual(freed.record.rvn, stuck.rvn);
      assert.ok(Number.isSafeInteger(freed.record.rvn) && freed.record.rvn > 0);
      assert.deepEqual(await applyStoreOp(store, get(key)), { reply: 'found', record: freed.record });
      assert.deepEqual(await forceRelease(store, key), { result: 'already_free', record: freed.record });
      // The stuck holder's renewal or release is refused now.
      assert.deepEqual(await applyStoreOp(store, cas(key, stuck.rvn, { ...stuck, rvn: 1 })), { reply: 'refused', current: freed.record });
    });

    test('concurrent put_if_absent: exactly one creates the record', async () => {
      const key = freshKey();
      const stores = Array.from({ length: 16 }, () => env.open());
      const mine = stores.map((_, i) => record({ owner: `writer-${i}` }));
      const replies = await Promise.all(stores.map((s, i) => applyStoreOp(s, put(key, mine[i]))));
      const winners = replies.flatMap((r, i) => (r.reply === 'done' ? [i] : []));
      assert.equal(winners.length, 1, `replies: ${JSON.stringify(replies)}`);
      assert.deepEqual(await applyStoreOp(store, get(key)), { reply: 'found', record: mine[winners[0]] });
    });

    test('a token a lane\'s write reports is kept in the record; a lane of another owner writes on it unread', async () => {
      const key = freshKey();
      const first = new Lane('iam', { store: env.open(), owner: `first-${process.pid}` });
      const second = new Lane('iam', { store: env.open(), owner: `second-${process.pid}` });
      await first.run(key, async (attempt, ctx) => ctx.setToken('t9'), { read: async () => 't8' });
      const released = (await applyStoreOp(store, get(key))).record;
      assert.equal(released.owner, '');
      assert.equal(released.committed_token, 't9');
      let reads = 0;
      const base = await second.run(key, async (attempt, ctx) => ctx.baseToken, { read: async () => { reads += 1; return 't9'; } });
      assert.equal(base, 't9');
      assert.equal(reads, 0, 'the token in the record stands in for a read');
    });

    if (adapter.name !== 'memory') {
      test('concurrent compare_and_swap from separate processes: exactly one wins', async () => {
        const key = freshKey();
        const base = record();
        await applyStoreOp(store, put(key, base));
        const mine = [0, 1, 2, 3].map((i) => record({ owner: `process-${i}`, epoch: 2 }));
        const replies = await race(env.child, mine.map((r) => cas(key, base.rvn, r)));
        const winners = replies.flatMap((r, i) => (r.reply === 'done' ? [i] : []));
        assert.equal(winners.length, 1, `replies: ${JSON.stringify(replies)}`);
        const winner = mine[winners[0]];
        for (const [i, r] of replies.entries()) {
          if (i !== winners[0]) assert.deepEqual(r, { reply: 'refused', current: winner });
        }
        assert.deepEqual(await applyStoreOp(store, get(key)), { reply: 'found', record: winner });
      });

      test('the stored layout is the documented one', async () => {
        const key = freshKey();
        const r = record({ committed_token: 'c1:sha256:01', holder: null });
        await applyStoreOp(store, put(key, r));
        const raw = await env.raw(key);
        if (adapter.name === 'redis') {
          assert.deepEqual(raw, r);
          // Another prefix is another namespace.
          const other = new RedisStore({ url: env.server.url, prefix: 'team-b:' });
          assert.deepEqual(await applyStoreOp(other, get(key)), { reply: 'found', record: null });
          assert.deepEqual(await applyStoreOp(other, put(key, record())), { reply: 'done' });
          assert.deepEqual(await applyStoreOp(store, get(key)), { reply: 'found', record: r });
          await other.close();
        } else if (adapter.name === 's3') {
          // One object at prefix + key holding the core's JSON text of the record, byte
          // for byte what the Rust, Python and Go adapters write.
          assert.deepEqual(raw, {
            contentType: 'application/json',
            body: `{"owner":${JSON.stringify(r.owner)},"epoch":1,"rvn":${r.rvn},"lease_ms":10000,"committed_token":"c1:sha256:01","holder":null}`,
          });
          // Another prefix in the same bucket is another namespace.
          const other = new S3Store({ ...env.child.options, prefix: 'team-b/' });
          assert.deepEqual(await applyStoreOp(other, get(key)), { reply: 'found', record: null });
          assert.deepEqual(await applyStoreOp(other, put(key, record())), { reply: 'done' });
          assert.deepEqual(await applyStoreOp(store, get(key)), { reply: 'found', record: r });
          other.close();
        } else {
          assert.deepEqual(raw, {
            key: { S: key },
            owner: { S: r.owner },
            epoch: { N: String(r.epoch) },
            rvn: { N: String(r.rvn) },
            lease_ms: { N: String(r.lease_ms) },
            committed_token: { S: 'c1:sha256:01' },
            holder: { NULL: true },
          });
        }
      });

      test('a version 2 record is stored as every binding stores it', async () => {
        const key = freshKey();
        // Fields given in another order.
        const r = Object.fromEntries(Object.entries(v2Record({ rvn: 5, holder: null })).reverse());
        r.queue = r.queue.map((t) => Object.fromEntries(Object.entries(t).reverse()));
        await applyStoreOp(env.open(), put(key, r));
        const raw = await env.raw(key);
        const queueText = '[{"owner":"host-b:2:00000000000000b2","ticket":9,"beat":3},'
          + '{"owner":"host-c:3:00000000000000c3","ticket":10,"beat":0},'
          + '{"owner":"host-d:4:00000000000000d4","ticket":11,"beat":7}]';
        if (adapter.name === 'redis') {
          assert.deepEqual(raw, r);
        } else if (adapter.name === 's3') {
          assert.equal(raw.body, `{"version":2,"owner":${JSON.stringify(r.owner)},"epoch":1,"rvn":5,"lease_ms":10000,`
            + `"committed_token":null,"holder":null,"beat":4,"next_ticket":12,"hold_ms":350,"queue":${queueText}}`);
        } else {
          // As lane/src/store/dynamodb.rs writes it: counters as N, the queue as S of its
          // JSON text; zeros and an empty queue written all the same.
          assert.deepEqual(raw, {
            key: { S: key }, owner: { S: r.owner }, epoch: { N: '1' }, rvn: { N: '5' }, lease_ms: { N: '10000' },
            committed_token: { NULL: true }, holder: { NULL: true },
            version: { N: '2' }, beat: { N: '4' }, next_ticket: { N: '12' }, hold_ms: { N: '350' }, queue: { S: queueText },
          });
          const bare = { version: 2, ...record({ rvn: 6 }) };
          assert.deepEqual(await applyStoreOp(store, cas(key, 5, bare)), { reply: 'done' });
          const item = await env.raw(key);
          assert.deepEqual([item.version, item.beat, item.next_ticket, item.hold_ms, item.queue],
            [{ N: '2' }, { N: '0' }, { N: '0' }, { N: '0' }, { S: '[]' }]);
          assert.deepEqual(await applyStoreOp(store, get(key)), { reply: 'found', record: bare });
        }
        if (adapter.name !== 'dynamodb') assert.deepEqual(await applyStoreOp(store, get(key)), { reply: 'found', record: r });
      });

      test('a malformed stored record makes the store unavailable, naming the field', async () => {
        const key = freshKey();
        await env.corrupt(key, '{"owner": "x", "epoch": "one"}');
        assert.deepEqual(await applyStoreOp(store, get(key)), { reply: 'unavailable' });
        await assert.rejects(store.get(key), (e) => {
          assert.ok(e instanceof StoreError, String(e));
          assert.equal(e.kind, 'unavailable');
          assert.match(e.message, /epoch/);
          return true;
        });
      });

      if (adapter.name === 'dynamodb') {
        test('a refusal without the item returned falls back to a consistent read', async () => {
          const real = env.open();
          // A client whose ConditionalCheckFailedException carries no item (as a service
          // without ReturnValuesOnConditionCheckFailure would answer).
          const bare = {
            send: async (command) => {
              try {
                return await real.client.send(command);
              } catch (e) {
                delete e.Item;
                throw e;
              }
            },
          };
          const s = new DynamoDBStore({ table: env.child.options.table, client: bare });
          const key = freshKey();
          const first = record();
          assert.deepEqual(await applyStoreOp(s, put(key, first)), { reply: 'done' });
          assert.deepEqual(await applyStoreOp(s, put(key, record())), { reply: 'refused', current: first });
          assert.deepEqual(await applyStoreOp(s, cas(key, first.rvn + 1, record())), { reply: 'refused', current: first });
          s.close(); // a client passed in stays open
          assert.deepEqual(await applyStoreOp(s, get(key)), { reply: 'found', record: first });
        });
      }

      if (adapter.name === 's3') {
        test('a swap behind a stale ETag is refused with the record found; a gone object with none', async () => {
          const mine = env.open();
          const theirs = env.open();
          const key = freshKey();
          const first = record();
          assert.deepEqual(await applyStoreOp(mine, put(key, first)), { reply: 'done' }); // mine keeps its ETag
          const second = record({ owner: 'host-b:1:1' });
          assert.deepEqual(await applyStoreOp(theirs, cas(key, first.rvn, second)), { reply: 'done' });
          // Mine still holds the ETag of the first record: a 412, answered with what is there.
          assert.deepEqual(await applyStoreOp(mine, cas(key, first.rvn, record())), { reply: 'refused', current: second });
          const third = record();
          assert.deepEqual(await applyStoreOp(mine, cas(key, second.rvn, third)), { reply: 'done' });
          // Removed by hand (writelane never deletes): If-Match finds no object.
          const { DeleteObjectCommand } = require('@aws-sdk/client-s3');
          await mine.client.send(new DeleteObjectCommand({ Bucket: mine.bucket, Key: mine.objectKey(key) }));
          assert.deepEqual(await applyStoreOp(mine, cas(key, third.rvn, record())), { reply: 'refused', current: null });
        });

        test('a client that would send a put without its condition sends nothing', async () => {
          const { S3Client } = require('@aws-sdk/client-s3');
          const { bucket, prefix, endpoint, region, credentials } = env.child.options;
          const client = new S3Client({ endpoint, region, credentials, forcePathStyle: true, maxAttempts: 1 });
          // As a client-s3 from before conditional writes serialises PutObject: no condition.
          client.middlewareStack.add((next) => async (args) => {
            for (const name of Object.keys(args.request.headers)) {
              if (/^if-(none-)?match$/i.test(name)) delete args.request.headers[name];
            }
            return next(args);
          }, { step: 'build', priority: 'high', name: 'dropConditions' });
          const s = new S3Store({ bucket, prefix, client });
          const key = freshKey();
          const first = record();
          assert.deepEqual(await applyStoreOp(s, put(key, first)), { reply: 'unavailable' });
          assert.deepEqual(await applyStoreOp(store, get(key)), { reply: 'found', record: null }, 'nothing was written');
          await assert.rejects(s.putIfAbsent(key, first), (e) => e instanceof StoreError && e.kind === 'unavailable' && /if-none-match/.test(e.message));
          assert.deepEqual(await applyStoreOp(store, put(key, first)), { reply: 'done' });
          assert.deepEqual(await applyStoreOp(s, cas(key, first.rvn, record())), { reply: 'unavailable' });
          assert.deepEqual(await applyStoreOp(store, get(key)), { reply: 'found', record: first }, 'nothing was written over it');
          client.destroy();
        });

        test('S3 answers map to refused, unavailable or lost', async () => {
          const real = env.open();
          const key = freshKey();
          const first = record();
          assert.deepEqual(await applyStoreOp(real, put(key, first)), { reply: 'done' });
          const { PutObjectCommand } = require('@aws-sdk/client-s3');
          for (const [name, status, reply] of [
            ['ConditionalRequestConflict', 409, 'unavailable'],
            ['AccessDenied', 403, 'unavailable'],
            ['SlowDown', 503, 'lost'],
            ['InternalError', 500, 'lost'],
          ]) {
            // A client whose puts get the answer S3 can give (moto never sends a 409).
            const answering = {
              send: async (command) => {
                if (command instanceof PutObjectCommand) {
                  const e = new Error('m');
                  e.name = name;
                  e.$metadata = { httpStatusCode: status };
                  throw e;
                }
                return real.client.send(command);
              },
            };
            const s = new S3Store({ bucket: real.bucket, prefix: real.prefix, client: answering });
            assert.deepEqual(await applyStoreOp(s, put(freshKey(), record())), { reply }, name);
            assert.deepEqual(await applyStoreOp(s, cas(key, first.rvn, record())), { reply }, name);
            assert.deepEqual(await applyStoreOp(s, get(key)), { reply: 'found', record: first });
          }
          const missing = new S3Store({ ...env.child.options, bucket: 'no-such-bucket' });
          for (const op of [get(key), put(key, record()), cas(key, 1, record())]) {
            assert.deepEqual(await applyStoreOp(missing, op), { reply: 'unavailable' }, op.op);
          }
          missing.close();
        });
      }

      test('a stopped server gives unavailable or lost, never an error', async () => {
        const key = freshKey();
        const r = record();
        await applyStoreOp(store, put(key, r));
        await env.server.stop();
        try {
          const ops = [get(key), put(freshKey(), record()), cas(key, r.rvn, record())];
          for (const op of ops) {
            const reply = await applyStoreOp(store, op);
            assert.ok(['unavailable', 'lost'].includes(reply.reply), `${op.op}: ${JSON.stringify(reply)}`);
            assert.deepEqual(Object.keys(reply), ['reply']);
          }
          const fresh = env.open();
          const reply = await applyStoreOp(fresh, get(key));
          assert.ok(['unavailable', 'lost'].includes(reply.reply), JSON.stringify(reply));
        } finally {
          await env.server.start();
          if (env.restarted) await env.restarted();
        }
        // The store works again once the server is back (data is gone: no persistence).
        const again = record();
        const key2 = freshKey();
        let reply;
        for (let i = 0; i < 50; i += 1) {
          reply = await applyStoreOp(store, put(key2, again));
          if (reply.reply === 'done') break;
          await new Promise((res) => setTimeout(res, 100));
        }
        assert.deepEqual(reply, { reply: 'done' });
      });
    }
  });
}

describe('applyStoreOp', () => {
  test('a malformed operation is a UsageError naming the field, as the core checks it', async () => {
    const store = new MemoryStore();
    const cases = [
      [null, 'operation'],
      [{ op: 'get' }, 'operation.key'],
      [{ op: 'delete', key: 'k' }, 'operation.op'],
      [{ op: 'compare_and_swap', key: 'k', expected_rvn: -1, record: record() }, 'operation.expected_rvn'],
      [{ op: 'compare_and_swap', key: 'k', expected_rvn: 1.5, record: record() }, 'operation.expected_rvn'],
      [{ op: 'put_if_absent', key: 'k', record: { ...record(), rvn: 2 ** 53 } }, 'operation.record.rvn'],
      [{ op: 'put_if_absent', key: 'k', record: { ...record(), epoch: 0 } }, 'operation.record.epoch'],
      [{ op: 'put_if_absent', key: 'k', record: { ...record(), extra: 1 } }, 'operation.record'],
      [{ op: 'put_if_absent', key: 'k', record: { ...record(), holder: 3 } }, 'operation.record'],
      [{ op: 'get', key: 10n }, 'operation'],
    ];
    for (const [op, field] of cases) {
      await assert.rejects(applyStoreOp(store, op), (e) => {
        assert.ok(e instanceof UsageError, String(e));
        assert.equal(e.field, field, e.message);
        return true;
      });
    }
    await assert.rejects(applyStoreOp(store, get('k'), { timeoutMs: 0 }), (e) => e.field === 'options.timeoutMs');
  });

  test('an adapter that does not answer within the timeout is a lost reply', async () => {
    const hang = { get: () => new Promise(() => {}), putIfAbsent: async () => ({ done: true }), compareAndSwap: async () => ({ done: true }) };
    const started = Date.now();
    assert.deepEqual(await applyStoreOp(hang, get('k'), { timeoutMs: 30 }), { reply: 'lost' });
    assert.ok(Date.now() - started < 1000);
  });

  test('errors of an adapter become unavailable or lost replies', async () => {
    const failing = (error) => ({
      get: async () => { throw error; },
      putIfAbsent: async () => { throw error; },
      compareAndSwap: () => { throw error; }, // a synchronous throw, too
    });
    const r = record();
    for (const [error, reply] of [
      [new StoreError('unavailable', 'down'), 'unavailable'],
      [new StoreError('lost', 'timed out'), 'lost'],
      [new TypeError('a bug in an adapter'), 'lost'],
      ['a thrown string', 'lost'],
    ]) {
      const s = failing(error);
      for (const op of [get('k'), put('k', r), cas('k', 1, r)]) {
        assert.deepEqual(await applyStoreOp(s, op), { reply }, `${op.op} with ${error}`);
      }
    }
    const garbage = { get: async () => ({ owner: 1 }), putIfAbsent: async () => 'yes', compareAndSwap: async () => ({ done: false, current: 7 }) };
    assert.deepEqual(await applyStoreOp(garbage, get('k')), { reply: 'unavailable' });
    assert.deepEqual(await applyStoreOp(garbage, put('k', r)), { reply: 'lost' });
    assert.deepEqual(await applyStoreOp(garbage, cas('k', 1, r)), { reply: 'unavailable' });
  });

  test('a refusal is passed on as it is: the core decides what a refusal by our own record means', async () => {
    const r = record();
    const retried = {
      get: async () => null,
      putIfAbsent: async (key, rec) => ({ done: false, current: { ...rec } }),
      compareAndSwap: async (key, rvn, rec) => ({ done: false, current: { ...rec } }),
    };
    assert.deepEqual(await applyStoreOp(retried, put('k', r)), { reply: 'refused', current: r });
    assert.deepEqual(await applyStoreOp(retried, cas('k', 1, r)), { reply: 'refused', current: r });
  });

  test('records an adapter returns are checked by the core, naming the field', async () => {
    const r = record();
    const bad = { get: async () => ({ ...r, lease_ms: 0 }), putIfAbsent: async () => ({ done: true }), compareAndSwap: async () => ({ done: true }) };
    assert.deepEqual(await applyStoreOp(bad, get('k')), { reply: 'unavailable' });
    const copy = checkRecord(r);
    assert.deepEqual(copy, r);
    assert.notEqual(copy, r);
    const { holder, ...noHolder } = r;
    assert.equal(holder, r.holder);
    assert.deepEqual(checkRecord(noHolder), { ...r, holder: null }, 'a missing holder is none');
    assert.throws(() => checkRecord({ ...r, epoch: 0 }), (e) => e instanceof UsageError && e.kind === 'invalid_record' && e.field === 'record.epoch');
    assert.throws(() => checkRecord({ ...r, rvn: 2 ** 53 }, 'lease'), (e) => e.field === 'lease.rvn');
    assert.throws(() => checkRecord({ ...r, owner: 'x'.repeat(257) }), (e) => e.field === 'record.owner');
    assert.throws(() => checkRecord([]), (e) => e.field === 'record');
  });

  test('an S3 store refuses a record that is not an object before sending anything', async () => {
    let sent = 0;
    const s = new S3Store({ bucket: 'b', client: { send: async () => { sent += 1; } } });
    for (const bad of [5, null, [], 'text']) {
      await assert.rejects(s.putIfAbsent('k', bad), (e) => e instanceof UsageError && e.field === 'record');
    }
    assert.equal(sent, 0);
  });

  test('the store adapters refuse bad options with the field named', () => {
    assert.throws(() => new DynamoDBStore({}), (e) => e instanceof UsageError && e.field === 'options.table');
    assert.throws(() => new DynamoDBStore({ table: 't', requestTimeoutMs: 0 }), (e) => e.field === 'options.requestTimeoutMs');
    assert.throws(() => new RedisStore({ prefix: 3 }), (e) => e.field === 'options.prefix');
    assert.throws(() => new S3Store({}), (e) => e instanceof UsageError && e.field === 'options.bucket');
    assert.throws(() => new S3Store({ bucket: 'b', prefix: 3 }), (e) => e.field === 'options.prefix');
    assert.throws(() => new S3Store({ bucket: 'b', requestTimeoutMs: -1 }), (e) => e.field === 'options.requestTimeoutMs');
    assert.throws(() => new S3Store({ bucket: 'b', client: {} }), (e) => e.field === 'options.client');
    assert.throws(() => new RedisStore({ client: {} }), (e) => e.field === 'options.client');
  });
});
