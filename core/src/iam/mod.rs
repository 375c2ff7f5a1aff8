//! Which entity an AWS control-plane write touches, from its operation name and request
//! parameters: the table behind per-entity lanes for SDK calls and behind `writelane
//! trail`, which keys CloudTrail records the same way.
//!
//! The IAM table ([`IAM`]) is generated from botocore's IAM API model by
//! `scripts/gen-iam-entities.py`, which also commits the model's operation list
//! (`core/src/iam/operations.txt`); a test checks that every write operation of that list
//! is mapped and no read operation is. Other services are added as another
//! [`ServiceTable`] of [`Operation`] entries, with no new code.
//!
//! # Reads and writes
//!
//! An IAM operation whose name starts with `Get`, `List`, `Simulate` or `Generate` is a
//! read: `Generate*` only starts a report job about the account and changes no entity.
//! Every other IAM operation is a write.
//!
//! # Parameter names
//!
//! The API spells request parameters in UpperCamel (`RoleName`), CloudTrail's
//! `requestParameters` in lowerCamel with only the first character lowered (`roleName`,
//! `sAMLProviderArn`). Lookups accept both.
//!
//! # Canonical keys
//!
//! [`Entity::key`] is the entity's ARN when its account is known
//! (`arn:aws:iam::123456789012:role/deploy`), `account:type/name` for account-wide
//! settings and other entities that have no ARN (`123456789012:account-setting/alias`),
//! and `type/name` when the account is unknown. The path (`/service-role/`) is never part
//! of a key: IAM names are unique within an account and entity type whatever their path,
//! and CloudTrail's `roleName` carries no path. An operation that touches two entities
//! (`AddUserToGroup`, `AttachRolePolicy`) lists both, sorted by key, the order in which
//! lanes are taken so two such writers never wait on each other in a cycle.

use std::fmt;

use crate::limits::MAX_ENTITY_LEN;

pub mod docs;
#[rustfmt::skip]
mod table;

/// The kind of entity a write touches: a service and a resource type. It is data, not a
/// closed list, so another service's table declares its own types; the IAM ones are the
/// associated constants ([`EntityType::ROLE`], ...).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct EntityType {
    service: &'static str,
    resource: &'static str,
    has_arn: bool,
}

impl EntityType {
    /// An IAM role (`role`).
    pub const ROLE: EntityType = EntityType::new("iam", "role", true);
    /// An IAM user (`user`); its access keys, signing certificates, SSH keys, login
    /// profile and service credentials are part of it.
    pub const USER: EntityType = EntityType::new("iam", "user", true);
    /// An IAM group (`group`).
    pub const GROUP: EntityType = EntityType::new("iam", "group", true);
    /// A managed policy (`policy`), customer or AWS managed, with its versions.
    pub const POLICY: EntityType = EntityType::new("iam", "policy", true);
    /// An instance profile (`instance-profile`).
    pub const INSTANCE_PROFILE: EntityType = EntityType::new("iam", "instance-profile", true);
    /// An OpenID Connect provider (`oidc-provider`), named by its URL without `https://`.
    pub const OIDC_PROVIDER: EntityType = EntityType::new("iam", "oidc-provider", true);
    /// A SAML provider (`saml-provider`).
    pub const SAML_PROVIDER: EntityType = EntityType::new("iam", "saml-provider", true);
    /// A server certificate (`server-certificate`).
    pub const SERVER_CERTIFICATE: EntityType = EntityType::new("iam", "server-certificate", true);
    /// An MFA device (`mfa`), named by its device name or hardware serial number.
    pub const MFA_DEVICE: EntityType = EntityType::new("iam", "mfa", true);
    /// A service-linked role being created (`service-linked-role`), named by its service
    /// (`elasticbeanstalk.amazonaws.com`): the role's own name is chosen by IAM.
    pub const SERVICE_LINKED_ROLE: EntityType =
        EntityType::new("iam", "service-linked-role", false);
    /// A delegation request (`delegation-request`), named by its id.
    pub const DELEGATION_REQUEST: EntityType = EntityType::new("iam", "delegation-request", false);
    /// An account-wide setting (`account-setting`): the alias, the password policy, the
    /// STS preferences, an Organizations feature.
    pub const ACCOUNT_SETTING: EntityType = EntityType::new("iam", "account-setting", false);

