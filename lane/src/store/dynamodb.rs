//! The DynamoDB store (aws-sdk-dynamodb), sharing its table layout with the Python, Node
//! and Go bindings.

use std::collections::HashMap;
use std::time::Duration;

use aws_sdk_dynamodb::error::ProvideErrorMetadata;
use aws_sdk_dynamodb::operation::put_item::PutItemError;
use aws_sdk_dynamodb::types::{
    AttributeDefinition, AttributeValue, BillingMode, KeySchemaElement, KeyType,
    ReturnValuesOnConditionCheckFailure, ScalarAttributeType,
};
use aws_sdk_dynamodb::Client;
use serde_json::{Map, Value};
use writelane_core::lease::{LeaseRecord, StoreReply};

use super::admin::{AdminError, Entry, InitReport, StoreAdmin};
use super::aws::{cause_of, had_no_effect, sdk_config, Cause, CREDENTIALS_HINT};
use super::{BoxFuture, Store};

type Item = HashMap<String, AttributeValue>;

/// A lease store in a DynamoDB table: partition key `key` (S, the entity name), one item
/// per entity with the attributes `owner` (S), `epoch`, `rvn`, `lease_ms` (N),
/// `committed_token` and `holder` (S, or NULL when absent), and in version 2 records
/// (the queue-like hand-off) `version`, `beat`, `next_ticket`, `hold_ms` (N) and `queue`
/// (S, the JSON text of the array) — the layout of every writelane binding, so processes
/// in all languages share one table. Reads are
/// consistent `GetItem`s; `put_if_absent` is `PutItem` on `attribute_not_exists(#k)` and
/// `compare_and_swap` `PutItem` on `#rvn = :expected`, both asking for the item found
/// (`ReturnValuesOnConditionCheckFailure = ALL_OLD`, else a consistent read). An item read
/// back becomes the JSON object of its attributes, which the core parses and validates.
/// No TTL. IAM: `dynamodb:GetItem`, `dynamodb:PutItem` (and `CreateTable`,
/// `DescribeTable` for [`DynamoDbStore::create_table`] and [`StoreAdmin::init`], `Scan`
/// for [`StoreAdmin::list`]).
///
/// Failures: any failed `get`, a request that surely was not sent (no connection) and a
/// 4xx answer are `Unavailable`; a write whose reply did not come back (a timeout, a
/// dropped connection, a 5xx) is `Lost`.
#[derive(Debug, Clone)]
pub struct DynamoDbStore {
    client: Client,
    table: String,
}

impl DynamoDbStore {
    /// A store in `table` through `client`. Build the client without SDK retries and with
    /// timeouts no longer than the lane's `lease.store_timeout_ms` (or use
    /// [`DynamoDbStore::connect`]).
    pub fn new(client: Client, table: impl Into<String>) -> Self {
        DynamoDbStore {
            client,
            table: table.into(),
        }
    }

    /// A store in `table` with a client from the standard credential and region chain,
    /// `endpoint` overriding the service's URL (a local DynamoDB, moto), one attempt per
    /// request and every request bounded by `timeout_ms`.
    pub async fn connect(
        table: impl Into<String>,
        endpoint: Option<&str>,
        timeout_ms: u64,
    ) -> Self {
        Self::new(client(None, endpoint, timeout_ms).await, table)
    }

    /// The client.
    pub fn client(&self) -> &Client {
        &self.client
    }

