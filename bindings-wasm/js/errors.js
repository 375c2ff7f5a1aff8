'use strict';
/**
 * The errors writelane throws, shared by the lane, the engine and the lease stores.
 *
 * @module writelane/errors
 */

/** Base class of every error writelane throws; `code` is a stable string. */
class WritelaneError extends Error {
  /**
   * @param {string} message
   * @param {string} code
   * @param {{cause?: unknown}} [options]
   */
  constructor(message, code, options) {
    super(message, options);
    this.name = new.target.name;
    /** Stable machine-readable code (`ERR_WRITELANE_*`). */
    this.code = code;
  }
}

/** A policy was refused: `path` names the field, `rule` the rule it broke. */
class PolicyError extends WritelaneError {
  /**
   * @param {string} path
   * @param {string} rule
   */
  constructor(path, rule) {
    super(`policy field \`${path}\`: ${rule}`, 'ERR_WRITELANE_POLICY');
    /** Dotted path of the offending field (`retry.conflict.base_ms`), `$` for the whole. */
    this.path = path;
    /** The rule that was broken. */
    this.rule = rule;
  }
}

/** The API was called in a way its contract does not allow. Nothing was changed. */
class UsageError extends WritelaneError {
  /**
   * @param {string} message
   * @param {string} kind
   * @param {string | null} [field]
   */
  constructor(message, kind, field = null) {
    super(message, 'ERR_WRITELANE_USAGE');
    /** The kind: `invalid_argument`, or the core's (`time_went_backwards`, `unknown_op`, ...). */
    this.kind = kind;
    /** The argument or option at fault, when one is. */
    this.field = field;
  }
}

/** A policy document could not be canonicalised: `path` says where, `rule` why. */
class TokenError extends WritelaneError {
  /**
   * @param {string} path
   * @param {string} rule
   */
  constructor(path, rule) {
    super(`policy document at \`${path}\`: ${rule}`, 'ERR_WRITELANE_TOKEN');
    /** Path inside the document (`Statement[1].Effect`), `$` for the whole. */
    this.path = path;
    /** What is wrong. */
    this.rule = rule;
  }
}

/**
 * A document (or an argument) given to a helper of `iam` does not have the shape the
 * change needs. Thrown inside an update's `change`, it refuses that update (code
 * `DocumentError`).
 */
class DocumentError extends WritelaneError {
  /**
   * @param {string} path
   * @param {string} rule
   */
  constructor(path, rule) {
    super(`${path}: ${rule}`, 'ERR_WRITELANE_DOCUMENT');
    /** The field at fault, as a path into the document (`Statement[2].Sid`), or the argument. */
    this.path = path;
    /** What is wrong with it. */
    this.rule = rule;
  }
}

/**
 * The entity of an SDK call cannot be determined from its request (`LanePlugin.keys`):
 * `operation` is the API operation, `parameter` the request parameter at fault in the
 * API's spelling (`RoleName`; `params` for the request as a whole, `caller` for the
 * calling user, `service` for a service with no table). The lane plugin itself never
 * throws it: such a call goes through unserialised and is counted.
 */
class EntityError extends WritelaneError {
  /**
   * @param {string} operation
   * @param {string} parameter
   * @param {string} reason
   */
  constructor(operation, parameter, reason) {
    super(reason, 'ERR_WRITELANE_ENTITY');
    /** The operation. */
    this.operation = operation;
    /** The request parameter at fault. */
    this.parameter = parameter;
    /** What is wrong with it. */
    this.reason = reason;
  }
}

