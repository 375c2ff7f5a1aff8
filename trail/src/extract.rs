//! From one record: the entities written (through `writelane_core::iam`, the same table the
//! lanes use), the writer, the tool and its retry mode, the outcome, and for policy-document
//! writes the document slot and text.

use serde::Deserialize;
use serde_json::value::RawValue;
use writelane_core::iam::{self, Access, Context};

use crate::record::{RecordIn, UserIdentity};

/// IAM's event source.
pub const IAM_SOURCE: &str = "iam.amazonaws.com";

/// An entity written: account, type and name. Accounts are never merged.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct EntityKey {
    /// The account (`recipientAccountId`, else the caller's, else `unknown`).
    pub account: String,
    /// The entity type (`role`, `policy`, ...).
    pub kind: String,
    /// The entity's name.
    pub name: String,
}

impl EntityKey {
    /// `ACCOUNT:TYPE/NAME`, the entity's id in the report.
    pub fn id(&self) -> String {
        format!("{}:{}/{}", self.account, self.kind, self.name)
    }

    /// Split an id made by [`EntityKey::id`] back into its parts.
    pub fn from_id(id: &str) -> EntityKey {
        let (account, rest) = id.split_once(':').unwrap_or(("unknown", id));
        let (kind, name) = rest.split_once('/').unwrap_or(("unknown", rest));
        EntityKey {
            account: account.to_string(),
            kind: kind.to_string(),
            name: name.to_string(),
        }
    }
}

/// Which entities a write touches, or why none could be told.
pub enum Entities {
    /// The entities (at least one).
    Keys(Vec<EntityKey>),
    /// The action is a read after all (by IAM's naming rule).
    Read,
    /// The action is unknown to the table, or its parameters name no entity.
    Unmapped,
}

/// The entities a write record touches. IAM writes go through `writelane_core::iam::IAM`,
/// so trail keys and lane keys name the same entities; the records of a `--source` service
/// take their entity from `resources[]` (its ARN, typed by the resource type).
pub fn entities_of(record: &RecordIn<'_>, account: &str, source: &str) -> Entities {
    let action = record.event_name.as_deref().unwrap_or("");
    if source != IAM_SOURCE {
        return resource_entities(record.resources, account);
    }
    let op = match iam::IAM.access(action) {
        Access::Write(op) => op,
        Access::Read => return Entities::Read,
        Access::Unknown => return Entities::Unmapped,
    };
    let params: serde_json::Value = match record.request_parameters {
        None => serde_json::Value::Null,
        Some(raw) => serde_json::from_str(raw.get()).unwrap_or(serde_json::Value::Bool(false)),
    };
    let caller_user = record
        .user_identity
        .as_ref()
        .filter(|u| u.kind.as_deref() == Some("IAMUser"))
        .and_then(|u| u.user_name.as_deref());
    let ctx = Context {
        account: Some(account),
        partition: "aws",
        caller_user,
    };
    match op.entities(&params, &ctx) {
        Ok(list) if !list.is_empty() => Entities::Keys(
            list.into_iter()
                .map(|e| {
                    // An AWS managed policy (`arn:aws:iam::aws:policy/...`) is attached in
                    // each account apart: its writes belong to the account they are made
                    // in, or writers of unrelated accounts would seem to collide on it.
                    let (account, name) = match e.account {
                        Some(owner) if owner == "aws" => {
                            (account.to_string(), format!("aws:{}", e.name))
                        }
                        Some(owner) => (owner, e.name),
                        None => (account.to_string(), e.name),
                    };
                    EntityKey {
                        account,
                        kind: e.entity_type.as_str().to_string(),
                        name,
                    }
                })
                .collect(),
        ),
        _ => Entities::Unmapped,
    }
}

#[derive(Deserialize)]
struct Resource<'a> {
    #[serde(borrow, rename = "ARN", alias = "arn")]
    arn: Option<std::borrow::Cow<'a, str>>,
    #[serde(borrow, rename = "type")]
    kind: Option<std::borrow::Cow<'a, str>>,
}

