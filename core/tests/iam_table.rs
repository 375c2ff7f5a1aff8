//! The IAM entity table against the IAM API model's operation list (committed by
//! `scripts/gen-iam-entities.py` as `core/src/iam/operations.txt`): every write operation
//! is mapped, no read operation is, every parameter the table reads exists in the model
//! with the same requiredness, and the table was generated from this very list.

use std::collections::{BTreeMap, BTreeSet};

use sha2::{Digest, Sha256};
use writelane_core::iam::{Access, Presence, Source, IAM};

const OPERATIONS_TXT: &str = include_str!("../src/iam/operations.txt");
const TABLE_RS: &str = include_str!("../src/iam/table.rs");

/// Members that name an entity wherever they appear; the table must use each one.
const ENTITY_MEMBERS: &[&str] = &[
    "RoleName",
    "UserName",
    "NewUserName",
    "GroupName",
    "NewGroupName",
    "PolicyArn",
    "InstanceProfileName",
    "OpenIDConnectProviderArn",
    "SAMLProviderArn",
    "ServerCertificateName",
    "NewServerCertificateName",
    "SerialNumber",
    "VirtualMFADeviceName",
    "DelegationRequestId",
    "AWSServiceName",
];

struct ModelOp {
    write: bool,
    /// Member name -> required.
    members: BTreeMap<String, bool>,
}

fn model() -> BTreeMap<String, ModelOp> {
    let mut ops = BTreeMap::new();
    for line in OPERATIONS_TXT
        .lines()
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
    {
        let fields: Vec<&str> = line.split(' ').collect();
        assert_eq!(fields.len(), 3, "operations.txt line {line:?}");
        let members = if fields[2] == "-" {
            BTreeMap::new()
        } else {
            fields[2]
                .split(',')
                .map(|m| (m.trim_end_matches('*').to_owned(), m.ends_with('*')))
                .collect()
        };
        let write = match fields[0] {
            "write" => true,
            "read" => false,
            other => panic!("operations.txt: class {other:?}"),
        };
        ops.insert(fields[1].to_owned(), ModelOp { write, members });
    }
    ops
}

#[test]
fn the_model_list_is_the_real_one() {
    let ops = model();
    // botocore's IAM model had 176 operations when this was written; fewer than 150
    // means the list was cut, not that IAM shrank.
    assert!(ops.len() >= 150, "{} operations", ops.len());
    assert!(ops["PutRolePolicy"].write && !ops["GetRole"].write);
}

#[test]
fn every_write_is_mapped_and_no_read_is() {
    let ops = model();
    for (name, op) in &ops {
        let read_by_rule = IAM.read_prefixes.iter().any(|p| name.starts_with(p));
        assert_eq!(
            read_by_rule, !op.write,
            "{name}: the read rule and the list disagree"
        );
        match IAM.access(name) {
            Access::Write(entry) => {
                assert!(op.write, "{name} is a read but mapped");
                assert_eq!(entry.name, name);
                assert!(
                    !entry.slots.is_empty() || entry.response_named.is_some(),
                    "{name}: a write with no entity and no reason"
                );
            }
            Access::Read => assert!(!op.write, "{name} is a write but not mapped"),
            Access::Unknown => panic!("{name}: in the model, unknown to the table"),
        }
    }
    let table: BTreeSet<&str> = IAM.operations.iter().map(|o| o.name).collect();
    let writes: BTreeSet<&str> = ops
        .iter()
        .filter(|(_, o)| o.write)
        .map(|(n, _)| n.as_str())
        .collect();
    assert_eq!(table, writes, "the table and the model's writes differ");
    let mut sorted: Vec<&str> = IAM.operations.iter().map(|o| o.name).collect();
    sorted.sort_unstable();
    sorted.dedup();
    assert_eq!(
        sorted,
        IAM.operations.iter().map(|o| o.name).collect::<Vec<_>>(),
        "sorted and unique"
    );
}