    /// Create the table (partition key `key`, S, on-demand) if it does not exist, and
    /// wait until it is active.
    pub async fn create_table(&self) -> Result<(), aws_sdk_dynamodb::Error> {
        let created = self
            .client
            .create_table()
            .table_name(&self.table)
            .billing_mode(BillingMode::PayPerRequest)
            .attribute_definitions(
                AttributeDefinition::builder()
                    .attribute_name("key")
                    .attribute_type(ScalarAttributeType::S)
                    .build()?,
            )
            .key_schema(
                KeySchemaElement::builder()
                    .attribute_name("key")
                    .key_type(KeyType::Hash)
                    .build()?,
            )
            .send()
            .await;
        if let Err(e) = created {
            if e.code() != Some("ResourceInUseException") {
                return Err(e.into());
            }
        }
        for _ in 0..120 {
            let table = self
                .client
                .describe_table()
                .table_name(&self.table)
                .send()
                .await?;
            let status = table.table().and_then(|t| t.table_status());
            if status.is_some_and(|s| s.as_str() == "ACTIVE") {
                break;
            }
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
        Ok(())
    }

    async fn put(&self, key: &str, record: &LeaseRecord, expected: Option<u64>) -> StoreReply {
        let request = self
            .client
            .put_item()
            .table_name(&self.table)
            .set_item(Some(item(key, record)))
            .return_values_on_condition_check_failure(ReturnValuesOnConditionCheckFailure::AllOld);
        let request = match expected {
            None => request
                .condition_expression("attribute_not_exists(#k)")
                .expression_attribute_names("#k", "key"),
            Some(rvn) => request
                .condition_expression("#rvn = :expected")
                .expression_attribute_names("#rvn", "rvn")
                .expression_attribute_values(":expected", AttributeValue::N(rvn.to_string())),
        };
        let err = match request.send().await {
            Ok(_) => return StoreReply::Done,
            Err(err) => err,
        };
        if let Some(PutItemError::ConditionalCheckFailedException(failed)) = err.as_service_error()
        {
            return match failed.item() {
                Some(found) if !found.is_empty() => match record_of(found) {
                    Some(r) => StoreReply::Refused { current: Some(r) },
                    None => StoreReply::Unavailable,
                },
                // The service did not return the item found: read it, consistently. The
                // condition failed, so nothing was written either way.
                _ => match self.get_record(key).await {
                    StoreReply::Found { record } => StoreReply::Refused { current: record },
                    _ => StoreReply::Unavailable,
                },
            };
        }
        let status = err.raw_response().map(|r| r.status().as_u16());
        if had_no_effect(&err, status) {
            StoreReply::Unavailable
        } else {
            StoreReply::Lost
        }
    }

    async fn get_record(&self, key: &str) -> StoreReply {
        let reply = self
            .client
            .get_item()
            .table_name(&self.table)
            .key("key", AttributeValue::S(key.to_string()))
            .consistent_read(true)
            .send()
            .await;
        match reply {
            Ok(out) => match out.item() {
                None => StoreReply::Found { record: None },
                Some(found) if found.is_empty() => StoreReply::Found { record: None },
                Some(found) => match record_of(found) {
                    Some(r) => StoreReply::Found { record: Some(r) },
                    None => StoreReply::Unavailable,
                },
            },
            Err(_) => StoreReply::Unavailable,
        }
    }
}

/// A client from the standard credential and region chain, `region` and `endpoint`
/// overriding the chain's region and the service's URL, one attempt per request and every
/// request bounded by `timeout_ms`.
pub(crate) async fn client(
    region: Option<&str>,
    endpoint: Option<&str>,
    timeout_ms: u64,
) -> Client {
    let mut config = aws_sdk_dynamodb::config::Builder::from(&sdk_config(timeout_ms, region).await);
    if let Some(url) = endpoint {
        config = config.endpoint_url(url);
    }
    Client::from_conf(config.build())
}

/// The item of `record` at `key`.
fn item(key: &str, record: &LeaseRecord) -> Item {
    let optional = |v: &Option<String>| match v {
        Some(s) => AttributeValue::S(s.clone()),
        None => AttributeValue::Null(true),
    };
    let mut item = HashMap::from([
        ("key".to_string(), AttributeValue::S(key.to_string())),
        ("owner".to_string(), AttributeValue::S(record.owner.clone())),
        (
            "epoch".to_string(),
            AttributeValue::N(record.epoch.to_string()),
        ),
        ("rvn".to_string(), AttributeValue::N(record.rvn.to_string())),
        (
            "lease_ms".to_string(),
            AttributeValue::N(record.lease_ms.to_string()),
        ),
        (
            "committed_token".to_string(),
            optional(&record.committed_token),
        ),
        ("holder".to_string(), optional(&record.holder)),
    ]);
    // Version 2 attributes, only in version 2 records (a version 1 record keeps exactly
    // the attributes version 1 clients read): counters as numbers, the queue as the
    // JSON text the core reads back in place of the array.
    if record.version >= 2 {
        for (name, v) in [
            ("version", record.version),
            ("beat", record.beat),
            ("next_ticket", record.next_ticket),
            ("hold_ms", record.hold_ms),
        ] {
            item.insert(name.to_string(), AttributeValue::N(v.to_string()));
        }
        item.insert("queue".to_string(), AttributeValue::S(record.queue_json()));
    }
    item
}

/// The record of an item: its attributes (but `key`) as a JSON object — S as a string,
/// N as a number when it is one, NULL as null, anything else as an object — parsed and
/// validated by the core. `None` when the core refuses it.
fn record_of(found: &Item) -> Option<LeaseRecord> {
    LeaseRecord::from_json(record_json(found).as_bytes()).ok()
}

/// The JSON object of an item's attributes but `key` (see [`record_of`]).
fn record_json(found: &Item) -> String {
    let mut object = Map::new();
    for (name, value) in found.iter().filter(|(n, _)| n.as_str() != "key") {
        let value = match value {
            AttributeValue::S(s) => Value::String(s.clone()),
            AttributeValue::N(n) => n
                .parse::<u64>()
                .map_or_else(|_| Value::String(n.clone()), Value::from),
            AttributeValue::Null(_) => Value::Null,
            _ => Value::Object(Map::new()),
        };
        object.insert(name.clone(), value);
    }
    Value::Object(object).to_string()
}

impl Store for DynamoDbStore {
    fn get<'a>(&'a self, key: &'a str) -> BoxFuture<'a, StoreReply> {
        Box::pin(self.get_record(key))
    }

