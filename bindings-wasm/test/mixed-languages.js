'use strict';
// Node, Python and Go writers and `writelane hold` sharing one lease: 2 Node processes
// (test/helpers/appender.js), 2 Python processes (bindings-python/tests/laneworker.py), 2
// loops of `writelane hold -- append.py` (a plain boto3 append, tests/hold/append.py) and,
// with DynamoDB and S3, 2 Go processes (go/e2e/laneworker) x 10 read-modify-write
// appends to one role at the IAM lab, through one DynamoDB table, then one S3 bucket and
// prefix, then one Redis (which the Go binding has no adapter for). Passes when
// the lab saw no conflict, every statement is there and every write had its own fence.
//
// Not part of bindings-wasm/test.sh: it needs the Python binding installed, the C library
// built (each binding's setup.sh and test.sh do that) and the writelane command with its
// AWS stores ($WRITELANE_BIN, else target/debug/writelane). scripts/test-all.sh runs it after
// them:
//
//   node bindings-wasm/test/mixed-languages.js
//
// Prints one JSON line per store and exits non-zero on any failure.

const assert = require('node:assert/strict');
const { spawn } = require('node:child_process');
const path = require('node:path');
const readline = require('node:readline');
const { IAMClient, CreateRoleCommand, GetRolePolicyCommand } = require('@aws-sdk/client-iam');
const { DynamoDBStore, S3Store } = require('..');
const { startLab } = require('./helpers/iamlab');
const { startRedis, startMoto, AWS_TEST_CONFIG } = require('./helpers/servers');

// Fake credentials for the Go writers' AWS SDK.
const AWS_ENV = { AWS_ACCESS_KEY_ID: 'testing', AWS_SECRET_ACCESS_KEY: 'testing', AWS_REGION: 'us-east-1' };

const repo = path.resolve(__dirname, '../..');
const python = process.env.WRITELANE_PYTHON || path.join(repo, 'bindings-python', '.venv', 'bin', 'python');
const TABLE = 'writelane-leases';
const BUCKET = 'writelane-leases';
const PREFIX = 'writelane/leases/mixed/';
const goModule = path.join(repo, 'go', 'e2e');
const writelaneBin = process.env.WRITELANE_BIN || path.join(repo, 'target', 'debug', 'writelane');

/**
 * Ten `writelane hold` runs one after the other, each around one plain boto3 append that
 * prints the fence hold gave it; resolves like a laneworker: a last line with the fences.
 */
async function holdLoop(id, storeUrl, role, labEndpoint) {
  const fences = [];
  for (let n = 0; n < 10; n += 1) {
    const child = spawn(writelaneBin, [
      'hold', '--store', storeUrl, '--holder', `mixed ${id}`, `role/${role}`, '--',
      'sh', '-c', 'echo "$WRITELANE_FENCE_1" && exec "$@"', 'sh',
      python, path.join(repo, 'tests', 'hold', 'append.py'), labEndpoint, role, `${id}x${n}`,
    ], { env: { ...process.env, ...AWS_ENV, AWS_EC2_METADATA_DISABLED: 'true' } });
    let out = '';
    let err = '';
    child.stdout.on('data', (d) => { out += d; });
    child.stderr.on('data', (d) => { err += d; });
    const code = await new Promise((resolve) => child.once('exit', resolve));
    if (code !== 0) throw new Error(`writelane hold (${id}, append ${n}) exited ${code}: ${err}`);
    fences.push(Number(out.trim()));
  }
  return [{ done: true, id, fences }];
}

/** Build the Go writer once; it links the C library from the workspace's target dir. */
function buildGoWorker(dir) {
  const bin = path.join(dir, 'laneworker');
  const { status, stderr } = require('node:child_process').spawnSync('go', ['build', '-o', bin, './laneworker'], {
    cwd: goModule,
    env: { ...process.env, PATH: `${process.env.PATH}:/usr/local/go/bin` },
    encoding: 'utf8',
  });
  if (status !== 0) throw new Error(`go build laneworker: ${stderr}`);
  return bin;
}

function lines(child) {
  const out = [];
  readline.createInterface({ input: child.stdout }).on('line', (l) => out.push(JSON.parse(l)));
  let err = '';
  child.stderr.on('data', (d) => { err += d; });
  return new Promise((resolve, reject) => child.once('exit', (code) => (code === 0 ? resolve(out) : reject(new Error(`exit ${code}: ${err}`)))));
}

