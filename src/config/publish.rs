//! Where a mirror is published in object storage, and with which credentials.
//!
//! `publish = "s3://bucket/prefix"` in mirrors.toml; the endpoint and region beside
//! it. Credentials never have to be written into mirrors.toml: they come from an AWS
//! shared-credentials file (`s3_credentials`, optionally `s3_profile`) or from the
//! standard environment variables, read when the config is loaded so a missing secret
//! is a config error, not a failure an hour into a run. The S3 client for a target is
//! built in `s3::target`.

use std::fmt;
use std::path::Path;

/// A bucket and a key prefix, with how to reach and sign for them.
#[derive(Clone)]
pub struct S3Target {
    pub bucket: String,
    /// Without leading or trailing '/'; empty for the bucket's root.
    pub prefix: String,
    /// None for AWS itself (the region picks the endpoint).
    pub endpoint: Option<String>,
    pub region: String,
    pub credentials: Credentials,
}

/// An access key; `Debug` never shows the secret.
#[derive(Clone, PartialEq, Eq)]
pub struct Credentials {
    pub access_key_id: String,
    pub secret_access_key: String,
    pub session_token: Option<String>,
}

impl fmt::Debug for Credentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Credentials")
            .field("access_key_id", &self.access_key_id)
            .field("secret_access_key", &"<redacted>")
            .finish()
    }
}

impl fmt::Debug for S3Target {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("S3Target")
            .field("url", &self.url())
            .field("endpoint", &self.endpoint)
            .field("region", &self.region)
            .field("credentials", &self.credentials)
            .finish()
    }
}

impl S3Target {
    /// `s3://bucket/prefix/`, for messages.
    pub fn url(&self) -> String {
        if self.prefix.is_empty() {
            format!("s3://{}/", self.bucket)
        } else {
            format!("s3://{}/{}/", self.bucket, self.prefix)
        }
    }
}

/// Splits `s3://bucket/some/prefix/` into the bucket and `some/prefix`.
pub fn parse_s3_url(s: &str) -> Result<(String, String), String> {
    let rest = s
        .strip_prefix("s3://")
        .ok_or_else(|| format!("publish {s:?} must start with s3://"))?;
    let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
    let bucket_ok = (3..=63).contains(&bucket.len())
        && bucket
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '.');
    if !bucket_ok {
        return Err(format!(
            "publish {s:?}: bucket name {bucket:?} must be 3 to 63 lower-case letters, digits, '-' or '.'"
        ));
    }
    let prefix = prefix.trim_matches('/');
    if prefix.split('/').any(|p| p == "." || p == "..")
        || prefix.contains("//")
        || prefix.chars().any(|c| c.is_control())
    {
        return Err(format!("publish {s:?}: the prefix must be a plain path"));
    }
    Ok((bucket.to_string(), prefix.to_string()))
}

/// Reads an AWS shared-credentials file (`~/.aws/credentials` format): INI sections
/// named by profile, `aws_access_key_id` and `aws_secret_access_key` in them.
pub fn read_credentials_file(path: &Path, profile: &str) -> Result<Credentials, String> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| format!("s3_credentials {}: {e}", path.display()))?;
    parse_credentials(&text, profile).map_err(|e| format!("s3_credentials {}{e}", path.display()))
}

fn parse_credentials(text: &str, profile: &str) -> Result<Credentials, String> {
    let mut section: Option<&str> = None;
    let (mut id, mut secret, mut token) = (None, None, None);
    let mut seen_profile = false;
    for (n, raw) in text.lines().enumerate() {
        let line = raw.trim();
        if line.is_empty() || line.starts_with('#') || line.starts_with(';') {
            continue;
        }
        if let Some(name) = line.strip_prefix('[').and_then(|l| l.strip_suffix(']')) {
            let name = name.trim();
            // The config-file spelling, "[profile name]", is accepted too.
            let name = name.strip_prefix("profile ").unwrap_or(name).trim();
            section = Some(name);
            seen_profile |= name == profile;
            continue;
        }
        let Some((key, value)) = line.split_once('=') else {
            return Err(format!(", line {}: expected key = value", n + 1));
        };
        if section != Some(profile) {
            continue;
        }
        let value = value.trim().to_string();
        match key.trim() {
            "aws_access_key_id" => id = Some(value),
            "aws_secret_access_key" => secret = Some(value),
            "aws_session_token" => token = Some(value),
            _ => {}
        }
    }
    if !seen_profile {
        return Err(format!(": no [{profile}] section"));
    }
    match (id, secret) {
        (Some(access_key_id), Some(secret_access_key))
            if !access_key_id.is_empty() && !secret_access_key.is_empty() =>
        {
            Ok(Credentials {
                access_key_id,
                secret_access_key,
                session_token: token,
            })
        }
        _ => Err(format!(
            ": [{profile}] needs aws_access_key_id and aws_secret_access_key"
        )),
    }
}

/// The standard environment variables, as every S3 tool reads them.
pub fn credentials_from_env() -> Option<Credentials> {
    let id = std::env::var("AWS_ACCESS_KEY_ID").ok()?;
    let secret = std::env::var("AWS_SECRET_ACCESS_KEY").ok()?;
    if id.is_empty() || secret.is_empty() {
        return None;
    }
    Some(Credentials {
        access_key_id: id,
        secret_access_key: secret,
        session_token: std::env::var("AWS_SESSION_TOKEN")
            .ok()
            .filter(|t| !t.is_empty()),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn publish_urls_split_into_bucket_and_prefix() {
        assert_eq!(
            parse_s3_url("s3://mirror/raspbian/").unwrap(),
            ("mirror".into(), "raspbian".into())
        );
        assert_eq!(
            parse_s3_url("s3://mirror").unwrap(),
            ("mirror".into(), "".into())
        );
        assert_eq!(
            parse_s3_url("s3://mirror/a/b").unwrap(),
            ("mirror".into(), "a/b".into())
        );
        for bad in [
            "http://mirror/x",
            "s3://Mirror/x",
            "s3://ab/x",
            "s3://mirror/../x",
            "s3://mirror/a//b",
        ] {
            assert!(parse_s3_url(bad).is_err(), "{bad} accepted");
        }
    }

    #[test]
    fn credentials_come_from_the_named_profile() {
        let text = "# keys for the mirror bucket\n[default]\naws_access_key_id = GKdefault\naws_secret_access_key = s1\n\n[profile mirror]\naws_access_key_id=GKmirror\naws_secret_access_key=s2\n";
        let c = parse_credentials(text, "mirror").unwrap();
        assert_eq!(c.access_key_id, "GKmirror");
        assert_eq!(c.secret_access_key, "s2");
        assert_eq!(
            parse_credentials(text, "default").unwrap().access_key_id,
            "GKdefault"
        );
        assert!(
            parse_credentials(text, "other")
                .unwrap_err()
                .contains("no [other]")
        );
        assert!(
            parse_credentials("[default]\naws_access_key_id = x\n", "default")
                .unwrap_err()
                .contains("aws_secret_access_key")
        );
        assert!(
            parse_credentials("[default]\nnonsense\n", "default")
                .unwrap_err()
                .contains("line 2")
        );
    }

    #[test]
    fn secrets_stay_out_of_debug_output() {
        let c = Credentials {
            access_key_id: "GK1".into(),
            secret_access_key: "very-secret".into(),
            session_token: None,
        };
        assert!(!format!("{c:?}").contains("very-secret"));
    }
}
