'use strict';
// One writer process of the lane-plugin shared-lease test: `tasks` async tasks of `rounds`
// plain PutRolePolicyCommand calls each (policy `W{writer}T{t}R{round}`) on one role at the
// IAM lab, through an IAMClient with `client.middlewareStack.use(lane.plugin())`, the lane
// shared with the other processes by its lease store (Redis or DynamoDB).
//
//   node sdkwriter.js CONFIG_JSON
//
// CONFIG: {endpoint, role, writer, tasks, rounds, store: {kind, options}, policy, start}
// Prints {"writer", "ok", "errors", "serialised", "unserialised"} at the end.

const { IAMClient, PutRolePolicyCommand, GetRoleCommand } = require('@aws-sdk/client-iam');
const { Lane, RedisStore, DynamoDBStore } = require('../..');

async function main() {
  const config = JSON.parse(process.argv[2]);
  const client = new IAMClient({
    region: 'us-east-1', endpoint: config.endpoint, credentials: { accessKeyId: 'testing', secretAccessKey: 'testing' },
  });
  const store = config.store.kind === 'redis' ? new RedisStore(config.store.options) : new DynamoDBStore(config.store.options);
  const lane = new Lane(config.policy, { store, holder: `sdkwriter ${config.writer} pid ${process.pid}` });
  const plugin = lane.plugin();
  client.middlewareStack.use(plugin);
  await client.send(new GetRoleCommand({ RoleName: config.role })); // load the SDK's code paths
  const pause = config.start - Date.now();
  if (pause > 0) await new Promise((r) => { setTimeout(r, pause); });
  let ok = 0;
  const errors = [];
  await Promise.all(Array.from({ length: config.tasks }, async (_, t) => {
    for (let round = 0; round < config.rounds; round += 1) {
      const name = `W${config.writer}T${t}R${round}`;
      const doc = { Version: '2012-10-17', Statement: [{ Sid: name, Effect: 'Allow', Action: 's3:GetObject', Resource: '*' }] };
      try {
        await client.send(new PutRolePolicyCommand({ RoleName: config.role, PolicyName: name, PolicyDocument: JSON.stringify(doc) }));
        ok += 1;
      } catch (e) {
        errors.push(`${name}: ${e}`);
      }
    }
  }));
  process.stdout.write(`${JSON.stringify({
    writer: config.writer, ok, errors, serialised: plugin.serialised, unserialised: plugin.unserialised,
  })}\n`);
  if (typeof store.close === 'function') await store.close();
  client.destroy();
}

main().catch((e) => {
  process.stderr.write(`${e?.stack ?? e}\n`);
  process.exit(1);
});
