//! Store URLs (`s3://`, `gs://`, `az://`, `file://`) and opening the object store behind them.

use std::collections::BTreeMap;
use std::path::{Path as FsPath, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use object_store::aws::AmazonS3Builder;
use object_store::azure::{AzureConfigKey, MicrosoftAzureBuilder};
use object_store::gcp::GoogleCloudStorageBuilder;
use object_store::local::LocalFileSystem;
use object_store::path::Path as Key;
use object_store::{BackoffConfig, ClientOptions, ObjectStore, RetryConfig};

use super::error::StoreError;

/// A parsed store URL: which service, which bucket (or container, or directory), and the key
/// prefix the backups live under.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StoreUrl {
    /// The URL as given (credentials never appear in it).
    pub url: String,
    /// The service.
    pub scheme: Scheme,
    /// Bucket (S3, GCS), container (Azure) or directory (`file://`).
    pub bucket: String,
    /// Key prefix inside the bucket, without leading or trailing `/`; may be empty.
    pub prefix: String,
    /// Settings from the URL's query (`endpoint`, `region`, `path-style`).
    pub options: BTreeMap<String, String>,
}

/// The object-store services a URL can name.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Scheme {
    /// Any S3-compatible store (AWS, MinIO, Ceph RGW, ...).
    S3,
    /// Google Cloud Storage.
    Gcs,
    /// Azure Blob Storage.
    Azure,
    /// A directory on this host.
    File,
}

/// Azurite's development account and its published key (not a secret: the same in every
/// Azurite installation).
const AZURITE_ACCOUNT: &str = "devstoreaccount1";
const AZURITE_KEY: &str =
    "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw==";

/// Query settings a URL may carry, per scheme.
const S3_OPTIONS: &[&str] = &["endpoint", "region", "path-style"];
const GCS_OPTIONS: &[&str] = &["endpoint", "anonymous"];
const AZURE_OPTIONS: &[&str] = &["endpoint", "account", "emulator"];

impl StoreUrl {
    /// Parses `s3://bucket/prefix?endpoint=..&region=..&path-style=true|false`,
    /// `gs://bucket/prefix`, `az://container/prefix` or `file:///dir`.
    pub fn parse(s: &str) -> Result<StoreUrl, StoreError> {
        let bad = |reason: &str| StoreError::Url {
            url: s.to_owned(),
            reason: reason.to_owned(),
        };
        let url = url::Url::parse(s).map_err(|e| bad(&e.to_string()))?;
        let scheme = match url.scheme() {
            "s3" => Scheme::S3,
            "gs" => Scheme::Gcs,
            "az" | "azure" => Scheme::Azure,
            "file" => Scheme::File,
            other => {
                return Err(bad(&format!(
                    "unknown scheme {other:?}; use s3://, gs://, az:// or file://"
                )));
            }
        };
        if !url.username().is_empty() || url.password().is_some() {
            return Err(bad(
                "credentials do not belong in the URL; use the environment or credential files",
            ));
        }
        let allowed = match scheme {
            Scheme::S3 => S3_OPTIONS,
            Scheme::Gcs => GCS_OPTIONS,
            Scheme::Azure => AZURE_OPTIONS,
            Scheme::File => &[],
        };
        let mut options = BTreeMap::new();
        for (k, v) in url.query_pairs() {
            if !allowed.contains(&k.as_ref()) {
                return Err(bad(&format!(
                    "unknown setting {k:?} (allowed here: {})",
                    if allowed.is_empty() {
                        "none".to_owned()
                    } else {
                        allowed.join(", ")
                    }
                )));
            }
            options.insert(k.into_owned(), v.into_owned());
        }
        let path = url.path().trim_matches('/');
        let (bucket, prefix) = if scheme == Scheme::File {
            if url.host_str().is_some_and(|h| !h.is_empty()) {
                return Err(bad("file URLs name a local directory: file:///path"));
            }
            if path.is_empty() {
                return Err(bad("no directory given"));
            }
            (format!("/{path}"), String::new())
        } else {
            let bucket = url.host_str().unwrap_or_default().to_owned();
            if bucket.is_empty() {
                return Err(bad("no bucket given"));
            }
            (bucket, path.to_owned())
        };
        Ok(StoreUrl {
            url: url_without_query(&url),
            scheme,
            bucket,
            prefix,
            options,
        })
    }

