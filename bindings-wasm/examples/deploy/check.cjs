// The CommonJS entry point of the installed package works and matches the ESM one.
const assert = require('node:assert/strict');
const writelane = require('writelane');

for (const name of ['Lane', 'Engine', 'RetryStrategy', 'Policy', 'policyToken', 'GaveUpError', 'PolicyError']) {
  assert.ok(name in writelane, `writelane exports ${name}`);
}
import('writelane').then(async (esm) => {
  assert.equal(esm.Lane, writelane.Lane, 'one module instance for require and import');
  const lane = new writelane.Lane('iam', { seed: 1 });
  assert.equal(await lane.run('role/x', async (attempt) => attempt), 1);
  console.log(`cjs+esm ok, core ${writelane.coreVersion}`);
});