    /// A type of `service` (its ARN namespace, `iam`) named `resource` (`role`);
    /// `has_arn` when its ARN is `arn:PARTITION:SERVICE::ACCOUNT:RESOURCE/...`, the shape
    /// keys and ARN parameters are read in.
    pub const fn new(service: &'static str, resource: &'static str, has_arn: bool) -> Self {
        EntityType {
            service,
            resource,
            has_arn,
        }
    }

    /// The resource type as it appears in keys and ARNs (`role`, `instance-profile`).
    pub fn as_str(self) -> &'static str {
        self.resource
    }

    /// The service's ARN namespace (`iam`).
    pub fn service(self) -> &'static str {
        self.service
    }

    /// Whether this entity has an ARN of the form
    /// `arn:<partition>:<service>::<account>:<type>/<name>`.
    pub fn has_arn(self) -> bool {
        self.has_arn
    }
}

impl fmt::Display for EntityType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// How a request parameter's value names its entity.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NameForm {
    /// The value is the entity's name (`RoleName`).
    Name,
    /// The value is the entity's ARN (`PolicyArn`); its account and partition are used in
    /// the key, its last path segment (all of the resource after the type for OIDC
    /// providers) is the name.
    Arn,
    /// The value is an OIDC provider's URL: the name is the URL without `https://` and
    /// without a trailing `/`, as in the provider's ARN.
    OidcUrl,
    /// The value is an MFA serial number: a virtual device's ARN, or a hardware serial
    /// taken as the name.
    MfaSerial,
}

/// What a missing parameter means.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Presence {
    /// The API requires the parameter: a request without it names no entity.
    Required,
    /// Without the parameter the operation does not touch this entity (`NewUserName`).
    Optional,
    /// Without the parameter the entity is the calling IAM user (`UserName` of
    /// `CreateAccessKey`).
    CallerIfAbsent,
}

/// Where an entity's name comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Source {
    /// A request parameter.
    Param {
        /// The API's spelling (`RoleName`).
        upper: &'static str,
        /// CloudTrail's spelling (`roleName`).
        lower: &'static str,
        /// How the value names the entity.
        form: NameForm,
        /// What a missing value means.
        presence: Presence,
    },
    /// The calling IAM user (`ChangePassword`).
    Caller,
    /// A fixed name: the account-wide setting the operation changes.
    Fixed(&'static str),
}

/// One entity an operation touches.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Slot {
    /// Its type.
    pub entity: EntityType,
    /// Where its name comes from.
    pub source: Source,
}

/// A write operation and the entities it touches.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Operation {
    /// The API operation name, which is CloudTrail's `eventName` (`PutRolePolicy`).
    pub name: &'static str,
    /// Set when the operation creates an entity that only its response names
    /// (`CreateDelegationRequest`): no request can collide on it, so `slots` is empty.
    pub response_named: Option<EntityType>,
    /// The entities, in the model's parameter order; [`Operation::entities`] sorts them.
    pub slots: &'static [Slot],
}

/// Whether an operation reads or writes, by a service table.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    /// A write, with its table entry.
    Write(&'static Operation),
    /// A read: it touches no lane.
    Read,
    /// Not in the table and not named like a read: an operation newer than the table, or
    /// not the service's. Callers let it through unserialised and count it.
    Unknown,
}

/// The write operations of one service and its rule for reads.
#[derive(Debug, Clone, Copy)]
pub struct ServiceTable {
    /// The service's CloudTrail `eventSource` (`iam.amazonaws.com`).
    pub event_source: &'static str,
    /// Operation name prefixes that mark a read.
    pub read_prefixes: &'static [&'static str],
    /// Every write operation, sorted by name.
    pub operations: &'static [Operation],
}

/// The IAM table, generated from botocore's IAM model.
pub static IAM: ServiceTable = ServiceTable {
    event_source: "iam.amazonaws.com",
    read_prefixes: &["Get", "List", "Simulate", "Generate"],
    operations: table::IAM_OPERATIONS,
};

impl ServiceTable {
    /// The table entry of write operation `name` (`PutRolePolicy`), if it has one.
    pub fn operation(&self, name: &str) -> Option<&'static Operation> {
        self.operations
            .binary_search_by(|op| op.name.cmp(name))
            .ok()
            .and_then(|i| self.operations.get(i))
    }

    /// Whether `name` is a write (with its entry), a read, or unknown to this table.
    pub fn access(&self, name: &str) -> Access {
        if let Some(op) = self.operation(name) {
            Access::Write(op)
        } else if self.read_prefixes.iter().any(|p| name.starts_with(p)) {
            Access::Read
        } else {
            Access::Unknown
        }
    }
}

