// Type-checked with `tsc --noEmit --strict`: the package's hand-written index.d.ts must
// describe the API as it is used from TypeScript, including as an AWS SDK v3 retry
// strategy. Not run; the same calls are run by the JavaScript tests.
import { IAMClient, PutRolePolicyCommand, type PutRolePolicyCommandOutput } from '@aws-sdk/client-iam';
import {
  Lane, Engine, RetryStrategy, Policy, policyToken, failureFromError,
  WritelaneError, GaveUpError, StaleRevisionError, PolicyError, UsageError, RetryRefusedError,
  type Command, type WritelaneEvent, type Stats, type Failure, type RunOptions,
  MemoryStore, RedisStore, DynamoDBStore, S3Store, StoreError, applyStoreOp, forceRelease,
  type LeaseStore, type LeaseRecord, type StoreReply, type ForceReleaseResult, type Clock,
} from 'writelane';

const lane = new Lane('iam', { seed: 42 });
const tuned = new Lane(Policy.preset('iam', { retry: { conflict: { base_ms: 100, jitter: 'equal' } } }));
const fromText = new Lane('{"preset": "aws-standard"}');
const fromObject = new Lane({ deadline_ms: 60_000, budget: { per_entity_capacity: 50 } });

const iam = new IAMClient({ region: 'us-east-1', retryStrategy: lane.retryStrategy() });
const standard = new IAMClient({ region: 'us-east-1', retryStrategy: new RetryStrategy('aws-standard') });

async function attach(document: string, signal: AbortSignal): Promise<PutRolePolicyCommandOutput> {
  const options: RunOptions = {
    read: async () => policyToken(document),
    deadlineMs: 30_000,
    signal,
    classify: (error) => (error instanceof TypeError ? { code: 'ConnectionError' } : null),
  };
  try {
    return await lane.run('role/deploy', async (attempt: number, ctx) => {
      const base: string | null = ctx.baseToken;
      void base;
      void attempt;
      const out = await iam.send(new PutRolePolicyCommand({ RoleName: 'deploy', PolicyName: 'p', PolicyDocument: document }), {
        abortSignal: signal,
      });
      ctx.setToken(policyToken(document));
      // @ts-expect-error a change token is a string
      ctx.setToken(null);
      return out;
    }, options);
  } catch (e) {
    if (e instanceof StaleRevisionError) {
      const found: string | null = e.found;
      void found;
    } else if (e instanceof GaveUpError) {
      const reason: 'attempts_exhausted' | 'budget_exhausted' | 'deadline_exceeded' | 'fatal' | 'cancelled'
        | 'lease_lost' | 'lock_unavailable' = e.reason;
      const attempts: number = e.attempts;
      void reason;
      void attempts;
    } else if (e instanceof PolicyError || e instanceof UsageError) {
      const where: string | null = e instanceof PolicyError ? e.path : e.field;
      void where;
    }
    if (e instanceof WritelaneError) {
      const code: string = e.code;
      void code;
    }
    throw e;
  }
}

function drive(engine: Engine, now: number): number | null {
  const op: number = engine.submit('role/app', now, { expected: null });
  engine.submit('role/blind', now, { noRead: true });
  for (let c: Command | null = engine.pollCommand(); c !== null; c = engine.pollCommand()) {
    switch (c.type) {
      case 'read':
        engine.handle(now, { type: 'read_done', op: c.op, token: 'v1' });
        break;
      case 'write':
        engine.handle(now, c.attempt < 2
          ? { type: 'write_failed', op: c.op, failure: { code: 'ConcurrentModification', status: 409 } }
          : { type: 'write_done', op: c.op, token: null });
        break;
      case 'finish':
        if (c.outcome.status === 'gave_up') console.log(c.outcome.reason);
        break;
    }
  }
  const e: WritelaneEvent | null = engine.pollEvent();
  if (e?.type === 'retry_scheduled') console.log(e.delay_ms, e.class);
  const stats: Stats = engine.stats();
  console.log(op, stats.global.conflicts, stats.entities['role/app']?.busy);
  return engine.pollTimeout();
}

async function strategy(): Promise<void> {
  const s = new RetryStrategy(Policy.fromJSON('"aws-standard"'), { seed: 1, now: () => 0 });
  const t = await s.acquireInitialRetryToken('iam');
  try {
    const next = await s.refreshRetryTokenForRetry(t, { error: new Error('x'), errorType: 'TRANSIENT' });
    const delay: number = next.getRetryDelay();
    s.recordSuccess(next);
    void delay;
  } catch (e) {
    if (e instanceof RetryRefusedError) console.log(e.reason, e.attempts);
  }
  const f: Failure = failureFromError(new Error('boom'));
  console.log(f.code, f.outcomeUnknown, s.capacity('iam'));
}

void attach;
void drive(new Engine('iam', { seed: 1 }), 0);
void strategy();
void [tuned, fromText, fromObject, standard];

// The result type of `run` is what `write` resolves to, for async and plain functions.
void lane.run('role/x', async () => 5).then((n: number) => n.toFixed(0));
void lane.run('role/x', () => 'plain').then((s: string) => s.toUpperCase());

// Lease stores: the three primitives, and one operation in the engine's JSON form.
async function leases(): Promise<void> {
  const shared = new Lane('iam', { store: new MemoryStore(), holder: 'pipeline 12' });
  await shared.run('role/app', async (attempt, ctx) => ctx.fence ?? attempt, { holder: 'run 12, step 3' });
  const owner: string | null = shared.owner;
  void owner;
  const stores: LeaseStore[] = [
    new MemoryStore(),
    new RedisStore({ url: 'redis://127.0.0.1:6379', prefix: 'leases:' }),
    new DynamoDBStore({ table: 'writelane-leases', region: 'us-east-1' }),
    new S3Store({ bucket: 'writelane-leases', prefix: 'leases/', region: 'us-east-1', requestTimeoutMs: 2000 }),
  ];
  const bucketStore = new S3Store({ bucket: 'writelane-leases' });
  const objectKey: string = bucketStore.objectKey('role/app');
  console.log(objectKey, bucketStore.bucket, bucketStore.prefix);
  bucketStore.close();
  const record: LeaseRecord = {
    owner: 'host:1:a', epoch: 1, rvn: 7, lease_ms: 10_000, committed_token: null, holder: 'deploy run 3',
  };
  for (const store of stores) {
    const created = await store.putIfAbsent('role/app', record);
    if (!created.done) console.log(created.current?.owner);
    const reply: StoreReply = await applyStoreOp(store, { op: 'compare_and_swap', key: 'role/app', expected_rvn: 7, record });
    if (reply.reply === 'refused') console.log(reply.current?.epoch);
    const freed: ForceReleaseResult = await forceRelease(store, 'role/app', { expectedRvn: 7 });
    if (freed.result === 'released') console.log(freed.record.epoch);
    else if (freed.result === 'changed') console.log(freed.current?.rvn);
  }
  try {
    await new DynamoDBStore({ table: 't' }).createTable({ waitMs: 1000 });
  } catch (e) {
    if (e instanceof StoreError) console.log(e.kind);
  }
}
void leases;

// A lane on an injected clock: virtual time for tests and simulations.
let virtualNow = 0;
const clock: Clock = {
  nowMs: () => virtualNow,
  sleep: async (ms: number, signal: AbortSignal) => {
    if (!signal.aborted) virtualNow += ms;
  },
};
const timed = new Lane({ lease: { store_timeout_ms: 500 } }, { clock, store: new MemoryStore() });
void timed.run('role/app', async (attempt) => attempt).then((n: number) => n + timed.policy.toJSON().lease.store_timeout_ms);
