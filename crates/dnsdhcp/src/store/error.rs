//! Why a store operation failed.

use std::path::PathBuf;

/// An object-store operation that failed. Nothing under a final key has changed when an upload
/// returns this, and nothing on disk has changed when a download does.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StoreError {
    /// The store URL cannot be used.
    #[error("store URL {url:?}: {reason}")]
    Url {
        /// The URL as given.
        url: String,
        /// What is wrong with it.
        reason: String,
    },
    /// The object store refused or failed a request.
    #[error("{op} {key}: {source}")]
    Backend {
        /// What was being done (`upload`, `list`, ...).
        op: &'static str,
        /// The object key or prefix concerned.
        key: String,
        /// The store's error.
        #[source]
        source: object_store::Error,
    },
    /// A downloaded object does not match what its entry records.
    #[error("{key}: {reason}; the object was rejected and nothing was changed")]
    Tampered {
        /// The object key.
        key: String,
        /// What differs.
        reason: String,
    },
    /// An entry (the JSON beside each archive) cannot be read.
    #[error("{key}: unreadable backup entry: {reason}")]
    Entry {
        /// The entry's key.
        key: String,
        /// Why.
        reason: String,
    },
    /// No backup matches what was asked for.
    #[error("{0}")]
    NotFound(String),
    /// Encryption or decryption failed, or a key file cannot be used.
    #[error("{context}: {reason}")]
    Crypto {
        /// What was being done.
        context: String,
        /// Why it failed.
        reason: String,
    },
    /// Plain-text upload of an archive holding DNSSEC keys was refused.
    #[error(
        "{archive}: refusing to upload a full Knot archive (it holds DNSSEC private keys) \
         without encryption; give --recipient or drop --require-encryption"
    )]
    EncryptionRequired {
        /// The archive.
        archive: String,
    },
    /// A local file operation failed.
    #[error("{}: {source}", path.display())]
    Io {
        /// The path.
        path: PathBuf,
        /// The error.
        #[source]
        source: std::io::Error,
    },
    /// A retention policy that keeps nothing was given.
    #[error(
        "no retention rule given (--keep-last/-hourly/-daily/-weekly/-monthly); nothing removed"
    )]
    NoPolicy,
}

impl StoreError {
    pub(crate) fn backend(
        op: &'static str,
        key: impl Into<String>,
    ) -> impl FnOnce(object_store::Error) -> StoreError {
        let key = key.into();
        move |source| StoreError::Backend { op, key, source }
    }

    pub(crate) fn io(path: impl Into<PathBuf>) -> impl FnOnce(std::io::Error) -> StoreError {
        let path = path.into();
        move |source| StoreError::Io { path, source }
    }

    pub(crate) fn crypto(context: impl Into<String>, reason: impl ToString) -> StoreError {
        StoreError::Crypto {
            context: context.into(),
            reason: reason.to_string(),
        }
    }
}