    fn put_if_absent<'a>(
        &'a self,
        key: &'a str,
        record: &'a LeaseRecord,
    ) -> BoxFuture<'a, StoreReply> {
        Box::pin(self.put(key, record, None))
    }

    fn compare_and_swap<'a>(
        &'a self,
        key: &'a str,
        expected_rvn: u64,
        record: &'a LeaseRecord,
    ) -> BoxFuture<'a, StoreReply> {
        Box::pin(self.put(key, record, Some(expected_rvn)))
    }
}

/// How long `init` waits for a new table to become active.
const TABLE_ACTIVE_WAIT: Duration = Duration::from_secs(120);

impl DynamoDbStore {
    /// An administrative request's failure, for an operator: `needs` names the IAM
    /// actions the request takes.
    fn admin_error<E, R>(
        &self,
        err: &aws_smithy_runtime_api::client::result::SdkError<E, R>,
        needs: &str,
    ) -> AdminError
    where
        E: std::error::Error + ProvideErrorMetadata + 'static,
        R: std::fmt::Debug,
    {
        let code = err.code();
        let store = self.describe();
        if code == Some("ResourceNotFoundException") {
            return AdminError::Missing {
                store,
                hint: format!(
                    "create it with `writelane lease init dynamodb://{}` (add ?region=R for \
                     another region than the default chain's)",
                    self.table
                ),
            };
        }
        let (cause, detail) = cause_of(err, code);
        match cause {
            Cause::Credentials => AdminError::Credentials {
                store,
                detail,
                hint: CREDENTIALS_HINT.into(),
            },
            Cause::Denied => AdminError::Denied {
                store,
                detail,
                hint: format!("the caller needs {needs} on the table"),
            },
            Cause::Other => AdminError::Unavailable { store, detail },
        }
    }

    async fn admin_entry(&self, key: &str) -> Result<Option<Entry>, AdminError> {
        let out = self
            .client
            .get_item()
            .table_name(&self.table)
            .key("key", AttributeValue::S(key.to_string()))
            .consistent_read(true)
            .send()
            .await
            .map_err(|e| self.admin_error(&e, "dynamodb:GetItem"))?;
        Ok(out.item().filter(|i| !i.is_empty()).map(|item| Entry {
            key: key.to_string(),
            record: LeaseRecord::from_json(record_json(item).as_bytes()),
            modified_ms_ago: None,
        }))
    }

