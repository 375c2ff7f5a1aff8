// A deploy script in the style of CDK apps and deploy tooling: several stacks grant
// themselves access by adding a statement to one shared role's inline policy, all at
// once. Every IAM write goes through one writelane Lane, so the writes to the role take
// turns, each re-reads the policy it changes, and ConcurrentModification from other
// tools is retried under the `iam` preset.
//
//   IAM_ENDPOINT=http://127.0.0.1:PORT node deploy.mjs ROLE   (the IAM contention lab)
//   node deploy.mjs ROLE                                      (real IAM, your credentials)
import {
  IAMClient, CreateRoleCommand, GetRolePolicyCommand, PutRolePolicyCommand,
} from '@aws-sdk/client-iam';
import { Lane, policyToken, GaveUpError } from 'writelane';

const endpoint = process.env.IAM_ENDPOINT;
const iam = new IAMClient({
  region: 'us-east-1',
  ...(endpoint ? { endpoint, credentials: { accessKeyId: 'testing', secretAccessKey: 'testing' } } : {}),
});
const lane = new Lane('iam');
const role = process.argv[2] ?? 'deploy-shared';
const policyName = 'stack-grants';

async function currentPolicy() {
  try {
    const out = await iam.send(new GetRolePolicyCommand({ RoleName: role, PolicyName: policyName }));
    return JSON.parse(decodeURIComponent(out.PolicyDocument));
  } catch (e) {
    if (e.name === 'NoSuchEntityException') return null;
    throw e;
  }
}

/** One stack's grant: read-modify-write of the shared policy, inside the role's lane. */
async function grant(stack) {
  let doc = null;
  return lane.run(`role/${role}`, async () => {
    const base = doc ?? { Version: '2012-10-17', Statement: [] };
    const statements = base.Statement.filter((s) => s.Sid !== stack);
    statements.push({ Sid: stack, Effect: 'Allow', Action: 's3:GetObject', Resource: `arn:aws:s3:::${stack.toLowerCase()}/*` });
    await iam.send(new PutRolePolicyCommand({
      RoleName: role, PolicyName: policyName, PolicyDocument: JSON.stringify({ ...base, Statement: statements }),
    }));
  }, {
    read: async () => {
      doc = await currentPolicy();
      return doc && policyToken(doc);
    },
  });
}

try {
  await iam.send(new CreateRoleCommand({
    RoleName: role,
    AssumeRolePolicyDocument: JSON.stringify({
      Version: '2012-10-17',
      Statement: [{ Effect: 'Allow', Principal: { Service: 'lambda.amazonaws.com' }, Action: 'sts:AssumeRole' }],
    }),
  }));
  const stacks = ['Network', 'Data', 'Api', 'Web', 'Jobs', 'Audit'];
  await Promise.all(stacks.map(grant));
  const sids = (await currentPolicy()).Statement.map((s) => s.Sid).sort();
  const { global } = lane.stats();
  console.log(JSON.stringify({ role, statements: sids, committed: global.committed, conflicts: global.conflicts }));
} catch (e) {
  if (e instanceof GaveUpError) console.error(`deploy gave up: ${e.reason} (${e.errorCode})`, e.cause);
  else console.error(e);
  process.exitCode = 1;
}
