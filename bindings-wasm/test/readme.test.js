'use strict';
// The README's AWS SDK v3 example, and its hand-off example after it, run as written against
// the IAM contention lab (the SDK takes region, credentials and endpoint from the
// environment, as it would in a deploy).

const { test, before, after } = require('node:test');
const assert = require('node:assert/strict');
const { execFileSync } = require('node:child_process');
const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');
const { pathToFileURL } = require('node:url');
const {
  IAMClient, CreateRoleCommand, DeleteRolePolicyCommand, GetRolePolicyCommand,
} = require('@aws-sdk/client-iam');
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

/** The first JavaScript block after `heading` in the README. */
function readmeExample(heading = '## Ten lines with the AWS SDK v3') {
  const readme = fs.readFileSync(path.join(root, 'README.md'), 'utf8');
  const at = readme.indexOf(heading);
  assert.ok(at >= 0, `the README has ${heading}`);
  const match = /```js\n([\s\S]*?)```/.exec(readme.slice(at));
  assert.ok(match, 'the README has the example');
  return match[1];
}

/** The README's example as a program against the lab, with `extra` run after it. */
function program(extra = '') {
  const iamUrl = pathToFileURL(require.resolve('@aws-sdk/client-iam')).href;
  const laneUrl = pathToFileURL(path.join(root, 'js', 'index.mjs')).href;
  return [
    readmeExample().replace("'@aws-sdk/client-iam'", `'${iamUrl}'`).replace("'writelane'", `'${laneUrl}'`),
    extra,
    'function withMyStatement(text) {',
    "  const d = text ? JSON.parse(text) : { Version: '2012-10-17', Statement: [] };",
    "  d.Statement.push({ Sid: `S${d.Statement.length}`, Effect: 'Allow', Action: 's3:GetObject', Resource: '*' });",
    '  return JSON.stringify(d);',
    '}',
    'console.log(JSON.stringify(lane.stats().global));',
  ].join('\n');
}

const labEnv = () => ({
  ...process.env,
  AWS_REGION: 'us-east-1',
  AWS_ACCESS_KEY_ID: 'testing',
  AWS_SECRET_ACCESS_KEY: 'testing',
  AWS_ENDPOINT_URL_IAM: lab.endpoint,
  NODE_NO_WARNINGS: '1',
});

const labIam = () => new IAMClient({ region: 'us-east-1', endpoint: lab.endpoint, credentials: { accessKeyId: 'testing', secretAccessKey: 'testing' } });

async function statementsOfDeploy(iam) {
  const doc = await iam.send(new GetRolePolicyCommand({ RoleName: 'deploy', PolicyName: 'app' }));
  return JSON.parse(decodeURIComponent(doc.PolicyDocument)).Statement.map((s) => s.Sid);
}

test('the README example appends a statement under a lane', async () => {
  const code = readmeExample();
  const body = code.split('\n').filter((l) => !l.startsWith('import ')).join('\n');
  assert.ok(body.split('\n').filter((l) => l.trim() !== '').length <= 12, 'about ten lines');
  const file = path.join(work, 'example.mjs');
  fs.writeFileSync(file, program());
  const iam = labIam();
  await iam.send(new CreateRoleCommand({ RoleName: 'deploy', AssumeRolePolicyDocument: '{"Version":"2012-10-17","Statement":[]}' }));
  for (let i = 0; i < 2; i++) {
    const out = execFileSync(process.execPath, [file], { env: labEnv(), encoding: 'utf8', timeout: 60000 });
    const stats = JSON.parse(out.trim().split('\n').pop());
    assert.equal(stats.committed, 1);
    assert.equal(stats.reads, 1);
  }
  assert.deepEqual(await statementsOfDeploy(iam), ['S0', 'S1'], 'each run read the policy and appended to it');
});

test('the README hand-off example writes on the reported token without reading', async () => {
  const file = path.join(work, 'handoff.mjs');
  // The ten-line example, then the hand-off example twice. The ten-line write reports no
  // token, so the first hand-off writer reads; the second is handed the token it reported.
  const handoff = readmeExample('### Handing the written revision on');
  fs.writeFileSync(file, program(`${handoff}\n${handoff}`));
  const iam = labIam();
  // The role the first test made, with its policy deleted.
  await iam.send(new CreateRoleCommand({ RoleName: 'deploy', AssumeRolePolicyDocument: '{"Version":"2012-10-17","Statement":[]}' }))
    .catch((e) => assert.equal(e.name, 'EntityAlreadyExistsException'));
  await iam.send(new DeleteRolePolicyCommand({ RoleName: 'deploy', PolicyName: 'app' }))
    .catch((e) => assert.equal(e.name, 'NoSuchEntityException'));
  const out = execFileSync(process.execPath, [file], { env: labEnv(), encoding: 'utf8', timeout: 60000 });
  const stats = JSON.parse(out.trim().split('\n').pop());
  assert.equal(stats.committed, 3);
  assert.equal(stats.reads, 2, 'the writer after a reported token did not read');
  assert.deepEqual(await statementsOfDeploy(iam), ['S0', 'S1', 'S2']);
});

