//! The S3 client of a publish target, and the object keys the mirror's paths get.
//!
//! The target itself (bucket, prefix, endpoint, region, credentials) is part of the
//! config ([`crate::config::publish`]): it is read and checked when the config is
//! loaded.

use std::sync::Arc;
use std::time::Duration;

use object_store::ObjectStore;
use object_store::aws::AmazonS3Builder;

use crate::config::Network;
pub use crate::config::publish::{Credentials, S3Target};

impl S3Target {
    /// The object key of a path of the mirror. Keys keep the path's characters as
    /// they are ('~', '+', ':' included), so a web front end serving the bucket
    /// answers the same URLs the local tree does.
    pub fn key(&self, rel: &str) -> Result<object_store::path::Path, object_store::path::Error> {
        if self.prefix.is_empty() {
            object_store::path::Path::parse(rel)
        } else {
            object_store::path::Path::parse(format!("{}/{rel}", self.prefix))
        }
    }

    /// The S3 client. Retries are left to us (each upload is retried as a whole,
    /// with the mirror's retry count), except for the client's own short retries
    /// of a request that never reached the server.
    pub fn store(&self, network: &Network) -> Result<Arc<dyn ObjectStore>, object_store::Error> {
        let mut b = AmazonS3Builder::new()
            .with_bucket_name(&self.bucket)
            .with_region(&self.region)
            .with_access_key_id(&self.credentials.access_key_id)
            .with_secret_access_key(&self.credentials.secret_access_key)
            .with_retry(object_store::RetryConfig {
                backoff: object_store::BackoffConfig {
                    init_backoff: network.retry_delay.max(Duration::from_millis(100)),
                    max_backoff: Duration::from_secs(30),
                    base: 2.0,
                },
                max_retries: network.retries as usize,
                retry_timeout: network.timeout * (network.retries + 1),
            })
            .with_client_options(
                object_store::ClientOptions::new()
                    .with_timeout(network.timeout)
                    .with_connect_timeout(Duration::from_secs(30))
                    .with_pool_max_idle_per_host(network.concurrency.get()),
            );
        if let Some(t) = &self.credentials.session_token {
            b = b.with_token(t);
        }
        if let Some(e) = &self.endpoint {
            // Self-hosted stores (Garage, MinIO, Ceph) answer path-style requests on
            // their own host; plain http is their operator's choice to make.
            b = b
                .with_endpoint(e)
                .with_allow_http(e.starts_with("http://"))
                .with_virtual_hosted_style_request(false);
        }
        Ok(Arc::new(b.build()?))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_keep_debian_file_name_characters() {
        let t = S3Target {
            bucket: "mirror".into(),
            prefix: "debian".into(),
            endpoint: None,
            region: "garage".into(),
            credentials: Credentials {
                access_key_id: "a".into(),
                secret_access_key: "b".into(),
                session_token: None,
            },
        };
        assert_eq!(
            t.key("pool/main/g/gcc/libstdc++6_12.2.0-14~deb12u1_arm64.deb")
                .unwrap()
                .as_ref(),
            "debian/pool/main/g/gcc/libstdc++6_12.2.0-14~deb12u1_arm64.deb"
        );
    }
}
