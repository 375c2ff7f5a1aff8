'use strict';
// The package as users get it: a tarball with only the runtime files (the one pack.sh made
// when test.sh passes it in WRITELANE_TGZ, else `npm pack` of the checkout); the example
// deploy project installs that tarball, loads it through both entry points,
// type-checks a strict TypeScript example against the packaged index.d.ts, and runs its
// deploy script against the IAM contention lab.

const { test, before, after } = require('node:test');
const assert = require('node:assert/strict');
const { execFileSync } = require('node:child_process');
const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');
const { startLab } = require('./helpers/iamlab');

const root = path.resolve(__dirname, '..');
const npm = process.platform === 'win32' ? 'npm.cmd' : 'npm';
let work;
let tarball;
let app;
let lab;

function run(cmd, args, options = {}) {
  return execFileSync(cmd, args, { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'], timeout: 240000, ...options });
}

before(async () => {
  work = fs.mkdtempSync(path.join(os.tmpdir(), 'writelane-pack-'));
  if (process.env.WRITELANE_TGZ) {
    tarball = process.env.WRITELANE_TGZ;
  } else {
    const out = run(npm, ['pack', '--json', '--pack-destination', work], { cwd: root });
    const [info] = JSON.parse(out);
    tarball = path.join(work, info.filename);
  }
  app = path.join(work, 'app');
  fs.cpSync(path.join(root, 'examples', 'deploy'), app, {
    recursive: true,
    filter: (src) => !src.includes('node_modules') && !src.endsWith('package-lock.json'),
  });
  const pkg = JSON.parse(fs.readFileSync(path.join(app, 'package.json'), 'utf8'));
  assert.equal(pkg.dependencies.writelane, 'file:../../writelane-0.1.0.tgz', 'the example installs the packed tarball');
  pkg.dependencies.writelane = `file:${tarball}`;
  fs.writeFileSync(path.join(app, 'package.json'), JSON.stringify(pkg, null, 2));
  run(npm, ['install', '--no-audit', '--no-fund', '--prefer-offline', '--no-package-lock'], { cwd: app });
  lab = await startLab({ serviceMs: 20 });
});

after(async () => {
  if (lab) await lab.stop();
  if (work) fs.rmSync(work, { recursive: true, force: true });
});

test('the tarball holds the runtime files only', () => {
  const listing = run('tar', ['-tzf', tarball]).trim().split('\n').sort();
  // pack.sh adds the repository's LICENSE when there is one.
  const license = process.env.WRITELANE_TGZ
    && [path.join(root, 'LICENSE'), path.join(root, '..', 'LICENSE')].some((f) => fs.existsSync(f)) ? ['package/LICENSE'] : [];
  assert.deepEqual(listing, [
    ...license,
    'package/README.md',
    'package/js/clock.js',
    'package/js/engine.js',
    'package/js/errors.js',
    'package/js/failure.js',
    'package/js/iam.js',
    'package/js/index.d.ts',
    'package/js/index.js',
    'package/js/index.mjs',
    'package/js/lane.js',
    'package/js/lease.js',
    'package/js/native.js',
    'package/js/otel.d.ts',
    'package/js/otel.js',
    'package/js/otel.mjs',
    'package/js/policy.js',
    'package/js/run.js',
    'package/js/sdk.js',
    'package/js/stores.js',
    'package/js/strategy.js',
    'package/package.json',
    'package/pkg/writelane_wasm.js',
    'package/pkg/writelane_wasm_bg.wasm',
  ]);
  for (const file of fs.readdirSync(path.join(root, 'js'))) {
    assert.ok(listing.includes(`package/js/${file}`), `js/${file} is packed (package.json "files")`);
  }
  const manifest = JSON.parse(fs.readFileSync(path.join(app, 'node_modules', 'writelane', 'package.json'), 'utf8'));
  assert.equal(manifest.types, './js/index.d.ts');
  assert.deepEqual(Object.keys(manifest.exports['.']).sort(), ['import', 'require', 'types']);
  assert.deepEqual(Object.keys(manifest.exports['./otel']).sort(), ['import', 'require', 'types']);
  // writelane/otel: @opentelemetry/api is an optional peer, never a dependency
  assert.equal(manifest.peerDependenciesMeta['@opentelemetry/api'].optional, true);
  assert.equal(manifest.dependencies, undefined, 'no runtime dependencies');
});

test('both entry points load the installed package', () => {
  const out = run(process.execPath, ['check.cjs'], { cwd: app });
  assert.match(out, /cjs\+esm ok, core \d+\.\d+\.\d+/);
});

test('the strict TypeScript example type-checks against the packaged types', () => {
  const tsc = path.join(app, 'node_modules', 'typescript', 'bin', 'tsc');
  const out = run(process.execPath, [tsc, '--noEmit', '--strict', '-p', '.'], { cwd: app });
  assert.equal(out.trim(), '');
});

test('the example deploy script runs against the IAM lab without conflicts', async () => {
  await lab.reset();
  const out = run(process.execPath, ['deploy.mjs', 'example-shared'], {
    cwd: app,
    env: { ...process.env, IAM_ENDPOINT: lab.endpoint, NODE_NO_WARNINGS: '1' },
  });
  const summary = JSON.parse(out.trim().split('\n').pop());
  assert.deepEqual(summary.statements, ['Api', 'Audit', 'Data', 'Jobs', 'Network', 'Web']);
  assert.equal(summary.committed, 6);
  assert.equal(summary.conflicts, 0);
  const stats = await lab.stats();
  assert.equal(stats.entities['role/example-shared'].conflicts, 0);
  // CreateRole plus the six grants.
  assert.equal(stats.entities['role/example-shared'].writes, 7);
});
