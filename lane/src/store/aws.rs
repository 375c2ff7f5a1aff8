//! What the DynamoDB and S3 stores share: the SDK configuration and the reading of a
//! failed request.

use std::time::Duration;

use aws_smithy_runtime_api::client::result::SdkError;

/// An SDK config for a lease store: the standard credential and region chain (`region`
/// overriding the chain's region), one attempt per request (no SDK retries: the lease
/// protocol decides), and connect and operation timeouts of `timeout_ms`.
pub(crate) async fn sdk_config(timeout_ms: u64, region: Option<&str>) -> aws_config::SdkConfig {
    let timeout = Duration::from_millis(timeout_ms);
    let mut loader = aws_config::defaults(aws_config::BehaviorVersion::latest());
    if let Some(region) = region {
        loader = loader.region(aws_config::Region::new(region.to_string()));
    }
    loader
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

/// What to do when the AWS credential chain found no credentials or they were refused.
pub(crate) const CREDENTIALS_HINT: &str = "set AWS_PROFILE, or AWS_ACCESS_KEY_ID and \
    AWS_SECRET_ACCESS_KEY, or run with an instance or task role";

/// What an administrative request's failure means to the operator, read from the error
/// chain: the credential chain found nothing, the service denied access, or anything
/// else. The SDK reports a credential failure as a dispatch failure whose source is the
/// credential provider's error, so the chain is searched for it.
pub(crate) enum Cause {
    /// No credentials were found, or they were refused as invalid.
    Credentials,
    /// The caller is not allowed to do this.
    Denied,
    /// Anything else (unreachable, throttled, a 5xx, a timeout).
    Other,
}

/// The cause of `err` (with the service's error `code`, when it answered), and the whole
/// error chain as one line for the message.
pub(crate) fn cause_of<E, R>(err: &SdkError<E, R>, code: Option<&str>) -> (Cause, String)
where
    E: std::error::Error + 'static,
    R: std::fmt::Debug,
{
    let mut text = err.to_string();
    let mut source = std::error::Error::source(err);
    while let Some(e) = source {
        text.push_str(": ");
        text.push_str(&e.to_string());
        source = e.source();
    }
    let cause = match code {
        Some(
            "AccessDenied"
            | "AccessDeniedException"
            | "UnauthorizedOperation"
            | "AllAccessDisabled",
        ) => Cause::Denied,
        Some(
            "InvalidAccessKeyId"
            | "SignatureDoesNotMatch"
            | "UnrecognizedClientException"
            | "InvalidSignatureException"
            | "ExpiredToken"
            | "ExpiredTokenException"
            | "MissingAuthenticationToken"
            | "MissingAuthenticationTokenException",
        ) => Cause::Credentials,
        _ if text.contains("no credentials") || text.contains("credentials provider") => {
            Cause::Credentials
        }
        _ => Cause::Other,
    };
    (cause, text.replace(['\n', '\r'], " "))
}