    /// The same store with `name` appended to the prefix (a backup named inside the URL).
    pub fn split_last(&self) -> Option<(StoreUrl, String)> {
        let (parent, last) = match self.prefix.rsplit_once('/') {
            Some((p, l)) => (p.to_owned(), l.to_owned()),
            None if !self.prefix.is_empty() => (String::new(), self.prefix.clone()),
            None => return None,
        };
        let url = self
            .url
            .strip_suffix(&last)
            .map(|u| u.trim_end_matches('/').to_owned())
            .unwrap_or_else(|| self.url.clone());
        Some((
            StoreUrl {
                url,
                prefix: parent,
                ..self.clone()
            },
            last,
        ))
    }

    /// The key of `name` under this URL's prefix.
    pub fn key(&self, name: &str) -> Key {
        if self.prefix.is_empty() {
            Key::from(name)
        } else {
            Key::from(format!("{}/{name}", self.prefix))
        }
    }

    /// The prefix as a key, `None` for the bucket's root.
    pub fn prefix_key(&self) -> Option<Key> {
        (!self.prefix.is_empty()).then(|| Key::from(self.prefix.as_str()))
    }

    /// Opens the object store: credentials, region and endpoint from the standard environment
    /// (and, for S3, the shared AWS credential and config files), overridden by the URL's query.
    pub fn open(&self) -> Result<Arc<dyn ObjectStore>, StoreError> {
        let failed = |e: object_store::Error| StoreError::Url {
            url: self.url.clone(),
            reason: e.to_string(),
        };
        let store: Arc<dyn ObjectStore> = match self.scheme {
            Scheme::S3 => Arc::new(self.s3_builder()?.build().map_err(failed)?),
            Scheme::Gcs => {
                let mut b = GoogleCloudStorageBuilder::from_env()
                    .with_bucket_name(&self.bucket)
                    .with_retry(retry())
                    .with_client_options(client_options(self.opt("endpoint")));
                if let Some(e) = self.opt("endpoint") {
                    b = b.with_base_url(e.trim_end_matches('/'));
                }
                if self.flag("anonymous")? == Some(true) {
                    b = b.with_skip_signature(true);
                }
                Arc::new(b.build().map_err(failed)?)
            }
            Scheme::Azure => Arc::new(self.azure_builder()?.build().map_err(failed)?),
            Scheme::File => {
                let dir = PathBuf::from(&self.bucket);
                std::fs::create_dir_all(&dir).map_err(StoreError::io(&dir))?;
                Arc::new(LocalFileSystem::new_with_prefix(&dir).map_err(failed)?)
            }
        };
        Ok(store)
    }

    fn s3_builder(&self) -> Result<AmazonS3Builder, StoreError> {
        let mut b = AmazonS3Builder::from_env()
            .with_bucket_name(&self.bucket)
            .with_retry(retry());
        let endpoint = self
            .opt("endpoint")
            .map(str::to_owned)
            .or_else(|| std::env::var("AWS_ENDPOINT_URL_S3").ok())
            .or_else(|| std::env::var("AWS_ENDPOINT_URL").ok());
        b = b.with_client_options(client_options(endpoint.as_deref()));
        if let Some(e) = &endpoint {
            b = b.with_endpoint(e).with_allow_http(e.starts_with("http://"));
        }
        if let Some(r) = self.opt("region") {
            b = b.with_region(r);
        } else if std::env::var_os("AWS_REGION").is_none()
            && std::env::var_os("AWS_DEFAULT_REGION").is_none()
            && let Some(r) = aws_profile_value("config", "region")
        {
            b = b.with_region(r);
        }
        if let Some(path_style) = self.flag("path-style")? {
            b = b.with_virtual_hosted_style_request(!path_style);
        }
        if std::env::var_os("AWS_ACCESS_KEY_ID").is_none()
            && let Some(id) = aws_profile_value("credentials", "aws_access_key_id")
        {
            b = b.with_access_key_id(id);
            if let Some(secret) = aws_profile_value("credentials", "aws_secret_access_key") {
                b = b.with_secret_access_key(secret);
            }
            if let Some(token) = aws_profile_value("credentials", "aws_session_token") {
                b = b.with_token(token);
            }
        }
        Ok(b)
    }

