'use strict';
/**
 * The WebAssembly module (writelane-core compiled by wasm-bindgen) and the small checks
 * every other module uses to pass values across its boundary: whole milliseconds, seeds,
 * JSON text, and the engine's kept error turned into a `UsageError`.
 *
 * @module writelane/native
 */

const native = require('../pkg/writelane_wasm.js');
const { UsageError, argumentError } = require('./errors.js');

/** Returned by native calls with no value when they fail; `takeError` tells why. */
const STATUS_ERROR = -1;

/** Turn the kept error of a native engine or strategy into a UsageError. */
function nativeError(raw, field = null) {
  const text = raw.takeError();
  if (text === undefined) return new UsageError('the engine refused the call', 'internal', field);
  const { kind, message } = JSON.parse(text);
  return new UsageError(message, kind, field);
}

/** JSON text of an argument, or a UsageError naming it when it is not JSON. */
function jsonText(value, field) {
  let text;
  try {
    text = JSON.stringify(value);
  } catch (e) {
    throw new UsageError(`${field} is not JSON: ${e.message}`, 'invalid_argument', field);
  }
  if (typeof text !== 'string') throw argumentError(field, 'must be an object or JSON text', value);
  return text;
}

function isWhole(value) {
  return typeof value === 'number' && Number.isSafeInteger(value) && value >= 0;
}

function wholeArg(value, field) {
  if (!isWhole(value)) {
    throw argumentError(field, 'must be a whole number of milliseconds from 0 to 2^53-1', value);
  }
  return value;
}

/** The seed option, or a random one. */
function seedOf(options, field = 'options.seed') {
  const seed = options?.seed;
  if (seed === undefined || seed === null) return Math.floor(Math.random() * 2 ** 53);
  if (!isWhole(seed)) throw argumentError(field, 'must be a whole number from 0 to 2^53-1', seed);
  return seed;
}

/** The owner option (a name in lease records, checked by the core), or undefined. */
function ownerOf(options, field = 'options.owner') {
  const owner = options?.owner;
  if (owner === undefined || owner === null) return undefined;
  if (typeof owner !== 'string') throw argumentError(field, 'must be a string', owner);
  const refused = native.checkOwner(owner);
  if (refused !== undefined) {
    const { kind, message } = JSON.parse(refused);
    throw new UsageError(`${field}: ${message}`, kind, field);
  }
  return owner;
}

/** A writer's description in lease records, or undefined for none. */
function holderOf(options, field = 'options.holder') {
  const holder = options?.holder;
  if (holder === undefined || holder === null) return undefined;
  if (typeof holder !== 'string') throw argumentError(field, 'must be a string', holder);
  return holder;
}

/** Refuse options that are not an object. */
function checkOptions(options) {
  if (options !== undefined && options !== null && typeof options !== 'object') {
    throw argumentError('options', 'must be an object', options);
  }
}

module.exports = {
  native,
  STATUS_ERROR,
  nativeError,
  jsonText,
  isWhole,
  wholeArg,
  seedOf,
  ownerOf,
  holderOf,
  checkOptions,
};