/** A write gave up. `reason` says why, `cause` is the last error seen (or the abort reason). */
class GaveUpError extends WritelaneError {
  /**
   * @param {string} entity
   * @param {{reason: string, attempts: number, class?: string, scope?: string, code?: string | null, http_status?: number | null}} outcome
   * @param {unknown} cause
   */
  constructor(entity, outcome, cause) {
    const detail = outcome.code ? ` (last error ${outcome.code})` : '';
    super(
      `gave up writing ${entity} after ${outcome.attempts} attempt(s): ${outcome.reason}${detail}`,
      'ERR_WRITELANE_GAVE_UP',
      cause === undefined ? undefined : { cause },
    );
    /** The entity written. */
    this.entity = entity;
    /** `attempts_exhausted`, `budget_exhausted`, `deadline_exceeded`, `fatal` or `cancelled`. */
    this.reason = outcome.reason;
    /** Write attempts made. */
    this.attempts = outcome.attempts;
    /** The class of the last failure, when the reason has one. */
    this.errorClass = outcome.class ?? null;
    /** For `budget_exhausted`: which budget, `engine` or `entity`. */
    this.scope = outcome.scope ?? null;
    /** The last error code, when known. */
    this.errorCode = outcome.code ?? null;
    /** For `fatal`: the HTTP status, when known. */
    this.httpStatus = outcome.http_status ?? null;
  }
}

/** The entity is at a revision the writer has not seen; nothing was written on it. */
class StaleRevisionError extends WritelaneError {
  /**
   * @param {string} entity
   * @param {string | null} expected
   * @param {string | null} found
   * @param {number} attempts
   */
  constructor(entity, expected, found, attempts) {
    super(
      `stale revision of ${entity}: expected ${expected ?? 'no revision'}, found ${found ?? 'no revision'}`,
      'ERR_WRITELANE_STALE_REVISION',
    );
    /** The entity written. */
    this.entity = entity;
    /** The token the writer based its change on. */
    this.expected = expected;
    /** The token found. */
    this.found = found;
    /** Write attempts made. */
    this.attempts = attempts;
  }
}

/** A `RetryStrategy` refused a retry; `reason` says why, `cause` is the failed call's error. */
class RetryRefusedError extends WritelaneError {
  /**
   * @param {string} reason
   * @param {number} attempts
   * @param {string | null} errorClass
   * @param {unknown} cause
   */
  constructor(reason, attempts, errorClass, cause) {
    super(
      `retry refused after ${attempts} attempt(s): ${reason}`,
      'ERR_WRITELANE_RETRY_REFUSED',
      cause === undefined ? undefined : { cause },
    );
    /** `not_retryable`, `attempts_exhausted`, `budget_exhausted` or `deadline_exceeded`. */
    this.reason = reason;
    /** Attempts made, counting the first call. */
    this.attempts = attempts;
    /** The class of the failure. */
    this.errorClass = errorClass;
  }
}

/**
 * The failure of a lease store operation. `kind` is `unavailable` (the store could not be
 * reached or refused the request outright: the operation surely did not take effect) or
 * `lost` (the request went out and no reply came back: it may or may not have); and for
 * `forceRelease` only, `changed` (the record changed since it was read: nothing written).
 * Adapters throw it; `applyStoreOp` turns it into the engine's reply.
 */
class StoreError extends WritelaneError {
  /**
   * @param {'unavailable' | 'lost' | 'changed'} kind
   * @param {string} message
   * @param {{cause?: unknown}} [options]
   */
  constructor(kind, message, options) {
    super(`lease store ${kind}: ${message}`, 'ERR_WRITELANE_STORE', options);
    /** `unavailable`, `lost` or (from `forceRelease`) `changed`. */
    this.kind = kind;
  }
}

/** A short name of a value's type, for error messages. */
function describe(value) {
  if (value === null) return 'null';
  if (Array.isArray(value)) return 'array';
  return typeof value;
}

/** A UsageError (`invalid_argument`) naming the argument and the rule it broke. */
function argumentError(field, rule, value) {
  return new UsageError(`${field} ${rule}, got ${describe(value)}`, 'invalid_argument', field);
}

module.exports = {
  WritelaneError,
  PolicyError,
  UsageError,
  TokenError,
  DocumentError,
  EntityError,
  GaveUpError,
  StaleRevisionError,
  RetryRefusedError,
  StoreError,
  describe,
  argumentError,
};
