'use strict';
// The TypeScript event types in js/index.d.ts against the schema the core generates
// (tests/schema/events.json): the same event types, each with exactly the schema's
// fields, every field of the schema's JSON type, nullable where the schema says so, and
// string fields with an `enum` typed as exactly those literals. The compiler reads
// index.d.ts, so the check is of the types users see, not of a copy.

const { test } = require('node:test');
const assert = require('node:assert/strict');
const fs = require('node:fs');
const path = require('node:path');
const ts = require('typescript');

const schemaPath = path.resolve(__dirname, '../../tests/schema/events.json');
const dts = path.resolve(__dirname, '../js/index.d.ts');

/** The members of `WritelaneEvent` as `{type: {field: {types: Set, literals: Set, nullable}}}`. */
function eventTypes() {
  const program = ts.createProgram([dts], { strict: true, noEmit: true });
  const checker = program.getTypeChecker();
  const file = program.getSourceFile(dts);
  const alias = file.statements.find((s) => ts.isTypeAliasDeclaration(s) && s.name.text === 'WritelaneEvent');
  assert.ok(alias, 'index.d.ts declares WritelaneEvent');
  const union = checker.getTypeAtLocation(alias.name);
  assert.ok(union.isUnion(), 'WritelaneEvent is a union');
  const events = {};
  for (const member of union.types) {
    const fields = {};
    for (const prop of checker.getPropertiesOfType(member)) {
      const type = checker.getTypeOfSymbolAtLocation(prop, alias);
      const parts = type.isUnion() ? type.types : [type];
      const field = { types: new Set(), literals: new Set(), nullable: false };
      for (const t of parts) {
        if (t.flags & ts.TypeFlags.Null) field.nullable = true;
        else if (t.flags & ts.TypeFlags.StringLiteral) {
          field.types.add('string');
          field.literals.add(t.value);
        } else if (t.flags & ts.TypeFlags.String) field.types.add('string');
        else if (t.flags & ts.TypeFlags.Number) field.types.add('integer');
        else if (t.flags & (ts.TypeFlags.Boolean | ts.TypeFlags.BooleanLiteral)) field.types.add('boolean');
        else field.types.add(checker.typeToString(t));
      }
      fields[prop.name] = field;
    }
    const tag = fields.type;
    assert.ok(tag && tag.literals.size === 1, `an event type without one literal \`type\`: ${checker.typeToString(member)}`);
    const [name] = tag.literals;
    delete fields.type;
    assert.equal(events[name], undefined, `event type ${name} declared twice`);
    events[name] = fields;
  }
  return events;
}

test('the TypeScript event types match the schema generated from the core', () => {
  const schema = JSON.parse(fs.readFileSync(schemaPath, 'utf8'));
  const declared = eventTypes();
  assert.deepEqual(Object.keys(declared).sort(), Object.keys(schema.events).sort(), 'event types');
  for (const [name, { fields }] of Object.entries(schema.events)) {
    const got = declared[name];
    assert.deepEqual(Object.keys(got).sort(), Object.keys(fields).sort(), `${name}: fields`);
    for (const [field, spec] of Object.entries(fields)) {
      const where = `${name}.${field}`;
      assert.deepEqual([...got[field].types], [spec.type], `${where}: type`);
      assert.equal(got[field].nullable, spec.nullable, `${where}: nullable`);
      if (spec.enum !== undefined) {
        assert.deepEqual([...got[field].literals].sort(), [...spec.enum].sort(), `${where}: values`);
      } else {
        assert.equal(got[field].literals.size, 0, `${where}: the schema allows any ${spec.type}`);
      }
    }
  }
});

test('the check notices a drift', () => {
  // The same comparison against a schema with one field renamed must fail.
  const schema = JSON.parse(fs.readFileSync(schemaPath, 'utf8'));
  const { fields } = schema.events.retry_scheduled;
  fields.delay = fields.delay_ms;
  delete fields.delay_ms;
  const declared = eventTypes();
  assert.notDeepEqual(Object.keys(declared.retry_scheduled).sort(), Object.keys(fields).sort());
});
