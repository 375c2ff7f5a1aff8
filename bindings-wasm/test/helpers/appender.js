'use strict';
// One writer process of the multi-process tests: appends its own statements to one role's
// inline policy at the IAM lab, each append a read-modify-write through a Lane whose
// lease store (Redis, DynamoDB or S3) it shares with the other processes.
//
//   node appender.js CONFIG_JSON
//
// CONFIG: {endpoint, role, writer, rounds, store: {kind, options}, policy, hangOnRound?,
// stopOnError?}
// Prints one JSON line per event worth checking ({"writing": round, "fence": N} before
// each write, {"takeover": epoch, "round": N} after a round that took a stale lease over) and a summary {"writer", "committed", "errors"} at the end. With
// `hangOnRound` it stops inside that round's write, holding the lease, until killed.

const { IAMClient, GetRolePolicyCommand, PutRolePolicyCommand } = require('@aws-sdk/client-iam');
const {
  Lane, RedisStore, DynamoDBStore, S3Store, policyToken,
} = require('../..');

const ADAPTERS = { redis: RedisStore, dynamodb: DynamoDBStore, s3: S3Store };

const POLICY_NAME = 'appended';

async function main() {
  const config = JSON.parse(process.argv[2]);
  const iam = new IAMClient({
    region: 'us-east-1',
    endpoint: config.endpoint,
    credentials: { accessKeyId: 'testing', secretAccessKey: 'testing' },
    maxAttempts: 1,
  });
  const store = new ADAPTERS[config.store.kind](config.store.options);
  const lane = new Lane(config.policy, { store, holder: `appender ${config.writer} pid ${process.pid}` });
  const key = { RoleName: config.role, PolicyName: POLICY_NAME };
  let doc = null;
  const read = async () => {
    try {
      const out = await iam.send(new GetRolePolicyCommand(key));
      const text = out.PolicyDocument;
      doc = text.trimStart().startsWith('{') ? text : decodeURIComponent(text);
    } catch (e) {
      if (e.name !== 'NoSuchEntityException') throw e;
      doc = null;
    }
    return doc === null ? null : policyToken(doc);
  };
  let committed = 0;
  const errors = [];
  // Load the SDK's code paths before taking any lease.
  await read();
  for (let round = 0; round < config.rounds; round += 1) {
    const stmt = {
      Sid: `W${config.writer}R${round}`,
      Effect: 'Allow',
      Action: 's3:GetObject',
      Resource: `arn:aws:s3:::bucket-${config.writer}/${round}/*`,
    };
    try {
      await lane.run(`role/${config.role}`, async (attempt, ctx) => {
        process.stdout.write(`${JSON.stringify({ writing: round, fence: ctx.fence, attempt })}\n`);
        if (config.hangOnRound === round) await new Promise(() => {});
        // The engine may hand over a token committed by another process without reading:
        // a cached document that is not at that revision must be read again.
        const cached = doc === null ? null : policyToken(doc);
        if (ctx.baseToken == null || cached !== ctx.baseToken) await read();
        const base = doc === null ? { Version: '2012-10-17', Statement: [] } : JSON.parse(doc);
        const list = Array.isArray(base.Statement) ? base.Statement : [base.Statement];
        const next = JSON.stringify({ ...base, Statement: [...list, stmt] });
        await iam.send(new PutRolePolicyCommand({ ...key, PolicyDocument: next }));
        // The next holder, in this process or another, writes on this revision unread.
        doc = next;
        ctx.setToken(policyToken(next));
      }, { read });
      committed += 1;
    } catch (e) {
      errors.push({ round, name: e.name, reason: e.reason ?? null, message: e.message });
      if (config.stopOnError) break;
    }
    for (const event of lane.events()) {
      if (event.type === 'lease_acquired' && event.takeover) {
        process.stdout.write(`${JSON.stringify({ takeover: event.epoch, round })}\n`);
      }
    }
  }
  process.stdout.write(`${JSON.stringify({ writer: config.writer, committed, errors })}\n`);
  await store.close();
  iam.destroy();
}

main().catch((e) => {
  process.stderr.write(`${e.stack}\n`);
  process.exit(1);
});
