const { Lane, Policy, PolicyError } = require('writelane');

// What the AWS SDK v3 throws when another writer changed the entity at the same time.
const conflict = () => Object.assign(new Error('concurrent modification'),
  { name: 'ConcurrentModificationException', $metadata: { httpStatusCode: 409 } });

async function main() {
  const lane = new Lane(Policy.preset('iam', { retry: { conflict: { base_ms: 10 } } }));
  const attempt = await lane.run('role/deploy', async (attempt) => {
    if (attempt === 1) throw conflict();          // your SDK call goes here
    return attempt;
  });
  console.log(`committed on attempt ${attempt} after ${lane.stats().global.conflicts} conflict`);

  try {
    new Lane({ retry: { conflict: { base_ms: -1 } } });
  } catch (e) {
    if (!(e instanceof PolicyError)) throw e;
    console.log(`${e.code} at ${e.path}: ${e.rule}`);
  }
}

main().catch((e) => { console.error(e); process.exitCode = 1; });
