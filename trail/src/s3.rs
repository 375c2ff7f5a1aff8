//! `s3://BUCKET/PREFIX` inputs: every object under the prefix, through the AWS SDK with the
//! standard credential and region chain, as writelane's S3 lease store reads its bucket
//! (`?region=R&endpoint=URL` as in the store URLs; path-style addressing with an endpoint).

use aws_sdk_s3::Client;

use crate::read::{Fetch, Unit};
use crate::TrailError;

/// Lists prefixes and fetches objects, one client per `s3://` input, on a runtime of its own.
pub struct S3Reader {
    runtime: tokio::runtime::Runtime,
    clients: Vec<Client>,
}

impl S3Reader {
    /// A reader with no clients yet.
    pub fn new() -> Result<S3Reader, String> {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .map_err(|e| format!("cannot start the S3 client's runtime: {e}"))?;
        Ok(S3Reader {
            runtime,
            clients: Vec::new(),
        })
    }

    /// The objects under `prefix` (a client is made for them), in key order.
    pub fn list(
        &mut self,
        bucket: &str,
        prefix: &str,
        region: Option<&str>,
        endpoint: Option<&str>,
    ) -> Result<Vec<Unit>, TrailError> {
        let input = format!("s3://{bucket}/{prefix}");
        let client = self.runtime.block_on(async {
            let mut loader = aws_config::defaults(aws_config::BehaviorVersion::latest());
            if let Some(region) = region {
                loader = loader.region(aws_config::Region::new(region.to_string()));
            }
            let sdk = loader.load().await;
            let mut config = aws_sdk_s3::config::Builder::from(&sdk);
            if let Some(url) = endpoint {
                config = config.endpoint_url(url).force_path_style(true);
            }
            Client::from_conf(config.build())
        });
        let index = self.clients.len();
        let keys = self.runtime.block_on(async {
            let mut keys = Vec::new();
            let mut pages = client
                .list_objects_v2()
                .bucket(bucket)
                .prefix(prefix)
                .into_paginator()
                .send();
            while let Some(page) = pages.next().await {
                let page = page.map_err(|e| TrailError::S3 {
                    input: input.clone(),
                    reason: format!(
                        "cannot list: {}",
                        aws_sdk_s3::error::DisplayErrorContext(&e)
                    ),
                })?;
                for object in page.contents() {
                    if let Some(key) = object.key() {
                        if !key.contains("/CloudTrail-Digest/") && !key.ends_with('/') {
                            keys.push(key.to_string());
                        }
                    }
                }
            }
            Ok::<_, TrailError>(keys)
        })?;
        self.clients.push(client);
        let mut keys = keys;
        keys.sort();
        Ok(keys
            .into_iter()
            .map(|key| Unit::S3 {
                bucket: bucket.to_string(),
                key,
                client: index,
            })
            .collect())
    }
}

impl Fetch for S3Reader {
    fn fetch(&self, client: usize, bucket: &str, key: &str) -> Result<Vec<u8>, String> {
        let client = self
            .clients
            .get(client)
            .ok_or("no client for this object")?;
        self.runtime.block_on(async {
            let object = client
                .get_object()
                .bucket(bucket)
                .key(key)
                .send()
                .await
                .map_err(|e| aws_sdk_s3::error::DisplayErrorContext(&e).to_string())?;
            let body = object
                .body
                .collect()
                .await
                .map_err(|e| format!("reading the body: {e}"))?;
            Ok(body.into_bytes().to_vec())
        })
    }
}
