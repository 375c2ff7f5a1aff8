import { Lane, Policy, PolicyError, type RunOptions, type Stats } from 'writelane';

// What the AWS SDK v3 throws when another writer changed the entity at the same time.
const conflict = (): Error => Object.assign(new Error('concurrent modification'),
  { name: 'ConcurrentModificationException', $metadata: { httpStatusCode: 409 } });

async function main(): Promise<void> {
  const lane = new Lane(Policy.preset('iam', { retry: { conflict: { base_ms: 10 } } }));
  const options: RunOptions = { deadlineMs: 30_000 };
  const attempt: number = await lane.run('role/deploy', async (attempt: number) => {
    if (attempt === 1) throw conflict();          // your SDK call goes here
    return attempt;
  }, options);
  const stats: Stats = lane.stats();
  console.log(`committed on attempt ${attempt} after ${stats.global.conflicts} conflict`);

  try {
    new Lane({ retry: { conflict: { base_ms: -1 } } });
  } catch (e) {
    if (!(e instanceof PolicyError)) throw e;
    const path: string = e.path;
    console.log(`${e.code} at ${path}: ${e.rule}`);
  }
}

main().catch((e: unknown) => { console.error(e); process.exitCode = 1; });
