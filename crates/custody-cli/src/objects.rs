//! The one S3 client setup of the CLI, shared by `custody drift` (which re-hashes artifacts in
//! buckets) and evidence packs (which are exported to and verified from buckets), so both read
//! the same flag and environment and fail the same way on a dead endpoint.

use anyhow::bail;
use clap::Args;
use object_store::RetryConfig;
use object_store::aws::{AmazonS3, AmazonS3Builder};

/// `--s3-endpoint`.
#[derive(Args, Clone, Default)]
pub struct EndpointArg {
    /// S3-compatible endpoint for s3:// URIs, e.g. http://127.0.0.1:9000 (path-style
    /// requests). Default: AWS.
    #[arg(long, env = "AWS_ENDPOINT_URL", value_name = "URL")]
    pub s3_endpoint: Option<String>,
}

impl EndpointArg {
    /// The endpoint, once checked to be an http(s) URL; the error names the flag.
    pub fn checked(&self) -> anyhow::Result<Option<&str>> {
        match self.s3_endpoint.as_deref() {
            Some(e) if !(e.starts_with("http://") || e.starts_with("https://")) => {
                bail!("--s3-endpoint {e:?}: expected an http:// or https:// URL")
            }
            e => Ok(e),
        }
    }
}

/// A client for one bucket, configured from the AWS_* environment and `endpoint`.
///
/// Nothing is contacted until the first request.
pub fn s3_store(bucket: &str, endpoint: Option<&str>) -> object_store::Result<AmazonS3> {
    let mut b = AmazonS3Builder::from_env()
        .with_bucket_name(bucket)
        // A dead endpoint should be reported within seconds, not after object_store's
        // default three minutes of retries.
        .with_retry(RetryConfig {
            max_retries: 2,
            retry_timeout: std::time::Duration::from_secs(15),
            ..RetryConfig::default()
        });
    if let Some(e) = endpoint {
        b = b
            .with_endpoint(e)
            .with_allow_http(e.starts_with("http://"))
            .with_virtual_hosted_style_request(false);
    }
    b.build()
}