fn resource_entities(resources: Option<&RawValue>, account: &str) -> Entities {
    let Some(raw) = resources else {
        return Entities::Unmapped;
    };
    let Ok(list) = serde_json::from_str::<Vec<Resource<'_>>>(raw.get()) else {
        return Entities::Unmapped;
    };
    let mut keys: Vec<EntityKey> = list
        .into_iter()
        .filter_map(|r| {
            let arn = r.arn?;
            // An ARN names its own account; CloudTrail leaves it empty for global names
            // (S3 buckets), which then belong to the recipient account.
            let arn_account = arn.split(':').nth(4).filter(|a| !a.is_empty());
            Some(EntityKey {
                account: arn_account.unwrap_or(account).to_string(),
                kind: r.kind.as_deref().unwrap_or("resource").to_string(),
                name: arn.into_owned(),
            })
        })
        .collect();
    keys.sort();
    keys.dedup();
    if keys.is_empty() {
        Entities::Unmapped
    } else {
        Entities::Keys(keys)
    }
}

/// Who made a call.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Writer {
    /// The writer's id: the issuing role's or the user's ARN, `#cloudformation` appended
    /// when CloudFormation acted for it.
    pub id: String,
    /// The session name of an assumed role: the run.
    pub run: Option<String>,
}

/// The service principal CloudFormation calls with.
pub const CLOUDFORMATION: &str = "cloudformation.amazonaws.com";

/// The writer of `record`.
pub fn writer_of(record: &RecordIn<'_>) -> Writer {
    let via_cfn = record.source_ip_address.as_deref() == Some(CLOUDFORMATION)
        || record
            .user_identity
            .as_ref()
            .and_then(|u| u.invoked_by.as_deref())
            == Some(CLOUDFORMATION);
    let (mut id, run) = match &record.user_identity {
        None => ("unknown".to_string(), None),
        Some(u) => identity(u),
    };
    if via_cfn && !id.ends_with(CLOUDFORMATION) {
        id.push_str("#cloudformation");
    }
    Writer { id, run }
}

fn identity(u: &UserIdentity<'_>) -> (String, Option<String>) {
    let arn = u.arn.as_deref().filter(|a| !a.is_empty());
    let issuer_arn = u
        .session_context
        .as_ref()
        .and_then(|s| s.session_issuer.as_ref())
        .and_then(|i| i.arn.as_deref())
        .filter(|a| !a.is_empty());
    match u.kind.as_deref() {
        Some("AssumedRole") | Some("FederatedUser") => {
            // The session's ARN ends with the session name: `.../ROLE/SESSION` for a role,
            // `federated-user/NAME` for a federated user.
            let run = arn.and_then(|a| a.rsplit('/').next()).map(str::to_string);
            let id = issuer_arn
                .map(str::to_string)
                .or_else(|| arn.and_then(role_arn_of_session))
                .or_else(|| arn.map(str::to_string))
                .unwrap_or_else(|| fallback(u));
            (id, run)
        }
        Some("AWSService") => (
            u.invoked_by
                .as_deref()
                .map(str::to_string)
                .unwrap_or_else(|| fallback(u)),
            None,
        ),
        _ => (arn.map(str::to_string).unwrap_or_else(|| fallback(u)), None),
    }
}

/// `arn:aws:sts::ACCOUNT:assumed-role/ROLE/SESSION` to `arn:aws:iam::ACCOUNT:role/ROLE`
/// (without the role's path, which the session ARN does not carry).
fn role_arn_of_session(arn: &str) -> Option<String> {
    let mut parts = arn.splitn(6, ':');
    let (_, partition, _, _, account, resource) = (
        parts.next()?,
        parts.next()?,
        parts.next()?,
        parts.next()?,
        parts.next()?,
        parts.next()?,
    );
    let role = resource.strip_prefix("assumed-role/")?.split('/').next()?;
    Some(format!("arn:{partition}:iam::{account}:role/{role}"))
}

fn fallback(u: &UserIdentity<'_>) -> String {
    u.principal_id
        .as_deref()
        .or(u.account_id.as_deref())
        .unwrap_or("unknown")
        .to_string()
}

/// What a writer id says about the writer: (short name, account, kind, via CloudFormation).
pub fn describe_writer(id: &str) -> (String, String, String, bool) {
    let (base, via) = match id.strip_suffix("#cloudformation") {
        Some(base) => (base, true),
        None => (id, false),
    };
    let parts: Vec<&str> = base.splitn(6, ':').collect();
    let (name, account, kind) = if parts.len() == 6 && parts[0] == "arn" {
        let resource = parts[5];
        let account = parts[4].to_string();
        let last = resource.rsplit('/').next().unwrap_or(resource).to_string();
        if resource == "root" {
            ("root".to_string(), account, "root")
        } else if resource.starts_with("role/") {
            (last, account, "role")
        } else if resource.starts_with("user/") {
            (last, account, "user")
        } else if resource.starts_with("federated-user/") {
            (last, account, "federated")
        } else if resource.starts_with("assumed-role/") {
            let role = resource.split('/').nth(1).unwrap_or(resource).to_string();
            (role, account, "role")
        } else {
            (last, account, "unknown")
        }
    } else if base.ends_with(".amazonaws.com") {
        (base.to_string(), String::new(), "service")
    } else {
        (base.to_string(), String::new(), "unknown")
    };
    let name = if via {
        format!("{name} (CloudFormation)")
    } else {
        name
    };
    (name, account, kind.to_string(), via)
}

