'use strict';
/**
 * Changes for the common IAM shapes, for `lane.update`: put a statement by `Sid` into a
 * policy document, remove one, add a principal to a trust policy, set tags.
 *
 * Thin wrappers over the core's `writelane_core::iam::docs` (the same functions every
 * binding exposes), so every language changes a document the same way. Each takes a
 * document (an object, or `null` for none yet) and returns a new one; the argument is
 * never modified. They are idempotent: applying one again to its own result changes
 * nothing, so a change that re-runs on a fresher document after a conflict is safe. A
 * document of the wrong shape throws `DocumentError` naming the field (inside an update's
 * `change`, that refuses the update).
 *
 * @module writelane/iam
 */

const { native } = require('./native.js');
const { DocumentError } = require('./errors.js');

function text(value, field) {
  let out;
  try {
    out = JSON.stringify(value === undefined ? null : value);
  } catch (e) {
    throw new DocumentError(field, `not representable as JSON: ${e.message}`);
  }
  return out;
}

function string(value, field) {
  if (typeof value !== 'string') throw new DocumentError(field, `must be a string, found ${value === null ? 'null' : typeof value}`);
  return value;
}

function result(json) {
  const parsed = JSON.parse(json);
  if (!parsed.ok) throw new DocumentError(parsed.field, parsed.rule);
  return parsed.value;
}

/**
 * Append `statement` to a policy document, or replace the statement with the same `Sid`
 * (it must have a non-empty string `Sid`). A missing `Version` becomes `2012-10-17`; a
 * single-statement `Statement` becomes a list.
 */
function putStatement(doc, statement) {
  return result(native.iamPutStatement(text(doc, 'doc'), text(statement, 'statement')));
}

/** Remove the statement with this `Sid` from a policy document, if there is one. */
function removeStatement(doc, sid) {
  return result(native.iamRemoveStatement(text(doc, 'doc'), string(sid, 'sid')));
}

/**
 * Add a principal to a role's trust policy: `kind` is `AWS`, `Service` or `Federated`,
 * `principal` an ARN, account id or service name. It goes into the statement with this
 * `Sid`, created (`Allow`, `sts:AssumeRole`) when missing; a principal already there is
 * not added twice.
 */
function addTrustPrincipal(doc, sid, kind, principal) {
  return result(native.iamAddTrustPrincipal(text(doc, 'doc'), string(sid, 'sid'), string(kind, 'kind'), string(principal, 'principal')));
}

/**
 * Set tags in an IAM tag list (`[{Key, Value}]`, `null`: empty): a key present gets its
 * new value in place, a new key is appended. `values` is an object or `[key, value]`
 * pairs, applied in order.
 */
function setTags(tags, values) {
  const pairs = Array.isArray(values) ? values : (values !== null && typeof values === 'object' ? Object.entries(values) : null);
  if (pairs === null) throw new DocumentError('values', 'must be an object or a list of [key, value] pairs');
  pairs.forEach((pair, i) => {
    if (!Array.isArray(pair) || pair.length !== 2) throw new DocumentError(`values[${i}]`, 'must be a [key, value] pair');
    string(pair[0], `values[${i}].key`);
    string(pair[1], `values[${i}].value`);
  });
  return result(native.iamSetTags(text(tags, 'tags'), JSON.stringify(pairs)));
}

/** The `change` of an update that puts `statement`: `lane.update(entity, { read, change: statementPutter(s), write })`. */
function statementPutter(statement) {
  return (doc) => putStatement(doc, statement);
}

module.exports = {
  putStatement, removeStatement, addTrustPrincipal, setTags, statementPutter,
};