    /// Azure from the standard environment and the URL. With `emulator=true` (or
    /// `AZURE_STORAGE_USE_EMULATOR`) the store is Azurite: the account defaults to Azurite's
    /// `devstoreaccount1` with its published key, and the blob endpoint is `endpoint`, else
    /// `AZURITE_BLOB_STORAGE_URL`, else `http://127.0.0.1:10000`. The library's own emulator mode
    /// takes the endpoint from the environment only, so the emulator's path-style addressing
    /// (`<endpoint>/<account>/<container>/<key>`) is set up here instead.
    fn azure_builder(&self) -> Result<MicrosoftAzureBuilder, StoreError> {
        let endpoint = self.opt("endpoint");
        let mut b = MicrosoftAzureBuilder::from_env()
            .with_container_name(&self.bucket)
            .with_retry(retry());
        let emulator = match self.flag("emulator")? {
            Some(e) => e,
            None => b
                .get_config_value(&AzureConfigKey::UseEmulator)
                .is_some_and(|v| matches!(v.as_str(), "true" | "1" | "yes")),
        };
        if let Some(a) = self.opt("account") {
            b = b.with_account(a);
        }
        if !emulator {
            if let Some(e) = endpoint {
                b = b.with_endpoint(e.to_owned());
            }
            return Ok(b.with_client_options(client_options(endpoint)));
        }
        let account = b
            .get_config_value(&AzureConfigKey::AccountName)
            .unwrap_or_else(|| AZURITE_ACCOUNT.to_owned());
        let base = endpoint
            .map(str::to_owned)
            .or_else(|| std::env::var("AZURITE_BLOB_STORAGE_URL").ok())
            .unwrap_or_else(|| "http://127.0.0.1:10000".to_owned());
        if b.get_config_value(&AzureConfigKey::AccessKey).is_none()
            && b.get_config_value(&AzureConfigKey::SasKey).is_none()
            && b.get_config_value(&AzureConfigKey::Token).is_none()
        {
            b = b.with_access_key(AZURITE_KEY);
        }
        let service = format!("{}/{account}", base.trim_end_matches('/'));
        Ok(b.with_use_emulator(false)
            .with_account(&account)
            .with_endpoint(service.clone())
            .with_client_options(client_options(Some(&service))))
    }

    fn opt(&self, key: &str) -> Option<&str> {
        self.options.get(key).map(String::as_str)
    }

    fn flag(&self, key: &str) -> Result<Option<bool>, StoreError> {
        match self.opt(key) {
            None => Ok(None),
            Some("true" | "1" | "yes") => Ok(Some(true)),
            Some("false" | "0" | "no") => Ok(Some(false)),
            Some(v) => Err(StoreError::Url {
                url: self.url.clone(),
                reason: format!("{key}={v:?}: expected true or false"),
            }),
        }
    }
}

impl std::fmt::Display for StoreUrl {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.url)
    }
}

fn url_without_query(url: &url::Url) -> String {
    let mut u = url.clone();
    u.set_query(None);
    u.to_string().trim_end_matches('/').to_owned()
}

/// Retries for transient failures, bounded so that a store that went away is reported within
/// about a minute rather than the library's default of several.
fn retry() -> RetryConfig {
    RetryConfig {
        backoff: BackoffConfig {
            init_backoff: Duration::from_millis(100),
            max_backoff: Duration::from_secs(5),
            base: 2.0,
        },
        max_retries: 4,
        retry_timeout: Duration::from_secs(60),
    }
}

fn client_options(endpoint: Option<&str>) -> ClientOptions {
    ClientOptions::new()
        .with_connect_timeout(Duration::from_secs(10))
        .with_timeout(Duration::from_secs(300))
        .with_allow_http(endpoint.is_some_and(|e| e.starts_with("http://")))
}

/// A value from the shared AWS files (`~/.aws/credentials` or `~/.aws/config`, or the files
/// `AWS_SHARED_CREDENTIALS_FILE` / `AWS_CONFIG_FILE` name) for the profile `AWS_PROFILE`
/// (default `default`).
fn aws_profile_value(file: &str, key: &str) -> Option<String> {
    let (env, default) = match file {
        "credentials" => ("AWS_SHARED_CREDENTIALS_FILE", "credentials"),
        _ => ("AWS_CONFIG_FILE", "config"),
    };
    let path = std::env::var_os(env)
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| FsPath::new(&h).join(".aws").join(default)))?;
    let text = std::fs::read_to_string(path).ok()?;
    let profile = std::env::var("AWS_PROFILE").unwrap_or_else(|_| "default".into());
    ini_value(&text, &profile, file == "config", key)
}

