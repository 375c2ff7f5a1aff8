//! What the DynamoDB and S3 stores share: the SDK configuration and the reading of a
//! failed request.

use std::time::Duration;

use aws_smithy_runtime_api::client::result::SdkError;

/// An SDK config for a lease store: the standard credential and region chain, one
/// attempt per request (no SDK retries: the lease protocol decides), and connect and
/// operation timeouts of `timeout_ms`.
pub(crate) async fn sdk_config(timeout_ms: u64) -> aws_config::SdkConfig {
    let timeout = Duration::from_millis(timeout_ms);
    aws_config::defaults(aws_config::BehaviorVersion::latest())
        .retry_config(aws_config::retry::RetryConfig::disabled())
        .timeout_config(
            aws_config::timeout::TimeoutConfig::builder()
                .connect_timeout(timeout)
                .operation_timeout(timeout)
                .build(),
        )
        .load()
        .await
}

/// Whether a failed request surely had no effect (`Unavailable`): it was never built,
/// its connection was never made, or the service refused it with a 4xx. Otherwise (a
/// timeout, a dropped connection, a 5xx, an unreadable response) it may have been
/// carried out (`Lost`).
pub(crate) fn had_no_effect<E, R>(err: &SdkError<E, R>, status: Option<u16>) -> bool {
    match err {
        SdkError::ConstructionFailure(_) => true,
        SdkError::DispatchFailure(d) => {
            let mut source = d
                .as_connector_error()
                .map(|c| c as &(dyn std::error::Error + 'static));
            while let Some(e) = source {
                let refused = e.downcast_ref::<std::io::Error>().is_some_and(|io| {
                    use std::io::ErrorKind::*;
                    matches!(io.kind(), ConnectionRefused | AddrNotAvailable | NotFound)
                });
                if refused {
                    return true;
                }
                source = e.source();
            }
            false
        }
        SdkError::ServiceError(_) => status.is_some_and(|s| (400..500).contains(&s)),
        _ => false,
    }
}
