'use strict';
// A separate process racing on a lease store: builds the adapter named in argv[2] from the
// JSON options in argv[3], waits for "go" on stdin (so every process starts together),
// carries out the store operation in argv[4] (the core's JSON form) through applyStoreOp
// and prints the reply as one JSON line.

const readline = require('node:readline');
const {
  RedisStore, DynamoDBStore, S3Store, applyStoreOp,
} = require('../..');

const ADAPTERS = { redis: RedisStore, dynamodb: DynamoDBStore, s3: S3Store };

async function main() {
  const [kind, optionsText, operationText] = process.argv.slice(2);
  const options = JSON.parse(optionsText);
  const store = new ADAPTERS[kind](options);
  // Connect (Redis) or warm the client (DynamoDB, S3) before the start signal.
  await applyStoreOp(store, { op: 'get', key: 'warm-up' });
  process.stdout.write('ready\n');
  const lines = readline.createInterface({ input: process.stdin });
  await new Promise((resolve) => lines.once('line', resolve));
  const reply = await applyStoreOp(store, JSON.parse(operationText));
  process.stdout.write(`${JSON.stringify(reply)}\n`);
  lines.close();
  await store.close();
}

main().catch((e) => {
  process.stderr.write(`${e.stack}\n`);
  process.exit(1);
});