/// `key` in `[profile]` of an AWS INI file (`[profile NAME]` in the config file, except for
/// `default`).
fn ini_value(text: &str, profile: &str, config: bool, key: &str) -> Option<String> {
    let wanted = if config && profile != "default" {
        format!("profile {profile}")
    } else {
        profile.to_owned()
    };
    let mut in_section = false;
    for line in text.lines() {
        let line = line.trim();
        if line.starts_with('#') || line.starts_with(';') || line.is_empty() {
            continue;
        }
        if let Some(section) = line.strip_prefix('[').and_then(|l| l.strip_suffix(']')) {
            in_section = section.trim() == wanted;
            continue;
        }
        if in_section
            && let Some((k, v)) = line.split_once('=')
            && k.trim() == key
        {
            return Some(v.trim().to_owned());
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_each_scheme_and_its_settings() {
        let u =
            StoreUrl::parse("s3://bk/a/b/?endpoint=http://127.0.0.1:9000&path-style=true").unwrap();
        assert_eq!((u.scheme, u.bucket.as_str()), (Scheme::S3, "bk"));
        assert_eq!(u.prefix, "a/b");
        assert_eq!(u.url, "s3://bk/a/b");
        assert_eq!(u.options["endpoint"], "http://127.0.0.1:9000");
        assert_eq!(u.key("x.tar.gz").as_ref(), "a/b/x.tar.gz");
        let f = StoreUrl::parse("file:///tmp/backups").unwrap();
        assert_eq!(
            (f.scheme, f.bucket.as_str()),
            (Scheme::File, "/tmp/backups")
        );
        assert_eq!(f.key("x").as_ref(), "x");
        assert_eq!(StoreUrl::parse("gs://b").unwrap().prefix, "");
        assert_eq!(StoreUrl::parse("az://c/p").unwrap().scheme, Scheme::Azure);
    }

    #[test]
    fn rejects_what_cannot_work() {
        for (url, why) in [
            ("ftp://x/y", "unknown scheme"),
            ("s3://key:secret@bk/p", "credentials"),
            ("s3://bk/p?color=red", "unknown setting"),
            ("gs://b/p?region=x", "unknown setting"),
            ("file://host/dir", "local directory"),
            ("s3:///p", "no bucket"),
        ] {
            let e = StoreUrl::parse(url).unwrap_err().to_string();
            assert!(e.contains(why), "{url}: {e}");
        }
        let u = StoreUrl::parse("s3://bk/p?path-style=maybe").unwrap();
        assert!(
            u.open()
                .unwrap_err()
                .to_string()
                .contains("expected true or false")
        );
    }

    #[test]
    fn azure_emulator_is_addressed_path_style_at_the_given_endpoint() {
        let u = StoreUrl::parse("az://c/p?emulator=true&endpoint=http://127.0.0.1:1234/").unwrap();
        let b = u.azure_builder().unwrap();
        let account = b.get_config_value(&AzureConfigKey::AccountName).unwrap();
        if std::env::var_os("AZURE_STORAGE_ACCOUNT_NAME").is_none() {
            assert_eq!(account, AZURITE_ACCOUNT);
        }
        assert_eq!(
            b.get_config_value(&AzureConfigKey::Endpoint).unwrap(),
            format!("http://127.0.0.1:1234/{account}")
        );
        assert_eq!(
            b.get_config_value(&AzureConfigKey::UseEmulator).unwrap(),
            "false"
        );
        let plain = StoreUrl::parse("az://c/p?account=a&endpoint=https://blob.example").unwrap();
        let b = plain.azure_builder().unwrap();
        assert_eq!(
            b.get_config_value(&AzureConfigKey::Endpoint).unwrap(),
            "https://blob.example"
        );
        assert!(u.open().is_ok());
    }

    #[test]
    fn splits_a_named_backup_off_the_prefix() {
        let u = StoreUrl::parse("s3://bk/pre/fix/knot-zones-h-1.tar.gz").unwrap();
        let (parent, name) = u.split_last().unwrap();
        assert_eq!(
            (parent.prefix.as_str(), name.as_str()),
            ("pre/fix", "knot-zones-h-1.tar.gz")
        );
        assert_eq!(parent.url, "s3://bk/pre/fix");
        assert!(StoreUrl::parse("s3://bk").unwrap().split_last().is_none());
    }

    #[test]
    fn reads_profiles_from_aws_ini_files() {
        let creds = "[default]\naws_access_key_id = A\n[ops]\naws_access_key_id=B\n";
        assert_eq!(
            ini_value(creds, "ops", false, "aws_access_key_id").unwrap(),
            "B"
        );
        assert_eq!(
            ini_value(creds, "default", false, "aws_access_key_id").unwrap(),
            "A"
        );
        let config = "[default]\nregion=r1\n[profile ops]\nregion = r2\n";
        assert_eq!(ini_value(config, "ops", true, "region").unwrap(), "r2");
        assert_eq!(ini_value(config, "default", true, "region").unwrap(), "r1");
        assert!(ini_value(config, "none", true, "region").is_none());
    }
}
