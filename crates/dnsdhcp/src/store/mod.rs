//! Backups in object storage: S3-compatible stores, Google Cloud Storage, Azure Blob Storage
//! and local directories, through the `object_store` crate.
//!
//! Layout under the URL's prefix, one pair of objects per archive:
//!
//! | key | what |
//! |---|---|
//! | `<archive>` or `<archive>.age` | the archive, as written locally, or age-encrypted |
//! | `<archive>.entry.json` | an [`Entry`]: the object's size and SHA-256, the archive's, what was encrypted to whom, and the archive's manifest |
//!
//! The archive is uploaded first as a multipart upload (aborted on failure: the object
//! appears under its final key only when complete), then its entry with one PUT. Listing reads
//! only entries, so a backup is listed once both exist, and the manifests are readable without
//! any private key. Downloads are checked against the entry's size and SHA-256 before anything
//! uses them, and decrypted archives against the plain SHA-256. Memory stays bounded: archives
//! move in [`CHUNK`]-sized parts, at most a few at a time.

mod crypt;
mod error;
mod location;
pub mod retention;
mod transfer;

pub use crypt::{Identities, Recipients};
pub use error::StoreError;
pub use location::{Scheme, StoreUrl};
pub use transfer::{
    CHUNK, Downloaded, ENTRY_SUFFIX, Encryption, Entry, PruneOutcome, RemoteCheck, Store,
};