/// The tool a call came from, from its user agent (and CloudFormation acting for a role).
pub fn tool_of(user_agent: &str, via_cloudformation: bool) -> &'static str {
    let ua = user_agent.to_ascii_lowercase();
    if via_cloudformation || ua.contains(CLOUDFORMATION) {
        "cloudformation"
    } else if ua.contains("terraform") {
        // Terraform's AWS provider sends `... Terraform/1.x ... terraform-provider-aws/5.x
        // ... aws-sdk-go-v2/...`: the tool is Terraform, not the SDK it is built on.
        "terraform"
    } else if ua.contains("aws-cli/") {
        "aws-cli"
    } else if ua.contains("boto3/") {
        "boto3"
    } else if ua.contains("botocore/") {
        "botocore"
    } else if ua.contains("aws-sdk-js/3")
        || ua.contains("aws-sdk-js-v3")
        || ua.contains("@aws-sdk/")
    {
        "aws-sdk-js-v3"
    } else if ua.contains("aws-sdk-nodejs/") || ua.contains("aws-sdk-js/2") {
        "aws-sdk-js-v2"
    } else if ua.contains("aws-sdk-go-v2/") {
        "aws-sdk-go-v2"
    } else if ua.contains("aws-sdk-go/") {
        "aws-sdk-go"
    } else if ua.contains("aws-sdk-java") {
        "aws-sdk-java"
    } else if ua.contains("console.amazonaws.com")
        || ua.contains("signin.amazonaws.com")
        || ua == "aws internal"
        || ua.starts_with("mozilla/")
    {
        "console"
    } else {
        "other"
    }
}

/// The retry mode a user agent declares with `cfg/retry-mode#MODE`, if any.
pub fn retry_mode_of(user_agent: &str) -> Option<&str> {
    let start = user_agent.find("cfg/retry-mode#")? + "cfg/retry-mode#".len();
    let rest = &user_agent[start..];
    let end = rest
        .find(|c: char| c.is_whitespace() || c == '/' || c == ')' || c == ',')
        .unwrap_or(rest.len());
    Some(&rest[..end]).filter(|m| !m.is_empty())
}

/// The error codes of a conflict, in both spellings found in real trails.
pub fn is_conflict(error_code: &str) -> bool {
    matches!(
        error_code,
        "ConcurrentModification"
            | "ConcurrentModificationException"
            | "EntityTemporarilyUnmodifiable"
            | "EntityTemporarilyUnmodifiableException"
    )
}

/// A policy-document write: which document of the entity, and its text.
#[derive(Debug, PartialEq, Eq)]
pub struct DocumentWrite {
    /// `inline policy NAME`, `trust policy` or `policy version`.
    pub slot: String,
    /// The document as the record gives it (JSON or URL-encoded JSON).
    pub document: String,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct DocParams {
    policy_name: Option<String>,
    policy_document: Option<String>,
    assume_role_policy_document: Option<String>,
}

/// The policy document an action writes, for the actions that write one whole.
pub fn document_of(action: &str, params: Option<&RawValue>) -> Option<DocumentWrite> {
    let p: DocParams = serde_json::from_str(params?.get()).ok()?;
    let (slot, document) = match action {
        "PutRolePolicy" | "PutUserPolicy" | "PutGroupPolicy" => (
            format!("inline policy {}", p.policy_name?),
            p.policy_document?,
        ),
        "CreatePolicyVersion" | "CreatePolicy" => {
            ("policy version".to_string(), p.policy_document?)
        }
        "UpdateAssumeRolePolicy" => ("trust policy".to_string(), p.policy_document?),
        "CreateRole" => ("trust policy".to_string(), p.assume_role_policy_document?),
        _ => return None,
    };
    Some(DocumentWrite { slot, document })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(json: &str) -> RecordIn<'_> {
        serde_json::from_str(json).unwrap()
    }