#[test]
fn table_parameters_exist_in_the_model() {
    let ops = model();
    for entry in IAM.operations {
        let op = &ops[entry.name];
        let mut used = BTreeSet::new();
        for slot in entry.slots {
            if let Source::Param {
                upper,
                lower,
                presence,
                ..
            } = slot.source
            {
                let required = op
                    .members
                    .get(upper)
                    .unwrap_or_else(|| panic!("{}: no member {upper}", entry.name));
                assert_eq!(
                    *required,
                    presence == Presence::Required,
                    "{}.{upper} requiredness",
                    entry.name
                );
                let mut expected_lower = upper[..1].to_lowercase();
                expected_lower.push_str(&upper[1..]);
                assert_eq!(
                    lower, expected_lower,
                    "{}.{upper}: CloudTrail spelling",
                    entry.name
                );
                used.insert(upper);
            }
        }
        for member in op.members.keys() {
            if ENTITY_MEMBERS.contains(&member.as_str()) {
                assert!(
                    used.contains(member.as_str()),
                    "{}: member {member} names an entity but is not mapped",
                    entry.name
                );
            }
        }
    }
}

#[test]
fn table_is_not_edited_by_hand() {
    let header = "// table sha256: ";
    let line = TABLE_RS
        .lines()
        .find(|l| l.starts_with(header))
        .expect("table.rs records its body's digest");
    let body_at = TABLE_RS.find(line).expect("the line is in the file") + line.len() + 1;
    let body = TABLE_RS.get(body_at..).expect("a body follows");
    let digest: String = Sha256::digest(body.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    assert_eq!(
        &line[header.len()..],
        digest,
        "core/src/iam/table.rs was edited by hand: change scripts/gen-iam-entities.py and run it"
    );
}

#[test]
fn table_is_generated_from_this_list() {
    let digest: String = Sha256::digest(OPERATIONS_TXT.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    let recorded = TABLE_RS
        .lines()
        .find_map(|l| l.strip_prefix("// operations.txt sha256: "))
        .expect("table.rs records the list's digest");
    assert_eq!(
        recorded, digest,
        "core/src/iam/table.rs is stale: run bindings-python/.venv/bin/python scripts/gen-iam-entities.py"
    );
}

mod no_panic {
    use proptest::prelude::*;
    use serde_json::{json, Value};
    use writelane_core::iam::{Context, IAM};

    fn value() -> impl Strategy<Value = Value> {
        prop_oneof![
            Just(Value::Null),
            any::<i64>().prop_map(|n| json!(n)),
            "[a-z:/*]{0,12}".prop_map(Value::String),
            "arn:[a-z-]{0,6}:[a-z]{0,4}:[a-z0-9-]{0,3}:[0-9a-z]{0,12}:[a-z/-]{0,30}"
                .prop_map(Value::String),
            Just(json!([])),
        ]
    }

    proptest! {
        /// Any parameter values, in either spelling, give entities or a typed error.
        #[test]
        fn any_request_resolves_or_errors(
            op in 0usize..IAM.operations.len(),
            values in proptest::collection::vec(value(), 0..6),
            lower in any::<bool>(),
            account in proptest::option::of("[0-9]{12}"),
            caller in proptest::option::of("[a-z]{0,5}"),
        ) {
            let op = &IAM.operations[op];
            let mut params = serde_json::Map::new();
            for (slot, v) in op.slots.iter().zip(values) {
                if let writelane_core::iam::Source::Param { upper, lower: low, .. } = slot.source {
                    params.insert(if lower { low } else { upper }.to_owned(), v);
                }
            }
            let ctx = Context { account: account.as_deref(), partition: "aws", caller_user: caller.as_deref() };
            if let Ok(entities) = op.entities(&Value::Object(params), &ctx) {
                let keys: Vec<String> = entities.iter().map(|e| e.key()).collect();
                let mut sorted = keys.clone();
                sorted.sort();
                sorted.dedup();
                prop_assert_eq!(keys, sorted);
            }
        }
    }
}