test('the README OpenTelemetry example counts its write under the entity hash', async () => {
  const url = (specifier) => pathToFileURL(require.resolve(specifier)).href;
  const code = readmeExample('## OpenTelemetry')
    .replace("'@aws-sdk/client-iam'", `'${url('@aws-sdk/client-iam')}'`)
    .replace("'@opentelemetry/sdk-metrics'", `'${url('@opentelemetry/sdk-metrics')}'`)
    .replace("'@opentelemetry/sdk-trace-base'", `'${url('@opentelemetry/sdk-trace-base')}'`)
    .replace("'writelane/otel'", `'${pathToFileURL(path.join(root, 'js', 'otel.mjs')).href}'`)
    .replace("'writelane'", `'${pathToFileURL(path.join(root, 'js', 'index.mjs')).href}'`);
  const file = path.join(work, 'otel.mjs');
  fs.writeFileSync(file, `${code}
const writes = exporter.getMetrics().flatMap((r) => r.scopeMetrics).flatMap((s) => s.metrics)
  .filter((m) => m.descriptor.name === 'writelane.writes').flatMap((m) => m.dataPoints);
console.log(JSON.stringify(writes.map((p) => [p.attributes, p.value])));
await meterProvider.shutdown();
`);
  const iam = labIam();
  await iam.send(new CreateRoleCommand({ RoleName: 'deploy', AssumeRolePolicyDocument: '{"Version":"2012-10-17","Statement":[]}' }))
    .catch((e) => assert.equal(e.name, 'EntityAlreadyExistsException'));
  await lab.reset();
  const out = execFileSync(process.execPath, [file], { env: labEnv(), encoding: 'utf8', timeout: 60000 });
  const digest = require('node:crypto').createHash('sha256').update('role/deploy').digest('hex').slice(0, 16);
  assert.deepEqual(JSON.parse(out.trim().split('\n').pop()), [[{ 'writelane.entity.hash': digest }, 1]]);
  assert.equal((await lab.stats()).entities['role/deploy'].writes, 1);
});

test('the README lane-plugin example runs a plain PutRolePolicyCommand in the role\'s lane', async () => {
  const code = readmeExample('### Lanes for an existing client: `lane.plugin()`')
    .replace("'@aws-sdk/client-iam'", `'${pathToFileURL(require.resolve('@aws-sdk/client-iam')).href}'`)
    .replace("'writelane'", `'${pathToFileURL(path.join(root, 'js', 'index.mjs')).href}'`);
  const file = path.join(work, 'plugin.mjs');
  fs.writeFileSync(file, `${code}\nconsole.log(JSON.stringify({ serialised: plugin.serialised, entities: lane.events().filter((e) => e.type === 'submitted').map((e) => e.entity) }));\n`);
  const iam = labIam();
  await iam.send(new CreateRoleCommand({ RoleName: 'deploy', AssumeRolePolicyDocument: '{"Version":"2012-10-17","Statement":[]}' }))
    .catch((e) => assert.equal(e.name, 'EntityAlreadyExistsException'));
  await lab.reset();
  const out = execFileSync(process.execPath, [file], { env: labEnv(), encoding: 'utf8', timeout: 60000 });
  assert.deepEqual(JSON.parse(out.trim().split('\n').pop()), { serialised: 1, entities: ['role/deploy'] });
  assert.deepEqual((await lab.stats()).entities['role/deploy'], { writes: 1, conflicts: 0 });
});

test('the README group-commit example lands eight statements in fewer writes', async () => {
  const code = readmeExample('## Group commit: `lane.update`')
    .replace("'@aws-sdk/client-iam'", `'${pathToFileURL(require.resolve('@aws-sdk/client-iam')).href}'`)
    .replace("'writelane'", `'${pathToFileURL(path.join(root, 'js', 'index.mjs')).href}'`);
  const file = path.join(work, 'update.mjs');
  fs.writeFileSync(file, `${code}\nconsole.log(JSON.stringify(lane.stats().global));\n`);
  const iam = labIam();
  await iam.send(new CreateRoleCommand({ RoleName: 'deploy', AssumeRolePolicyDocument: '{"Version":"2012-10-17","Statement":[]}' }))
    .catch((e) => assert.equal(e.name, 'EntityAlreadyExistsException'));
  await iam.send(new DeleteRolePolicyCommand({ RoleName: 'deploy', PolicyName: 'app' }))
    .catch((e) => assert.equal(e.name, 'NoSuchEntityException'));
  await lab.reset();
  const out = execFileSync(process.execPath, [file], { env: labEnv(), encoding: 'utf8', timeout: 60000 });
  const stats = JSON.parse(out.trim().split('\n').pop());
  assert.equal(stats.committed, 8);
  assert.deepEqual((await statementsOfDeploy(iam)).sort(), Array.from({ length: 8 }, (_, n) => `Reader${n}`));
  const { writes } = (await lab.stats()).entities['role/deploy'];
  assert.ok(writes >= 1 && writes < 8, `${writes} writes`);
});
