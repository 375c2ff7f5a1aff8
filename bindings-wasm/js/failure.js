'use strict';
/**
 * What writelane understands of an error: AWS SDK v3 errors and Node socket errors become
 * failures (code, HTTP status, retry-after hint, unknown outcome) for the engine to
 * classify; a user's `classify` function may answer first.
 *
 * @module writelane/failure
 */

const { native, isWhole, wholeArg } = require('./native.js');
const { argumentError } = require('./errors.js');

/** Longer "codes" are not error codes (the engine refuses codes over 256 bytes). */
const MAX_CODE_LENGTH = 256;

/** Node socket errors raised before the request was sent: a retry is safe. */
const BEFORE_SEND = new Set(['ECONNREFUSED', 'ENOTFOUND', 'EAI_AGAIN', 'EHOSTUNREACH', 'ENETUNREACH', 'EADDRNOTAVAIL']);
/** Errors after the request may have been sent: the outcome is unknown. */
const AFTER_SEND = new Set(['ECONNRESET', 'EPIPE', 'ETIMEDOUT', 'ECONNABORTED', 'ERR_HTTP2_STREAM_ERROR', 'UND_ERR_SOCKET']);
/** The SDK's Node handler names a request that timed out after sending `TimeoutError`. */
const TIMEOUT_NAMES = new Set(['TimeoutError']);

function headerValue(headers, name) {
  if (!headers || typeof headers !== 'object') return undefined;
  if (typeof headers.get === 'function' && !(name in headers)) {
    const v = headers.get(name);
    return v === null ? undefined : v;
  }
  if (headers[name] !== undefined) return headers[name];
  for (const key of Object.keys(headers)) {
    if (key.toLowerCase() === name) return headers[key];
  }
  return undefined;
}

function retryAfterOf(error) {
  const value = headerValue(error.$response?.headers, 'x-amz-retry-after');
  if (typeof value === 'string') {
    const ms = native.parseRetryAfter(value);
    return ms < 0 ? null : ms;
  }
  if (typeof value === 'number' && isWhole(value)) return value;
  return null;
}

function codeOf(error) {
  const c = typeof error.Code === 'string' && error.Code ? error.Code : error.name;
  if (typeof c !== 'string' || c === '' || c === 'Error' || c.length > MAX_CODE_LENGTH) return null;
  return c;
}

/**
 * What writelane understands of an error thrown by an AWS SDK v3 call (or by a Node
 * socket): `{code, status, retryAfterMs, outcomeUnknown}`. Errors it does not recognise
 * give `{code: null, status: null, ...}`, which the engine treats as fatal.
 * @param {unknown} error
 * @returns {{code: string | null, status: number | null, retryAfterMs: number | null, outcomeUnknown: boolean}}
 */
function failureFromError(error) {
  const failure = { code: null, status: null, retryAfterMs: null, outcomeUnknown: false };
  if (error === null || typeof error !== 'object') return failure;
  const meta = error.$metadata;
  const isSdk = (meta !== null && typeof meta === 'object') || error.$fault !== undefined;
  const status = meta?.httpStatusCode;
  const hasStatus = Number.isInteger(status) && status >= 0 && status <= 65535;
  const sysCode = typeof error.code === 'string' ? error.code : undefined;
  if (!hasStatus) {
    // No response: a network error. Before sending, retry; after, the outcome is unknown.
    if (error.name === 'AbortError') return failure;
    if (sysCode !== undefined && BEFORE_SEND.has(sysCode)) {
      failure.code = 'ConnectionError';
      return failure;
    }
    if ((sysCode !== undefined && AFTER_SEND.has(sysCode)) || TIMEOUT_NAMES.has(error.name)) {
      failure.outcomeUnknown = true;
      return failure;
    }
    if (!isSdk) return failure;
  }
  if (!isSdk) return failure;
  failure.code = codeOf(error);
  if (hasStatus) failure.status = status;
  const retryable = error.$retryable;
  if (retryable && typeof retryable === 'object') {
    // A modelled retryable error: listed codes still win, an unlisted one follows the hint.
    failure.status = retryable.throttling ? 429 : 503;
  }
  failure.retryAfterMs = retryAfterOf(error);
  return failure;
}

/** Check and normalise what a user's `classify` returned. */
function checkFailure(f) {
  if (typeof f !== 'object' || Array.isArray(f)) {
    throw argumentError('classify()', 'must return a failure object or null', f);
  }
  const out = { code: null, status: null, retryAfterMs: null, outcomeUnknown: false, intendedToken: null };
  if (f.code !== undefined && f.code !== null) {
    if (typeof f.code !== 'string') throw argumentError('classify().code', 'must be a string', f.code);
    out.code = f.code;
  }
  if (f.status !== undefined && f.status !== null) {
    if (!Number.isInteger(f.status) || f.status < 0 || f.status > 65535) {
      throw argumentError('classify().status', 'must be an HTTP status (0 to 65535)', f.status);
    }
    out.status = f.status;
  }
  if (f.retryAfterMs !== undefined && f.retryAfterMs !== null) {
    out.retryAfterMs = wholeArg(f.retryAfterMs, 'classify().retryAfterMs');
  }
  if (f.outcomeUnknown !== undefined) {
    if (typeof f.outcomeUnknown !== 'boolean') {
      throw argumentError('classify().outcomeUnknown', 'must be a boolean', f.outcomeUnknown);
    }
    out.outcomeUnknown = f.outcomeUnknown;
  }
  if (f.intendedToken !== undefined && f.intendedToken !== null) {
    if (typeof f.intendedToken !== 'string') {
      throw argumentError('classify().intendedToken', 'must be a string', f.intendedToken);
    }
    out.intendedToken = f.intendedToken;
  }
  return out;
}

/** The failure for an error: the user's classify first (when it returns one), then ours. */
function failureOf(error, classify) {
  if (classify !== undefined) {
    const f = classify(error);
    if (f !== undefined && f !== null) return checkFailure(f);
  }
  return failureFromError(error);
}

function checkClassify(classify, field) {
  if (classify !== undefined && classify !== null && typeof classify !== 'function') {
    throw argumentError(field, 'must be a function', classify);
  }
  return classify ?? undefined;
}

/** Intern a code in a native engine or strategy; `-2` when it must go as text. */
function internCode(raw, map, code) {
  let h = map.get(code);
  if (h !== undefined) return h;
  h = raw.internCode(code);
  if (h < 0) return -2;
  map.set(code, h);
  return h;
}

/**
 * Feed a failed read or write of `op` to a native engine: the code as an interned handle,
 * or as the core's JSON when it cannot be interned. Returns the native status.
 */
function feedFailure(raw, codes, now, op, isWrite, f) {
  const code = f.code === null ? -1 : internCode(raw, codes, f.code);
  if (code !== -2) {
    const args = [now, op, code, f.status ?? -1, f.retryAfterMs ?? -1, f.outcomeUnknown, f.intendedToken ?? undefined];
    return isWrite ? raw.writeFailed(...args) : raw.readFailed(...args);
  }
  const failure = { code: f.code, outcome_unknown: f.outcomeUnknown };
  if (f.status !== null) failure.status = f.status;
  if (f.retryAfterMs !== null) failure.retry_after_ms = f.retryAfterMs;
  if (f.intendedToken) failure.intended_token = f.intendedToken;
  return raw.handleJson(now, JSON.stringify({ type: isWrite ? 'write_failed' : 'read_failed', op, failure }));
}

module.exports = { failureFromError, failureOf, checkClassify, internCode, feedFailure };