    #[test]
    fn an_assumed_role_is_its_issuing_role_with_the_session_as_run() {
        let r = record(
            r#"{"userIdentity":{"type":"AssumedRole","arn":"arn:aws:sts::111122223333:assumed-role/deploy-pipeline/gha-run-42",
                "sessionContext":{"sessionIssuer":{"type":"Role","arn":"arn:aws:iam::111122223333:role/ci/deploy-pipeline","userName":"deploy-pipeline"}}}}"#,
        );
        let w = writer_of(&r);
        assert_eq!(w.id, "arn:aws:iam::111122223333:role/ci/deploy-pipeline");
        assert_eq!(w.run.as_deref(), Some("gha-run-42"));
        let (name, account, kind, via) = describe_writer(&w.id);
        assert_eq!(
            (name.as_str(), account.as_str(), kind.as_str(), via),
            ("deploy-pipeline", "111122223333", "role", false)
        );
    }

    #[test]
    fn a_session_without_issuer_falls_back_to_the_role_of_its_arn() {
        let r = record(
            r#"{"userIdentity":{"type":"AssumedRole","arn":"arn:aws:sts::111122223333:assumed-role/remediator/i-0abc"}}"#,
        );
        assert_eq!(
            writer_of(&r).id,
            "arn:aws:iam::111122223333:role/remediator"
        );
    }

    #[test]
    fn cloudformation_for_a_role_is_a_writer_of_its_own() {
        let r = record(
            r#"{"sourceIPAddress":"cloudformation.amazonaws.com","userAgent":"cloudformation.amazonaws.com",
                "userIdentity":{"type":"AssumedRole","arn":"arn:aws:sts::111122223333:assumed-role/cdk-hnb659fds-cfn-exec-role-111122223333-us-east-1/AWSCloudFormation",
                "invokedBy":"cloudformation.amazonaws.com",
                "sessionContext":{"sessionIssuer":{"arn":"arn:aws:iam::111122223333:role/cdk-hnb659fds-cfn-exec-role-111122223333-us-east-1"}}}}"#,
        );
        let w = writer_of(&r);
        assert_eq!(w.id, "arn:aws:iam::111122223333:role/cdk-hnb659fds-cfn-exec-role-111122223333-us-east-1#cloudformation");
        let (name, _, kind, via) = describe_writer(&w.id);
        assert_eq!(
            name,
            "cdk-hnb659fds-cfn-exec-role-111122223333-us-east-1 (CloudFormation)"
        );
        assert_eq!((kind.as_str(), via), ("role", true));
        assert_eq!(
            tool_of("cloudformation.amazonaws.com", true),
            "cloudformation"
        );
    }

    #[test]
    fn an_iam_user_is_itself() {
        let r = record(
            r#"{"userIdentity":{"type":"IAMUser","arn":"arn:aws:iam::111122223333:user/alice","userName":"alice"}}"#,
        );
        let w = writer_of(&r);
        assert_eq!(
            (w.id.as_str(), w.run),
            ("arn:aws:iam::111122223333:user/alice", None)
        );
        assert_eq!(describe_writer(&w.id).2, "user");
    }

    #[test]
    fn tools_and_retry_modes_come_from_the_user_agent() {
        let cases = [
            ("APN/1.0 HashiCorp/1.0 Terraform/1.9.8 (+https://www.terraform.io) terraform-provider-aws/5.80.0 (+https://registry.terraform.io/providers/hashicorp/aws) aws-sdk-go-v2/1.32.6 ua/2.1 os/linux lang/go#1.23.3 md/GOOS#linux api/iam#1.38.2 cfg/retry-mode#standard", "terraform", Some("standard")),
            ("aws-cli/2.22.10 md/awscrt#0.22.0 ua/2.0 os/linux#6.8 md/arch#x86_64 lang/python#3.12.6 exec-env/CloudShell cfg/retry-mode#standard md/installer#exe md/prompt#off md/command#iam.put-role-policy", "aws-cli", Some("standard")),
            ("Boto3/1.34.84 md/Botocore#1.34.84 ua/2.0 os/linux#5.10 md/arch#x86_64 lang/python#3.12.3 exec-env/AWS_Lambda_python3.12 cfg/retry-mode#legacy Botocore/1.34.84", "boto3", Some("legacy")),
            ("Botocore/1.35.0 ua/2.0 cfg/retry-mode#adaptive", "botocore", Some("adaptive")),
            ("aws-sdk-js/3.699.0 ua/2.1 os/linux#5.10 lang/js md/nodejs#20.18.0 api/iam#3.699.0 m/N,E", "aws-sdk-js-v3", None),
            ("aws-sdk-go-v2/1.32.6 ua/2.1 os/linux lang/go#1.23.3 api/iam#1.38.2", "aws-sdk-go-v2", None),
            ("AWS Internal", "console", None),
            ("Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36", "console", None),
            ("curl/8.5.0", "other", None),
        ];
        for (ua, tool, mode) in cases {
            assert_eq!(tool_of(ua, false), tool, "{ua}");
            assert_eq!(retry_mode_of(ua), mode, "{ua}");
        }
    }

    #[test]
    fn both_conflict_spellings_and_nothing_else() {
        for code in [
            "ConcurrentModification",
            "ConcurrentModificationException",
            "EntityTemporarilyUnmodifiable",
            "EntityTemporarilyUnmodifiableException",
        ] {
            assert!(is_conflict(code));
        }
        for code in [
            "AccessDenied",
            "NoSuchEntity",
            "Throttling",
            "LimitExceeded",
            "concurrentmodification",
        ] {
            assert!(!is_conflict(code));
        }
    }

    fn keys(json: &str) -> Vec<String> {
        let r = record(json);
        match entities_of(
            &r,
            "111122223333",
            r.event_source.as_deref().unwrap_or(IAM_SOURCE),
        ) {
            Entities::Keys(k) => k.iter().map(EntityKey::id).collect(),
            Entities::Read => vec!["read".into()],
            Entities::Unmapped => vec!["unmapped".into()],
        }
    }

    #[test]
    fn entities_are_keyed_by_account_type_and_name() {
        assert_eq!(
            keys(
                r#"{"eventName":"PutRolePolicy","requestParameters":{"roleName":"deploy","policyName":"p","policyDocument":"{}"}}"#
            ),
            ["111122223333:role/deploy"]
        );
        assert_eq!(
            keys(
                r#"{"eventName":"AttachRolePolicy","requestParameters":{"roleName":"deploy","policyArn":"arn:aws:iam::444455556666:policy/shared"}}"#
            ),
            ["111122223333:role/deploy", "444455556666:policy/shared"]
        );
        assert_eq!(
            keys(
                r#"{"eventName":"AddUserToGroup","requestParameters":{"groupName":"admins","userName":"bob"}}"#
            ),
            ["111122223333:group/admins", "111122223333:user/bob"]
        );
        assert_eq!(
            keys(
                r#"{"eventName":"CreateAccessKey","requestParameters":null,"userIdentity":{"type":"IAMUser","userName":"carol"}}"#
            ),
            ["111122223333:user/carol"]
        );
        assert_eq!(
            keys(
                r#"{"eventName":"AttachRolePolicy","requestParameters":{"roleName":"deploy","policyArn":"arn:aws:iam::aws:policy/service-role/AWSLambdaBasicExecutionRole"}}"#
            ),
            // In the core table's key order (the role's ARN sorts first).
            [
                "111122223333:role/deploy",
                "111122223333:policy/aws:AWSLambdaBasicExecutionRole"
            ]
        );
        assert_eq!(keys(r#"{"eventName":"AddRoleToInstanceProfile","requestParameters":{"roleName":"r","instanceProfileName":"ip"}}"#).len(), 2);
        assert_eq!(
            keys(r#"{"eventName":"GetRole","requestParameters":{"roleName":"deploy"}}"#),
            ["read"]
        );
        assert_eq!(
            keys(r#"{"eventName":"PutRolePolicy","requestParameters":{}}"#),
            ["unmapped"]
        );
        assert_eq!(
            keys(
                r#"{"eventSource":"s3.amazonaws.com","eventName":"PutBucketPolicy","resources":[{"ARN":"arn:aws:s3:::logs","type":"AWS::S3::Bucket"}]}"#
            ),
            ["111122223333:AWS::S3::Bucket/arn:aws:s3:::logs"]
        );
    }

    #[test]
    fn entity_ids_split_back() {
        let k = EntityKey {
            account: "1".into(),
            kind: "policy".into(),
            name: "a/b".into(),
        };
        assert_eq!(EntityKey::from_id(&k.id()), k);
    }

    #[test]
    fn documents_of_policy_writes() {
        let raw: &RawValue =
            serde_json::from_str(r#"{"roleName":"r","policyName":"p","policyDocument":"%7B%7D"}"#)
                .unwrap();
        assert_eq!(
            document_of("PutRolePolicy", Some(raw)),
            Some(DocumentWrite {
                slot: "inline policy p".into(),
                document: "%7B%7D".into()
            })
        );
        assert_eq!(document_of("TagRole", Some(raw)), None);
    }
}