    async fn admin_list(&self, prefix: &str) -> Result<Vec<Entry>, AdminError> {
        let mut entries = Vec::new();
        let mut start: Option<Item> = None;
        loop {
            let mut scan = self
                .client
                .scan()
                .table_name(&self.table)
                .consistent_read(true)
                .set_exclusive_start_key(start.take());
            if !prefix.is_empty() {
                scan = scan
                    .filter_expression("begins_with(#k, :prefix)")
                    .expression_attribute_names("#k", "key")
                    .expression_attribute_values(":prefix", AttributeValue::S(prefix.to_string()));
            }
            let page = scan
                .send()
                .await
                .map_err(|e| self.admin_error(&e, "dynamodb:Scan"))?;
            for item in page.items() {
                let key = match item.get("key") {
                    Some(AttributeValue::S(k)) => k.clone(),
                    // The table's key schema makes `key` a string; another table is
                    // reported by `init`.
                    _ => continue,
                };
                entries.push(Entry {
                    record: LeaseRecord::from_json(record_json(item).as_bytes()),
                    key,
                    modified_ms_ago: None,
                });
            }
            match page.last_evaluated_key() {
                Some(next) if !next.is_empty() => start = Some(next.clone()),
                _ => break,
            }
        }
        entries.sort_by(|a, b| a.key.cmp(&b.key));
        Ok(entries)
    }

    async fn admin_init(&self) -> Result<InitReport, AdminError> {
        let needs = "dynamodb:CreateTable and dynamodb:DescribeTable";
        let request = self
            .client
            .create_table()
            .table_name(&self.table)
            .billing_mode(BillingMode::PayPerRequest)
            .set_attribute_definitions(Some(vec![AttributeDefinition::builder()
                .attribute_name("key")
                .attribute_type(ScalarAttributeType::S)
                .build()
                .map_err(|e| AdminError::Unavailable {
                    store: self.describe(),
                    detail: e.to_string(),
                })?]))
            .set_key_schema(Some(vec![KeySchemaElement::builder()
                .attribute_name("key")
                .key_type(KeyType::Hash)
                .build()
                .map_err(|e| AdminError::Unavailable {
                    store: self.describe(),
                    detail: e.to_string(),
                })?]));
        let created = match request.send().await {
            Ok(_) => true,
            Err(e) if e.code() == Some("ResourceInUseException") => false,
            Err(e) => return Err(self.admin_error(&e, needs)),
        };
        let started = std::time::Instant::now();
        loop {
            let described = self
                .client
                .describe_table()
                .table_name(&self.table)
                .send()
                .await
                .map_err(|e| self.admin_error(&e, needs))?;
            let Some(table) = described.table() else {
                return Err(AdminError::Unavailable {
                    store: self.describe(),
                    detail: "DescribeTable returned no table".into(),
                });
            };
            let key_ok = table.key_schema().len() == 1
                && table.key_schema()[0].attribute_name() == "key"
                && table.key_schema()[0].key_type() == &KeyType::Hash
                && table.attribute_definitions().iter().any(|d| {
                    d.attribute_name() == "key" && d.attribute_type() == &ScalarAttributeType::S
                });
            if !key_ok {
                return Err(AdminError::Incompatible {
                    store: self.describe(),
                    detail: "its key is not one partition key `key` of type S (the layout every \
                             writelane binding shares): use another table"
                        .into(),
                });
            }
            if table.table_status().is_some_and(|s| s.as_str() == "ACTIVE") {
                let detail = if created {
                    format!(
                        "created {} (on-demand, partition key `key`); it is active",
                        self.describe()
                    )
                } else {
                    format!(
                        "{} exists with partition key `key` and is active",
                        self.describe()
                    )
                };
                return Ok(InitReport { created, detail });
            }
            if started.elapsed() >= TABLE_ACTIVE_WAIT {
                return Err(AdminError::Unavailable {
                    store: self.describe(),
                    detail: format!(
                        "the table is still not ACTIVE after {} s: run init again later",
                        TABLE_ACTIVE_WAIT.as_secs()
                    ),
                });
            }
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
    }
}

impl StoreAdmin for DynamoDbStore {
    fn describe(&self) -> String {
        format!("DynamoDB table {:?}", self.table)
    }

    fn entry<'a>(&'a self, key: &'a str) -> BoxFuture<'a, Result<Option<Entry>, AdminError>> {
        Box::pin(self.admin_entry(key))
    }

    fn list<'a>(&'a self, prefix: &'a str) -> BoxFuture<'a, Result<Vec<Entry>, AdminError>> {
        Box::pin(self.admin_list(prefix))
    }

    fn init(&self) -> BoxFuture<'_, Result<InitReport, AdminError>> {
        Box::pin(self.admin_init())
    }
}
