'use strict';
// One writer process of the shared-lease group-commit test: `tasks` async tasks of
// `rounds` `lane.update` appends each (statement `W{writer}T{t}R{round}`, put by
// `iam.putStatement`) to one role's inline policy at the IAM lab, through a Lane whose
// lease store (Redis) it shares with the other processes: each process batches its own
// queue under the lease.
//
//   node updater.js CONFIG_JSON
//
// CONFIG: {endpoint, role, writer, tasks, rounds, store: {kind, options}, policy}
// Prints a summary {"writer", "committed", "errors", "stats"} at the end.

const { IAMClient, GetRolePolicyCommand, PutRolePolicyCommand } = require('@aws-sdk/client-iam');
const {
  Lane, RedisStore, iam: shapes, policyToken,
} = require('../..');

const POLICY_NAME = 'grouped';

async function main() {
  const config = JSON.parse(process.argv[2]);
  const client = new IAMClient({
    region: 'us-east-1', endpoint: config.endpoint, credentials: { accessKeyId: 'testing', secretAccessKey: 'testing' }, maxAttempts: 1,
  });
  const store = new RedisStore(config.store.options);
  const lane = new Lane(config.policy, { store, holder: `updater ${config.writer} pid ${process.pid}` });
  const key = { RoleName: config.role, PolicyName: POLICY_NAME };
  const read = async () => {
    const text = decodeURIComponent((await client.send(new GetRolePolicyCommand(key))).PolicyDocument);
    return { document: JSON.parse(text), token: policyToken(text) };
  };
  const write = async (doc) => {
    const text = JSON.stringify(doc);
    await client.send(new PutRolePolicyCommand({ ...key, PolicyDocument: text }));
    return policyToken(text);
  };
  await read(); // load the SDK's code paths before taking any lease
  let committed = 0;
  const errors = [];
  await Promise.all(Array.from({ length: config.tasks }, async (_, t) => {
    for (let round = 0; round < config.rounds; round += 1) {
      const stmt = {
        Sid: `W${config.writer}T${t}R${round}`, Effect: 'Allow', Action: 's3:GetObject', Resource: '*',
      };
      try {
        await lane.update(`role/${config.role}`, { read, change: shapes.statementPutter(stmt), write });
        committed += 1;
      } catch (e) {
        errors.push(`${stmt.Sid}: ${e}`);
      }
    }
  }));
  process.stdout.write(`${JSON.stringify({
    writer: config.writer, committed, errors, stats: lane.stats().global,
  })}\n`);
  await store.close();
  client.destroy();
}

main().catch((e) => {
  process.stderr.write(`${e?.stack ?? e}\n`);
  process.exit(1);
});
