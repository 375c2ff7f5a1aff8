'use strict';
/**
 * Policies (validated and completed by the core) and the canonical change token of IAM
 * policy documents.
 *
 * @module writelane/policy
 */

const { native } = require('./native.js');
const { PolicyError, TokenError, UsageError, describe } = require('./errors.js');

/** Check that a value is plain JSON (no NaN, BigInt, functions or class instances). */
function checkJson(value, path) {
  switch (typeof value) {
    case 'string':
    case 'boolean':
      return;
    case 'number':
      if (!Number.isFinite(value)) throw new PolicyError(path, `expected a finite number, found ${value}`);
      return;
    case 'object':
      if (value === null) return;
      if (Array.isArray(value)) {
        value.forEach((item, i) => checkJson(item, `${path}[${i}]`));
        return;
      }
      {
        const proto = Object.getPrototypeOf(value);
        if (proto !== Object.prototype && proto !== null) {
          throw new PolicyError(path, `expected a plain object, found ${proto?.constructor?.name ?? 'object'}`);
        }
        for (const [key, item] of Object.entries(value)) {
          if (item === undefined) continue;
          checkJson(item, path === '$' ? key : `${path}.${key}`);
        }
      }
      return;
    default:
      throw new PolicyError(path, `expected a JSON value, found ${typeof value}`);
  }
}

const POLICY_KEY = Symbol('writelane.policy');

/** A policy from what the core answered (`{ok, policy}` or `{ok: false, path, rule}`). */
function fromResult(text) {
  const result = JSON.parse(text);
  if (!result.ok) throw new PolicyError(result.path, result.rule);
  return new Policy(POLICY_KEY, JSON.stringify(result.policy), result.policy);
}

/** A complete, validated policy. Build one with `Policy.preset` or `Policy.fromJSON`. */
class Policy {
  /** @param {symbol} key @param {string} text @param {object} object */
  constructor(key, text, object) {
    if (key !== POLICY_KEY) {
      throw new UsageError('use Policy.preset() or Policy.fromJSON() to build a Policy', 'invalid_argument');
    }
    this._text = text;
    this._object = object;
    Object.freeze(this);
  }

  /**
   * The named preset (`iam`, `aws-standard`) with optional overrides, merged field by
   * field as the core merges them.
   * @param {string} name
   * @param {object} [overrides]
   * @returns {Policy}
   */
  static preset(name, overrides) {
    if (typeof name !== 'string') {
      throw new PolicyError('preset', `expected a preset name (string), found ${describe(name)}`);
    }
    if (overrides === undefined || overrides === null) {
      return Policy.fromJSON(JSON.stringify(name));
    }
    if (typeof overrides !== 'object' || Array.isArray(overrides)) {
      throw new PolicyError('$', `expected an object of overrides, found ${describe(overrides)}`);
    }
    checkJson(overrides, '$');
    if (overrides.preset !== undefined && overrides.preset !== name) {
      throw new PolicyError('preset', `overrides name preset ${JSON.stringify(overrides.preset)}, not ${JSON.stringify(name)}`);
    }
    return Policy.fromJSON(JSON.stringify({ ...overrides, preset: name }));
  }

  /**
   * A policy from JSON text: a preset name as a JSON string, an object of overrides with
   * optional `preset` and `service`, or `null` for the default preset.
   * @param {string} text
   * @returns {Policy}
   */
  static fromJSON(text) {
    if (typeof text !== 'string') {
      throw new PolicyError('$', `expected JSON text, found ${describe(text)}`);
    }
    return fromResult(native.parsePolicy(text));
  }

  /** The preset this policy started from. */
  get preset() {
    return this._object.preset;
  }

  /** The complete effective policy as a plain object (a copy). */
  toJSON() {
    return JSON.parse(this._text);
  }

  /** The complete effective policy as JSON text. */
  toString() {
    return this._text;
  }
}

/** Accept a preset name, JSON text, a plain object, a Policy or nothing (the default). */
function resolvePolicy(policy) {
  if (policy instanceof Policy) return policy;
  if (policy === undefined || policy === null) return Policy.fromJSON('null');
  if (typeof policy === 'string') {
    const t = policy.trim();
    if (t.startsWith('{') || t.startsWith('"') || t.startsWith('[') || t === 'null') {
      return Policy.fromJSON(policy);
    }
    return Policy.fromJSON(JSON.stringify(policy));
  }
  if (typeof policy === 'object' && !Array.isArray(policy)) {
    checkJson(policy, '$');
    return Policy.fromJSON(JSON.stringify(policy));
  }
  throw new PolicyError('$', `expected a preset name, JSON text, an object or a Policy, found ${describe(policy)}`);
}

/** The policy a lane given a lease store runs: the core's rule (`lanes.mode` is `shared`). */
function policyForStore(policy) {
  return fromResult(native.policyForStore(policy.toString()));
}

/**
 * The canonical change token of an IAM policy document (`c1:sha256:...`): semantically
 * equal documents (URL-encoded or not, statements reordered, scalar or list fields,
 * action case, ...) get equal tokens.
 * @param {string | object} document
 * @returns {string}
 */
function policyToken(document) {
  let text = document;
  if (typeof document === 'object' && document !== null) {
    text = JSON.stringify(document);
  } else if (typeof document !== 'string') {
    throw new TokenError('$', `expected the document as text or an object, found ${describe(document)}`);
  }
  const result = JSON.parse(native.policyToken(text));
  if (!result.ok) throw new TokenError(result.path, result.rule);
  return result.token;
}

module.exports = { Policy, resolvePolicy, policyForStore, policyToken };
