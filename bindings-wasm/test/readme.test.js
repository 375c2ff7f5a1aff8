'use strict';
// The README's AWS SDK v3 example runs as written against the IAM contention lab (the SDK
// takes region, credentials and endpoint from the environment, as it would in a deploy).

const { test, before, after } = require('node:test');
const assert = require('node:assert/strict');
const { execFileSync } = require('node:child_process');
const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');
const { pathToFileURL } = require('node:url');
const { IAMClient, CreateRoleCommand, GetRolePolicyCommand } = require('@aws-sdk/client-iam');
const { startLab } = require('./helpers/iamlab');

const root = path.resolve(__dirname, '..');
let lab;
let work;

before(async () => {
  lab = await startLab({ serviceMs: 5 });
  work = fs.mkdtempSync(path.join(os.tmpdir(), 'writelane-readme-'));
});

after(async () => {
  if (lab) await lab.stop();
  if (work) fs.rmSync(work, { recursive: true, force: true });
});

function readmeExample() {
  const readme = fs.readFileSync(path.join(root, 'README.md'), 'utf8');
  const section = readme.slice(readme.indexOf('## Ten lines with the AWS SDK v3'));
  const match = /```js\n([\s\S]*?)```/.exec(section);
  assert.ok(match, 'the README has the example');
  return match[1];
}

test('the README example appends a statement under a lane', async () => {
  const code = readmeExample();
  const body = code.split('\n').filter((l) => !l.startsWith('import ')).join('\n');
  assert.ok(body.split('\n').filter((l) => l.trim() !== '').length <= 12, 'about ten lines');
  const iamUrl = pathToFileURL(require.resolve('@aws-sdk/client-iam')).href;
  const laneUrl = pathToFileURL(path.join(root, 'js', 'index.mjs')).href;
  const program = [
    code.replace("'@aws-sdk/client-iam'", `'${iamUrl}'`).replace("'writelane'", `'${laneUrl}'`),
    'function withMyStatement(text) {',
    "  const d = text ? JSON.parse(text) : { Version: '2012-10-17', Statement: [] };",
    "  d.Statement.push({ Sid: `S${d.Statement.length}`, Effect: 'Allow', Action: 's3:GetObject', Resource: '*' });",
    '  return JSON.stringify(d);',
    '}',
    'console.log(JSON.stringify(lane.stats().global));',
  ].join('\n');
  const file = path.join(work, 'example.mjs');
  fs.writeFileSync(file, program);
  const env = {
    ...process.env,
    AWS_REGION: 'us-east-1',
    AWS_ACCESS_KEY_ID: 'testing',
    AWS_SECRET_ACCESS_KEY: 'testing',
    AWS_ENDPOINT_URL_IAM: lab.endpoint,
    NODE_NO_WARNINGS: '1',
  };
  const iam = new IAMClient({ region: 'us-east-1', endpoint: lab.endpoint, credentials: { accessKeyId: 'testing', secretAccessKey: 'testing' } });
  await iam.send(new CreateRoleCommand({ RoleName: 'deploy', AssumeRolePolicyDocument: '{"Version":"2012-10-17","Statement":[]}' }));
  for (let i = 0; i < 2; i++) {
    const out = execFileSync(process.execPath, [file], { env, encoding: 'utf8', timeout: 60000 });
    const stats = JSON.parse(out.trim().split('\n').pop());
    assert.equal(stats.committed, 1);
    assert.equal(stats.reads, 1);
  }
  const doc = await iam.send(new GetRolePolicyCommand({ RoleName: 'deploy', PolicyName: 'app' }));
  const statements = JSON.parse(decodeURIComponent(doc.PolicyDocument)).Statement;
  assert.deepEqual(statements.map((s) => s.Sid), ['S0', 'S1'], 'each run read the policy and appended to it');
});