/// What the caller knows about where the request runs, for keys and implicit entities.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Context<'a> {
    /// The account the request acts in (CloudTrail's `recipientAccountId`), if known.
    pub account: Option<&'a str>,
    /// The partition (`aws`, `aws-cn`, `aws-us-gov`).
    pub partition: &'a str,
    /// The calling IAM user's name, for operations that default to it.
    pub caller_user: Option<&'a str>,
}

impl Default for Context<'_> {
    fn default() -> Self {
        Context {
            account: None,
            partition: "aws",
            caller_user: None,
        }
    }
}

/// A request parameter's value as a lookup sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Value<'v> {
    /// The request has no such parameter (or it is JSON `null`).
    Absent,
    /// A string value.
    Text(&'v str),
    /// A value that is not a string.
    NotText,
}

/// An entity a write touches.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Entity {
    /// Its type.
    pub entity_type: EntityType,
    /// Its name, without path.
    pub name: String,
    /// Its account, from an ARN parameter or the [`Context`].
    pub account: Option<String>,
    /// Its partition.
    pub partition: String,
}

impl Entity {
    /// The canonical key: the ARN when the account is known and the type has ARNs,
    /// `account:type/name` when it has none, `type/name` without an account.
    pub fn key(&self) -> String {
        let ty = self.entity_type.as_str();
        match &self.account {
            Some(account) if self.entity_type.has_arn() => {
                format!(
                    "arn:{}:{}::{account}:{ty}/{}",
                    self.partition,
                    self.entity_type.service(),
                    self.name
                )
            }
            Some(account) => format!("{account}:{ty}/{}", self.name),
            None => format!("{ty}/{}", self.name),
        }
    }
}

impl fmt::Display for Entity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.key())
    }
}

/// Why a request's entities could not be determined.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EntityError {
    /// The request parameters are neither an object nor null.
    #[error("{operation}: request parameters are not an object")]
    NotAnObject {
        /// The operation.
        operation: &'static str,
    },
    /// A required parameter is missing.
    #[error("{operation}: missing parameter {parameter}")]
    Missing {
        /// The operation.
        operation: &'static str,
        /// The parameter, in the API's spelling.
        parameter: &'static str,
    },
    /// A parameter's value is not a string, or is empty.
    #[error("{operation}: parameter {parameter} is not a non-empty string")]
    NotText {
        /// The operation.
        operation: &'static str,
        /// The parameter, in the API's spelling.
        parameter: &'static str,
    },
    /// An ARN parameter is not an ARN of the expected service and resource type.
    #[error("{operation}: parameter {parameter} is not an {expected} ARN")]
    BadArn {
        /// The operation.
        operation: &'static str,
        /// The parameter, in the API's spelling.
        parameter: &'static str,
        /// The resource type expected (`policy`).
        expected: &'static str,
    },
    /// The entity's key would be longer than the engine accepts.
    #[error("{operation}: the key named by {parameter} is longer than {max} bytes")]
    TooLong {
        /// The operation.
        operation: &'static str,
        /// The parameter, in the API's spelling (or `caller`).
        parameter: &'static str,
        /// The limit ([`crate::MAX_ENTITY_LEN`]).
        max: usize,
    },
    /// The operation acts on the calling user, and the context names none.
    #[error("{operation}: the entity is the calling user, and it is not known")]
    CallerUnknown {
        /// The operation.
        operation: &'static str,
    },
}

/// An ARN split into its parts; `resource` is everything after the account.
struct Arn<'a> {
    partition: &'a str,
    service: &'a str,
    account: &'a str,
    resource: &'a str,
}

fn split_arn(text: &str) -> Option<Arn<'_>> {
    let mut parts = text.splitn(6, ':');
    let (prefix, partition, service, _region, account, resource) = (
        parts.next()?,
        parts.next()?,
        parts.next()?,
        parts.next()?,
        parts.next()?,
        parts.next()?,
    );
    (prefix == "arn" && !partition.is_empty() && !account.is_empty()).then_some(Arn {
        partition,
        service,
        account,
        resource,
    })
}

