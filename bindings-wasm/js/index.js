'use strict';
/**
 * writelane for Node: the write discipline for cloud control planes.
 *
 * The decisions (lanes, leases, backoff, budgets, change-token checks, error classes, the
 * lease record's format) are made by writelane-core compiled to WebAssembly. The modules
 * here only drive it:
 *
 * - `lane.js`: `Lane`, the driver loop (the user's read and write, the store, timers);
 * - `engine.js`: `Engine`, the sans-IO engine for hosts with their own loop;
 * - `strategy.js`: `RetryStrategy`, the AWS SDK v3 retry strategy;
 * - `policy.js`: `Policy` and `policyToken`;
 * - `failure.js`: what an AWS SDK v3 or Node socket error means to the engine;
 * - `lease.js`: carrying out store operations, `forceRelease`, owner ids;
 * - `stores.js`: the lease-store adapters (memory, Redis, DynamoDB, S3);
 * - `iam.js`: changes for the common IAM shapes, for `lane.update` (exported as `iam`);
 * - `clock.js`, `errors.js`, `native.js`: the clock, the error classes, the wasm module.
 *
 * @module writelane
 */

const { native } = require('./native.js');
const errors = require('./errors.js');
const { Policy, policyToken } = require('./policy.js');
const { failureFromError } = require('./failure.js');
const { Lane } = require('./lane.js');
const iam = require('./iam.js');
const { Engine } = require('./engine.js');
const { RetryStrategy, RetryToken } = require('./strategy.js');
const { applyStoreOp, forceRelease, checkRecord } = require('./lease.js');
const {
  MemoryStore, RedisStore, DynamoDBStore, S3Store,
} = require('./stores.js');

/** The version of the writelane core inside this package. */
const coreVersion = native.coreVersion();

module.exports = {
  Lane,
  Engine,
  RetryStrategy,
  RetryToken,
  Policy,
  policyToken,
  failureFromError,
  coreVersion,
  WritelaneError: errors.WritelaneError,
  PolicyError: errors.PolicyError,
  UsageError: errors.UsageError,
  TokenError: errors.TokenError,
  DocumentError: errors.DocumentError,
  EntityError: errors.EntityError,
  LanePlugin: require('./sdk.js').LanePlugin,
  GaveUpError: errors.GaveUpError,
  StaleRevisionError: errors.StaleRevisionError,
  RetryRefusedError: errors.RetryRefusedError,
  StoreError: errors.StoreError,
  MemoryStore,
  RedisStore,
  DynamoDBStore,
  S3Store,
  applyStoreOp,
  forceRelease,
  checkRecord,
  iam,
};
