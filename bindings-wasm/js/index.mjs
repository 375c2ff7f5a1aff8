// ESM entry point of writelane: the same module as the CommonJS entry (one WebAssembly
// instance per process, whichever way it is loaded).
import { createRequire } from 'node:module';

const require = createRequire(import.meta.url);
const writelane = require('./index.js');

export const {
  Lane,
  Engine,
  RetryStrategy,
  RetryToken,
  Policy,
  policyToken,
  failureFromError,
  coreVersion,
  WritelaneError,
  PolicyError,
  UsageError,
  TokenError,
  DocumentError,
  EntityError,
  LanePlugin,
  GaveUpError,
  StaleRevisionError,
  RetryRefusedError,
  StoreError,
  MemoryStore,
  RedisStore,
  DynamoDBStore,
  S3Store,
  applyStoreOp,
  forceRelease,
  checkRecord,
  iam,
} = writelane;

export default writelane;