impl Operation {
    /// The entities a request touches, sorted by key and without duplicates, reading the
    /// parameters from a JSON object in either spelling (CloudTrail's
    /// `requestParameters`, or an SDK call's input). `null` counts as no parameters.
    pub fn entities(
        &self,
        params: &serde_json::Value,
        ctx: &Context<'_>,
    ) -> Result<Vec<Entity>, EntityError> {
        let map = match params {
            serde_json::Value::Object(map) => Some(map),
            serde_json::Value::Null => None,
            _ => {
                return Err(EntityError::NotAnObject {
                    operation: self.name,
                })
            }
        };
        self.entities_by(
            |name| match map.and_then(|m| m.get(name)) {
                None | Some(serde_json::Value::Null) => Value::Absent,
                Some(serde_json::Value::String(s)) => Value::Text(s),
                Some(_) => Value::NotText,
            },
            ctx,
        )
    }

    /// [`Operation::entities`] over any parameter store: `lookup` is asked for the API
    /// spelling first, then CloudTrail's.
    pub fn entities_by<'v>(
        &self,
        mut lookup: impl FnMut(&str) -> Value<'v>,
        ctx: &Context<'_>,
    ) -> Result<Vec<Entity>, EntityError> {
        let mut out: Vec<Entity> = Vec::with_capacity(self.slots.len());
        for slot in self.slots {
            if let Some(entity) = self.resolve(slot, &mut lookup, ctx)? {
                if entity.key().len() > MAX_ENTITY_LEN {
                    return Err(EntityError::TooLong {
                        operation: self.name,
                        parameter: match slot.source {
                            Source::Param { upper, .. } => upper,
                            Source::Caller | Source::Fixed(_) => "caller",
                        },
                        max: MAX_ENTITY_LEN,
                    });
                }
                out.push(entity);
            }
        }
        out.sort_by_cached_key(Entity::key);
        out.dedup_by(|a, b| a.key() == b.key());
        Ok(out)
    }

    fn resolve<'v>(
        &self,
        slot: &Slot,
        lookup: &mut impl FnMut(&str) -> Value<'v>,
        ctx: &Context<'_>,
    ) -> Result<Option<Entity>, EntityError> {
        let local = |name: &str| Entity {
            entity_type: slot.entity,
            name: name.to_owned(),
            account: ctx.account.map(str::to_owned),
            partition: ctx.partition.to_owned(),
        };
        let caller = || {
            ctx.caller_user
                .filter(|u| !u.is_empty())
                .map(local)
                .ok_or(EntityError::CallerUnknown {
                    operation: self.name,
                })
        };
        let (upper, lower, form, presence) = match slot.source {
            Source::Fixed(name) => return Ok(Some(local(name))),
            Source::Caller => return caller().map(Some),
            Source::Param {
                upper,
                lower,
                form,
                presence,
            } => (upper, lower, form, presence),
        };
        let value = match lookup(upper) {
            Value::Absent => lookup(lower),
            found => found,
        };
        let text = match value {
            Value::Text(t) if !t.is_empty() => t,
            Value::Absent => {
                return match presence {
                    Presence::Required => Err(EntityError::Missing {
                        operation: self.name,
                        parameter: upper,
                    }),
                    Presence::Optional => Ok(None),
                    Presence::CallerIfAbsent => caller().map(Some),
                }
            }
            Value::Text(_) | Value::NotText => {
                return Err(EntityError::NotText {
                    operation: self.name,
                    parameter: upper,
                })
            }
        };
        let bad_arn = || EntityError::BadArn {
            operation: self.name,
            parameter: upper,
            expected: slot.entity.as_str(),
        };
        let from_arn = |arn: &Arn<'_>, name: &str| Entity {
            entity_type: slot.entity,
            name: name.to_owned(),
            account: Some(arn.account.to_owned()),
            partition: arn.partition.to_owned(),
        };
        match form {
            NameForm::Name => Ok(Some(local(text))),
            NameForm::OidcUrl => {
                let host = text
                    .strip_prefix("https://")
                    .unwrap_or(text)
                    .trim_end_matches('/');
                if host.is_empty() {
                    return Err(EntityError::NotText {
                        operation: self.name,
                        parameter: upper,
                    });
                }
                Ok(Some(local(host)))
            }
            NameForm::MfaSerial if !text.starts_with("arn:") => Ok(Some(local(text))),
            NameForm::Arn | NameForm::MfaSerial => {
                let arn = split_arn(text).ok_or_else(bad_arn)?;
                let ty = slot.entity.as_str();
                let rest = arn
                    .resource
                    .strip_prefix(ty)
                    .and_then(|r| r.strip_prefix('/'))
                    .filter(|_| arn.service == slot.entity.service())
                    .ok_or_else(bad_arn)?;
                // An OIDC provider's name is its URL host and path; other names are the
                // last path segment, so a path never splits one entity into two keys.
                let name = if slot.entity == EntityType::OIDC_PROVIDER {
                    rest
                } else {
                    rest.rsplit('/').next().unwrap_or(rest)
                };
                if name.is_empty() {
                    return Err(bad_arn());
                }
                Ok(Some(from_arn(&arn, name)))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const ACCOUNT: Context<'static> = Context {
        account: Some("123456789012"),
        partition: "aws",
        caller_user: Some("alice"),
    };

    fn keys(op: &str, params: serde_json::Value, ctx: &Context<'_>) -> Vec<String> {
        let op = IAM.operation(op).expect("in the table");
        op.entities(&params, ctx)
            .expect("resolves")
            .iter()
            .map(Entity::key)
            .collect()
    }

    #[test]
    fn both_spellings_name_the_same_role() {
        let api = keys(
            "PutRolePolicy",
            json!({"RoleName": "deploy", "PolicyName": "p"}),
            &ACCOUNT,
        );
        let trail = keys(
            "PutRolePolicy",
            json!({"roleName": "deploy", "policyName": "p"}),
            &ACCOUNT,
        );
        assert_eq!(api, vec!["arn:aws:iam::123456789012:role/deploy"]);
        assert_eq!(api, trail);
    }

    #[test]
    fn two_entities_come_sorted_by_key() {
        let got = keys(
            "AddUserToGroup",
            json!({"groupName": "ops", "userName": "bob"}),
            &ACCOUNT,
        );
        assert_eq!(
            got,
            vec![
                "arn:aws:iam::123456789012:group/ops",
                "arn:aws:iam::123456789012:user/bob"
            ]
        );
        let got = keys(
            "AttachRolePolicy",
            json!({"roleName": "deploy", "policyArn": "arn:aws:iam::aws:policy/service-role/AWSLambdaRole"}),
            &Context::default(),
        );
        assert_eq!(
            got,
            vec!["arn:aws:iam::aws:policy/AWSLambdaRole", "role/deploy"]
        );
    }

    #[test]
    fn arn_parameters_keep_their_account_and_partition() {
        let got = keys(
            "TagSAMLProvider",
            json!({"sAMLProviderArn": "arn:aws-cn:iam::210987654321:saml-provider/okta", "tags": []}),
            &ACCOUNT,
        );
        assert_eq!(got, vec!["arn:aws-cn:iam::210987654321:saml-provider/okta"]);
        let got = keys(
            "UpdateOpenIDConnectProviderThumbprint",
            json!({"OpenIDConnectProviderArn": "arn:aws:iam::123456789012:oidc-provider/token.actions.githubusercontent.com/x", "ThumbprintList": []}),
            &ACCOUNT,
        );
        assert_eq!(
            got,
            vec!["arn:aws:iam::123456789012:oidc-provider/token.actions.githubusercontent.com/x"]
        );
        // Created by URL, updated by ARN: one key.
        let created = keys(
            "CreateOpenIDConnectProvider",
            json!({"url": "https://token.actions.githubusercontent.com/x/"}),
            &ACCOUNT,
        );
        assert_eq!(created, got);
    }

    #[test]
    fn user_defaults_to_the_caller_only_where_the_api_says_so() {
        assert_eq!(
            keys("CreateAccessKey", json!({}), &ACCOUNT),
            vec!["arn:aws:iam::123456789012:user/alice"]
        );
        assert_eq!(
            keys("ChangePassword", json!(null), &ACCOUNT),
            vec!["arn:aws:iam::123456789012:user/alice"]
        );
        let op = IAM.operation("CreateAccessKey").unwrap();
        assert_eq!(
            op.entities(&json!({}), &Context::default()),
            Err(EntityError::CallerUnknown {
                operation: "CreateAccessKey"
            })
        );
        let op = IAM.operation("DeleteRole").unwrap();
        assert_eq!(
            op.entities(&json!({}), &ACCOUNT),
            Err(EntityError::Missing {
                operation: "DeleteRole",
                parameter: "RoleName"
            })
        );
    }

    #[test]
    fn renames_touch_both_names_and_settings_have_no_arn() {
        assert_eq!(
            keys(
                "UpdateUser",
                json!({"userName": "bob", "newUserName": "rob"}),
                &ACCOUNT
            ),
            vec![
                "arn:aws:iam::123456789012:user/bob",
                "arn:aws:iam::123456789012:user/rob"
            ]
        );
        assert_eq!(
            keys(
                "UpdateUser",
                json!({"userName": "bob", "newUserName": "bob"}),
                &ACCOUNT
            ),
            vec!["arn:aws:iam::123456789012:user/bob"]
        );
        assert_eq!(
            keys("DeleteAccountPasswordPolicy", json!(null), &ACCOUNT),
            vec!["123456789012:account-setting/password-policy"]
        );
        assert_eq!(
            keys(
                "CreateServiceLinkedRole",
                json!({"aWSServiceName": "ecs.amazonaws.com"}),
                &Context::default()
            ),
            vec!["service-linked-role/ecs.amazonaws.com"]
        );
    }

    #[test]
    fn bad_values_are_typed_errors() {
        let op = IAM.operation("AttachRolePolicy").unwrap();
        let err = |p| op.entities(&p, &ACCOUNT).unwrap_err();
        assert_eq!(
            err(json!({"roleName": 7, "policyArn": "arn:aws:iam::aws:policy/X"})),
            EntityError::NotText {
                operation: "AttachRolePolicy",
                parameter: "RoleName"
            }
        );
        for arn in [
            "arn:aws:iam::aws:role/X",
            "arn:aws:s3:::policy/X",
            "policy/X",
            "arn:aws:iam::aws:policy/",
            "arn:aws:iam:::policy/X",
        ] {
            assert_eq!(
                err(json!({"roleName": "r", "policyArn": arn})),
                EntityError::BadArn {
                    operation: "AttachRolePolicy",
                    parameter: "PolicyArn",
                    expected: "policy"
                },
                "{arn}"
            );
        }
        assert_eq!(
            err(json!([1])),
            EntityError::NotAnObject {
                operation: "AttachRolePolicy"
            }
        );
        let long = "r".repeat(MAX_ENTITY_LEN);
        assert!(matches!(
            err(json!({"roleName": long, "policyArn": "arn:aws:iam::aws:policy/X"})),
            EntityError::TooLong {
                parameter: "RoleName",
                ..
            }
        ));
    }

    #[test]
    fn another_service_is_table_entries_only() {
        // A made-up service declared as data: its types, its operations, its read rule.
        const QUEUE: EntityType = EntityType::new("sqs", "queue", true);
        static OPS: &[Operation] = &[Operation {
            name: "SetQueueAttributes",
            response_named: None,
            slots: &[Slot {
                entity: QUEUE,
                source: Source::Param {
                    upper: "QueueArn",
                    lower: "queueArn",
                    form: NameForm::Arn,
                    presence: Presence::Required,
                },
            }],
        }];
        static SQS: ServiceTable = ServiceTable {
            event_source: "sqs.amazonaws.com",
            read_prefixes: &["Get", "List"],
            operations: OPS,
        };
        let Access::Write(op) = SQS.access("SetQueueAttributes") else {
            panic!("a write")
        };
        let got = op
            .entities(
                &json!({"queueArn": "arn:aws:sqs::123456789012:queue/jobs"}),
                &ACCOUNT,
            )
            .unwrap();
        assert_eq!(got[0].key(), "arn:aws:sqs::123456789012:queue/jobs");
        assert_eq!(
            op.entities(
                &json!({"queueArn": "arn:aws:iam::123456789012:queue/jobs"}),
                &ACCOUNT
            ),
            Err(EntityError::BadArn {
                operation: "SetQueueAttributes",
                parameter: "QueueArn",
                expected: "queue"
            }),
            "an ARN of another service is refused"
        );
        assert_eq!(SQS.access("GetQueueUrl"), Access::Read);
    }

    #[test]
    fn access_follows_the_read_rule() {
        assert!(
            matches!(IAM.access("PutRolePolicy"), Access::Write(op) if op.name == "PutRolePolicy")
        );
        assert_eq!(IAM.access("GetRole"), Access::Read);
        assert_eq!(IAM.access("GenerateCredentialReport"), Access::Read);
        assert_eq!(IAM.access("FrobnicateRole"), Access::Unknown);
        assert_eq!(IAM.access(""), Access::Unknown);
    }
}