async function main() {
  const goWorker = buildGoWorker(require('node:fs').mkdtempSync(path.join(require('node:os').tmpdir(), 'wl-mixed-')));
  const [lab, redis, moto] = await Promise.all([startLab({ serviceMs: 20 }), startRedis(), startMoto()]);
  const iam = new IAMClient({ region: 'us-east-1', endpoint: lab.endpoint, credentials: { accessKeyId: 'testing', secretAccessKey: 'testing' } });
  try {
    const admin = new DynamoDBStore({ table: TABLE, endpoint: moto.endpoint, ...AWS_TEST_CONFIG });
    await admin.createTable();
    admin.close();
    const bucketAdmin = new S3Store({ bucket: BUCKET, endpoint: moto.endpoint, ...AWS_TEST_CONFIG });
    const { CreateBucketCommand } = require('@aws-sdk/client-s3');
    await bucketAdmin.client.send(new CreateBucketCommand({ Bucket: BUCKET }));
    bucketAdmin.close();
    for (const kind of ['dynamodb', 's3', 'redis']) {
      const role = `mixed-${kind}`;
      await iam.send(new CreateRoleCommand({ RoleName: role, AssumeRolePolicyDocument: JSON.stringify({ Version: '2012-10-17', Statement: [] }) }));
      await lab.reset();
      // Each language's own spelling of the same store.
      const nodeStore = {
        redis: { kind, options: { url: redis.url } },
        dynamodb: { kind, options: { table: TABLE, endpoint: moto.endpoint, ...AWS_TEST_CONFIG } },
        s3: { kind, options: { bucket: BUCKET, prefix: PREFIX, endpoint: moto.endpoint, ...AWS_TEST_CONFIG } },
      }[kind];
      const spec = {
        redis: { kind, url: `${redis.url}/0` },
        dynamodb: { kind, table: TABLE, endpoint: moto.endpoint },
        s3: { kind, bucket: BUCKET, prefix: PREFIX, endpoint: moto.endpoint },
      }[kind];
      const runs = [];
      for (const writer of [0, 1]) {
        const config = { endpoint: lab.endpoint, role, writer, rounds: 10, policy: 'iam', store: nodeStore };
        runs.push(lines(spawn(process.execPath, [path.join(__dirname, 'helpers', 'appender.js'), JSON.stringify(config)], {
          env: { ...process.env, NODE_NO_WARNINGS: '1' },
        })));
      }
      for (const id of ['P0', 'P1']) {
        const config = { endpoint: lab.endpoint, role, id, count: 10, spec };
        runs.push(lines(spawn(python, [path.join(repo, 'bindings-python', 'tests', 'laneworker.py'), JSON.stringify(config)], {
          cwd: path.join(repo, 'bindings-python', 'tests'),
        })));
      }
      if (kind !== 'redis') {
        for (const id of ['G0', 'G1']) {
          const config = { endpoint: lab.endpoint, role, id, count: 10, spec };
          runs.push(lines(spawn(goWorker, [JSON.stringify(config)], {
            env: { ...process.env, ...AWS_ENV },
          })));
        }
      }
      const storeUrl = {
        dynamodb: `dynamodb://${TABLE}?region=us-east-1&endpoint=${moto.endpoint}`,
        s3: `s3://${BUCKET}/${PREFIX}?region=us-east-1&endpoint=${moto.endpoint}`,
        redis: `${redis.url}/0`,
      }[kind];
      for (const id of ['H0', 'H1']) runs.push(holdLoop(id, storeUrl, role, lab.endpoint));
      const outputs = await Promise.all(runs);
      const nodeFences = outputs.slice(0, 2).flatMap((o) => o.filter((l) => l.writing !== undefined).map((l) => l.fence));
      const pyFences = outputs.slice(2, 4).flatMap((o) => o.at(-1).fences);
      const goFences = outputs.slice(4, -2).flatMap((o) => o.at(-1).fences);
      const holdFences = outputs.slice(-2).flatMap((o) => o.at(-1).fences);
      for (const o of outputs.slice(0, 2)) assert.deepEqual(o.at(-1).errors, []);
      const fences = [...nodeFences, ...pyFences, ...goFences, ...holdFences];
      const expected = 10 * outputs.length;
      assert.equal(fences.length, expected);
      assert.equal(new Set(fences).size, expected, `one fence per write: ${JSON.stringify(fences)}`);
      const out = await iam.send(new GetRolePolicyCommand({ RoleName: role, PolicyName: 'appended' }));
      const text = out.PolicyDocument.trimStart().startsWith('{') ? out.PolicyDocument : decodeURIComponent(out.PolicyDocument);
      const statements = [].concat(JSON.parse(text).Statement);
      const stats = (await lab.stats()).entities[`role/${role}`];
      assert.equal(statements.length, expected, 'every statement of every writer landed');
      assert.equal(stats.conflicts, 0);
      console.log(JSON.stringify({ store: kind, statements: statements.length, conflicts: stats.conflicts, writes: stats.writes, node_fences: nodeFences.length, python_fences: pyFences.length, go_fences: goFences.length, hold_fences: holdFences.length }));
    }
  } finally {
    iam.destroy();
    await Promise.all([lab.stop(), redis.stop(), moto.stop()]);
  }
}

main().catch((e) => {
  console.error(e);
  process.exit(1);
});
