//! Upload, list, download, verify and delete archives in a store.

use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use bytes::Bytes;
use futures::StreamExt;
use object_store::path::Path as Key;
use object_store::{ObjectStore, ObjectStoreExt, PutPayload, WriteMultipart};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use tokio::sync::mpsc;

use super::crypt::{Identities, Recipients};
use super::error::StoreError;
use super::location::StoreUrl;
use super::retention::{self, Decision, Item, Policy};
use crate::archive::{self, ArchiveKind, Limits, Manifest, VerifyReport};

/// Size of one multipart part, and of the chunks handed from the reading thread to the
/// uploader. With [`IN_FLIGHT`] parts uploading and two chunks queued, an upload holds at most
/// about 6 × 8 MiB whatever the archive's size.
pub const CHUNK: usize = 8 * 1024 * 1024;
/// Parts uploaded concurrently.
const IN_FLIGHT: usize = 2;
/// Suffix of the entry object beside each archive.
pub const ENTRY_SUFFIX: &str = ".entry.json";
/// The entry format this code writes; readers refuse newer ones.
const ENTRY_FORMAT: u32 = 1;

/// What was encrypted, and to whom (public keys only).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Encryption {
    /// `age` (age-encryption.org/v1).
    pub scheme: String,
    /// The whole archive object is encrypted; the entry (manifest included) is not.
    pub encrypted: String,
    /// The recipients' public keys: any one of their private keys decrypts.
    pub recipients: Vec<String>,
}

/// The JSON object stored beside each archive: what the object must be, and what it holds.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Entry {
    /// Entry format version.
    pub format: u32,
    /// The archive object's name under the prefix (`<archive>` or `<archive>.age`).
    pub name: String,
    /// The object's size in bytes.
    pub size: u64,
    /// The object's SHA-256 (lower-case hex).
    pub sha256: String,
    /// The archive's file name (what a download is saved as).
    pub archive: String,
    /// The plain archive's size.
    pub archive_size: u64,
    /// The plain archive's SHA-256.
    pub archive_sha256: String,
    /// Set when the object is encrypted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub encryption: Option<Encryption>,
    /// When the upload completed (RFC 3339, UTC).
    pub uploaded: String,
    /// The archive's own manifest: time, kind, source, files, zones, leases.
    pub manifest: Manifest,
}

impl Entry {
    /// The name backups are grouped and addressed by: the archive name without `.tar.gz`.
    pub fn id(&self) -> &str {
        self.archive
            .strip_suffix(".tar.gz")
            .unwrap_or(&self.archive)
    }

    /// True when `name` addresses this backup: its object name, archive name or id.
    pub fn is_named(&self, name: &str) -> bool {
        name == self.name || name == self.archive || name == self.id()
    }
}

/// An archive fetched from the store into a local directory, checked against its entry.
#[derive(Debug, Clone)]
pub struct Downloaded {
    /// The plain archive on disk.
    pub path: PathBuf,
    /// Its entry.
    pub entry: Entry,
}

/// The outcome of checking one stored backup.
#[derive(Debug, Clone, Serialize)]
pub struct RemoteCheck {
    /// The backup's object name.
    pub name: String,
    /// True when the object matched its entry and, when its contents could be read, they
    /// verified in full.
    pub ok: bool,
    /// The object's size and SHA-256 match its entry.
    pub checksum_ok: bool,
    /// The contents were verified (false for an encrypted backup without its identity).
    pub contents_checked: bool,
    /// The archive verification report, when the contents were read.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub report: Option<VerifyReport>,
    /// What went wrong before the archive could be verified.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub problems: Vec<String>,
}

/// An opened store: the service behind a [`StoreUrl`].
#[derive(Clone)]
pub struct Store {
    url: StoreUrl,
    inner: Arc<dyn ObjectStore>,
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Store({})", self.url)
    }
}

impl Store {
    /// Opens the store `url` names (no request is made yet).
    pub fn open(url: &StoreUrl) -> Result<Store, StoreError> {
        Ok(Store {
            url: url.clone(),
            inner: url.open()?,
        })
    }

    /// The URL this store was opened from.
    pub fn url(&self) -> &StoreUrl {
        &self.url
    }

    /// Uploads the archive at `path` (whose manifest is `manifest`), encrypted to `recipients`
    /// when there are any, then its entry. Refuses a plain-text full Knot archive when
    /// `require_encryption`. On any failure the multipart upload is aborted and no object
    /// appears under the archive's key.
    pub async fn upload(
        &self,
        path: &Path,
        manifest: &Manifest,
        recipients: &Recipients,
        require_encryption: bool,
    ) -> Result<Entry, StoreError> {
        let archive = path
            .file_name()
            .and_then(|n| n.to_str())
            .ok_or_else(|| StoreError::NotFound(format!("{}: no file name", path.display())))?
            .to_owned();
        if require_encryption && recipients.is_empty() && manifest.kind == ArchiveKind::ZonesFull {
            return Err(StoreError::EncryptionRequired { archive });
        }
        let name = if recipients.is_empty() {
            archive.clone()
        } else {
            format!("{archive}.age")
        };
        let key = self.url.key(&name);
        let sums = self.put_streamed(&key, path, recipients).await?;
        let entry = Entry {
            format: ENTRY_FORMAT,
            name: name.clone(),
            size: sums.object_size,
            sha256: sums.object_sha256,
            archive,
            archive_size: sums.plain_size,
            archive_sha256: sums.plain_sha256,
            encryption: (!recipients.is_empty()).then(|| Encryption {
                scheme: "age".into(),
                encrypted: "archive".into(),
                recipients: recipients.keys().to_vec(),
            }),
            uploaded: jiff::Timestamp::now().to_string(),
            manifest: manifest.clone(),
        };
        let json = serde_json::to_vec_pretty(&entry).expect("entry serialises");
        let entry_key = self.url.key(&format!("{name}{ENTRY_SUFFIX}"));
        self.inner
            .put(&entry_key, PutPayload::from(json))
            .await
            .map_err(StoreError::backend("upload", entry_key.to_string()))?;
        Ok(entry)
    }

    /// Streams `path` (encrypted when there are recipients) into a multipart upload at `key`.
    async fn put_streamed(
        &self,
        key: &Key,
        path: &Path,
        recipients: &Recipients,
    ) -> Result<Sums, StoreError> {
        let file = std::fs::File::open(path).map_err(StoreError::io(path))?;
        let (tx, mut rx) = mpsc::channel::<Bytes>(2);
        let recipients = recipients.clone();
        let path_owned = path.to_owned();
        let producer = tokio::task::spawn_blocking(move || {
            produce(file, &path_owned, &recipients, ChunkSink::new(tx))
        });
        let upload = self
            .inner
            .put_multipart(key)
            .await
            .map_err(StoreError::backend("upload", key.to_string()));
        let mut upload = match upload {
            Ok(u) => WriteMultipart::new_with_chunk_size(u, CHUNK),
            Err(e) => {
                drop(rx);
                let _ = producer.await;
                return Err(e);
            }
        };
        let sent = async {
            while let Some(chunk) = rx.recv().await {
                upload.wait_for_capacity(IN_FLIGHT).await?;
                upload.put(chunk);
            }
            Ok::<_, object_store::Error>(())
        }
        .await;
        drop(rx);
        let produced = producer
            .await
            .map_err(|e| StoreError::crypto("reading the archive", e))?;
        match (sent, produced) {
            (Ok(()), Ok(sums)) => {
                upload
                    .finish()
                    .await
                    .map_err(StoreError::backend("upload", key.to_string()))?;
                Ok(sums)
            }
            (Err(e), _) => {
                let _ = upload.abort().await;
                Err(StoreError::Backend {
                    op: "upload",
                    key: key.to_string(),
                    source: e,
                })
            }
            (Ok(()), Err(e)) => {
                let _ = upload.abort().await;
                Err(e)
            }
        }
    }

    /// Checks that the store answers, the bucket exists and the credentials are accepted (one
    /// listing request), so a backup is not taken for a store that cannot take it.
    pub async fn probe(&self) -> Result<(), StoreError> {
        self.inner
            .list_with_delimiter(self.url.prefix_key().as_ref())
            .await
            .map(drop)
            .map_err(StoreError::backend("list", self.url.url.clone()))
    }

    /// Every backup entry under the prefix, oldest first (by the manifests' creation time).
    pub async fn list(&self) -> Result<Vec<Entry>, StoreError> {
        let prefix = self.url.prefix_key();
        let listed: Vec<_> = self
            .inner
            .list_with_delimiter(prefix.as_ref())
            .await
            .map_err(StoreError::backend("list", self.url.url.clone()))?
            .objects;
        let keys: Vec<Key> = listed
            .into_iter()
            .map(|m| m.location)
            .filter(|k| k.as_ref().ends_with(ENTRY_SUFFIX))
            .collect();
        let mut entries: Vec<Entry> = futures::stream::iter(keys)
            .map(|k| async move { self.read_entry(&k).await })
            .buffer_unordered(8)
            .collect::<Vec<_>>()
            .await
            .into_iter()
            .collect::<Result<_, _>>()?;
        entries.sort_by(|a, b| (a.manifest.created, &a.name).cmp(&(b.manifest.created, &b.name)));
        Ok(entries)
    }

    async fn read_entry(&self, key: &Key) -> Result<Entry, StoreError> {
        let bytes = self
            .inner
            .get(key)
            .await
            .map_err(StoreError::backend("download", key.to_string()))?
            .bytes()
            .await
            .map_err(StoreError::backend("download", key.to_string()))?;
        let bad = |reason: String| StoreError::Entry {
            key: key.to_string(),
            reason,
        };
        let entry: Entry = serde_json::from_slice(&bytes).map_err(|e| bad(e.to_string()))?;
        if entry.format > ENTRY_FORMAT {
            return Err(bad(format!(
                "entry format {} is newer than this dnsdhcp understands ({ENTRY_FORMAT})",
                entry.format
            )));
        }
        let expected = format!("{}{ENTRY_SUFFIX}", entry.name);
        if key.filename() != Some(expected.as_str()) {
            return Err(bad(format!("names another object ({})", entry.name)));
        }
        Ok(entry)
    }

    /// The newest backup of `kind` (optionally from `source`), or the one `name` addresses.
    pub async fn find(
        &self,
        kinds: &[ArchiveKind],
        name: Option<&str>,
        source: Option<&str>,
    ) -> Result<Entry, StoreError> {
        let entries = self.list().await?;
        let found = match name {
            Some(n) => entries.into_iter().rev().find(|e| e.is_named(n)),
            None => entries.into_iter().rev().find(|e| {
                kinds.contains(&e.manifest.kind) && source.is_none_or(|s| e.manifest.source == s)
            }),
        };
        let what = match name {
            Some(n) => format!("no backup named {n:?}"),
            None => format!(
                "no {} backup{}",
                kinds
                    .iter()
                    .map(|k| k.to_string())
                    .collect::<Vec<_>>()
                    .join(" or "),
                source.map(|s| format!(" from {s}")).unwrap_or_default()
            ),
        };
        let entry = found.ok_or_else(|| StoreError::NotFound(format!("{what} in {}", self.url)))?;
        if let Some(n) = name
            && !kinds.is_empty()
            && !kinds.contains(&entry.manifest.kind)
        {
            return Err(StoreError::NotFound(format!(
                "backup {n:?} in {} is a {} archive",
                self.url, entry.manifest.kind
            )));
        }
        Ok(entry)
    }

    /// Downloads `entry`'s archive into `dir`: the object is streamed to a temporary file and
    /// checked against the entry's size and SHA-256, decrypted with `identities` if encrypted
    /// and checked again, then given the archive's name. Nothing is left behind on failure.
    pub async fn download(
        &self,
        entry: &Entry,
        dir: &Path,
        identities: Option<&Identities>,
    ) -> Result<Downloaded, StoreError> {
        let key = self.url.key(&entry.name);
        let fetched = dir.join(format!(".{}.part", entry.name));
        let result = self
            .download_inner(entry, &key, &fetched, dir, identities)
            .await;
        let _ = std::fs::remove_file(&fetched);
        result.map(|path| Downloaded {
            path,
            entry: entry.clone(),
        })
    }

    async fn download_inner(
        &self,
        entry: &Entry,
        key: &Key,
        fetched: &Path,
        dir: &Path,
        identities: Option<&Identities>,
    ) -> Result<PathBuf, StoreError> {
        let (size, sha) = self.fetch_to(key, fetched).await?;
        let tampered = |reason: String| StoreError::Tampered {
            key: key.to_string(),
            reason,
        };
        if size != entry.size || sha != entry.sha256 {
            return Err(tampered(format!(
                "{size} bytes with SHA-256 {sha}, but its entry records {} bytes with SHA-256 {}",
                entry.size, entry.sha256
            )));
        }
        let dest = dir.join(&entry.archive);
        if entry.encryption.is_none() {
            std::fs::rename(fetched, &dest).map_err(StoreError::io(&dest))?;
            return Ok(dest);
        }
        let ids = identities.filter(|i| !i.is_empty()).ok_or_else(|| {
            StoreError::crypto(
                format!("{key}"),
                "the backup is encrypted; give --identity FILE with one of its recipients' keys",
            )
        })?;
        let staged = dir.join(format!(".{}.plain", entry.archive));
        let decrypted = decrypt_file(ids, fetched, &staged);
        let checked = decrypted.and_then(|(size, sha)| {
            if size != entry.archive_size || sha != entry.archive_sha256 {
                return Err(tampered(format!(
                    "decrypts to {size} bytes with SHA-256 {sha}, but its entry records {} \
                     bytes with SHA-256 {}",
                    entry.archive_size, entry.archive_sha256
                )));
            }
            std::fs::rename(&staged, &dest).map_err(StoreError::io(&dest))
        });
        if checked.is_err() {
            let _ = std::fs::remove_file(&staged);
        }
        checked.map(|()| dest)
    }

    /// Streams the object at `key` into `path`, returning its size and SHA-256.
    async fn fetch_to(&self, key: &Key, path: &Path) -> Result<(u64, String), StoreError> {
        let mut stream = self
            .inner
            .get(key)
            .await
            .map_err(StoreError::backend("download", key.to_string()))?
            .into_stream();
        let mut file = private_file(path)?;
        let mut hasher = Sha256::new();
        let mut size = 0u64;
        while let Some(chunk) = stream.next().await {
            let chunk = chunk.map_err(StoreError::backend("download", key.to_string()))?;
            hasher.update(&chunk);
            size += chunk.len() as u64;
            file.write_all(&chunk).map_err(StoreError::io(path))?;
        }
        file.sync_all().map_err(StoreError::io(path))?;
        Ok((size, hex::encode(hasher.finalize())))
    }

    /// Checks `entry`: downloads it into a temporary directory (object checksum), decrypts it
    /// when `identities` are given, and verifies the archive in full.
    pub async fn check(&self, entry: &Entry, identities: Option<&Identities>) -> RemoteCheck {
        let mut out = RemoteCheck {
            name: entry.name.clone(),
            ok: false,
            checksum_ok: false,
            contents_checked: false,
            report: None,
            problems: Vec::new(),
        };
        let dir = match tempfile::tempdir() {
            Ok(d) => d,
            Err(e) => {
                out.problems.push(format!("temporary directory: {e}"));
                return out;
            }
        };
        let can_decrypt = identities.is_some_and(|i| !i.is_empty());
        if entry.encryption.is_some() && !can_decrypt {
            let key = self.url.key(&entry.name);
            match self.fetch_to(&key, &dir.path().join("object")).await {
                Ok((size, sha)) if size == entry.size && sha == entry.sha256 => {
                    out.checksum_ok = true;
                    out.ok = true;
                }
                Ok((size, sha)) => out.problems.push(format!(
                    "object is {size} bytes with SHA-256 {sha}; its entry records {} bytes with \
                     SHA-256 {}",
                    entry.size, entry.sha256
                )),
                Err(e) => out.problems.push(e.to_string()),
            }
            return out;
        }
        match self.download(entry, dir.path(), identities).await {
            Ok(d) => {
                out.checksum_ok = true;
                out.contents_checked = true;
                let report = archive::verify(&d.path, &Limits::default());
                out.ok = report.ok;
                out.report = Some(report);
            }
            Err(e) => {
                out.checksum_ok =
                    !matches!(e, StoreError::Tampered { .. } | StoreError::Backend { .. });
                out.problems.push(e.to_string());
            }
        }
        out
    }

    /// Deletes a backup: its entry first (so it is no longer listed), then the archive object.
    pub async fn delete(&self, entry: &Entry) -> Result<(), StoreError> {
        let entry_key = self.url.key(&format!("{}{ENTRY_SUFFIX}", entry.name));
        self.inner
            .delete(&entry_key)
            .await
            .map_err(StoreError::backend("delete", entry_key.to_string()))?;
        let key = self.url.key(&entry.name);
        self.inner
            .delete(&key)
            .await
            .map_err(StoreError::backend("delete", key.to_string()))
    }
}

/// Sizes and digests of what was read and what was uploaded.
struct Sums {
    plain_size: u64,
    plain_sha256: String,
    object_size: u64,
    object_sha256: String,
}

/// Reads `file`, encrypts it when there are recipients, and writes it to `sink` (run on a
/// blocking thread; the sink hands chunks to the uploader).
fn produce(
    file: std::fs::File,
    path: &Path,
    recipients: &Recipients,
    mut sink: ChunkSink,
) -> Result<Sums, StoreError> {
    let mut reader = HashingReader::new(std::io::BufReader::with_capacity(1 << 20, file));
    let io_err = |e: std::io::Error| {
        if e.kind() == std::io::ErrorKind::BrokenPipe {
            StoreError::crypto("upload", "the upload stopped")
        } else {
            StoreError::Io {
                path: path.to_owned(),
                source: e,
            }
        }
    };
    if recipients.is_empty() {
        std::io::copy(&mut reader, &mut sink).map_err(io_err)?;
    } else {
        let mut w = recipients.encrypt(&mut sink)?;
        std::io::copy(&mut reader, &mut w).map_err(io_err)?;
        w.finish().map_err(io_err)?;
    }
    sink.flush_chunk().map_err(io_err)?;
    let (plain_size, plain_sha256) = reader.finish();
    Ok(Sums {
        plain_size,
        plain_sha256,
        object_size: sink.size,
        object_sha256: hex::encode(sink.hasher.finalize()),
    })
}

/// A `Write` that hashes what passes and sends it on in [`CHUNK`]-sized pieces.
struct ChunkSink {
    tx: mpsc::Sender<Bytes>,
    buf: Vec<u8>,
    hasher: Sha256,
    size: u64,
}

impl ChunkSink {
    fn new(tx: mpsc::Sender<Bytes>) -> Self {
        ChunkSink {
            tx,
            buf: Vec::with_capacity(CHUNK),
            hasher: Sha256::new(),
            size: 0,
        }
    }

    fn flush_chunk(&mut self) -> std::io::Result<()> {
        if self.buf.is_empty() {
            return Ok(());
        }
        let chunk = std::mem::replace(&mut self.buf, Vec::with_capacity(CHUNK));
        self.tx
            .blocking_send(Bytes::from(chunk))
            .map_err(|_| std::io::Error::from(std::io::ErrorKind::BrokenPipe))
    }
}

impl Write for ChunkSink {
    fn write(&mut self, data: &[u8]) -> std::io::Result<usize> {
        let n = data.len().min(CHUNK - self.buf.len());
        self.buf.extend_from_slice(&data[..n]);
        self.hasher.update(&data[..n]);
        self.size += n as u64;
        if self.buf.len() == CHUNK {
            self.flush_chunk()?;
        }
        Ok(n)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// A `Read` that hashes and counts what passes.
struct HashingReader<R> {
    inner: R,
    hasher: Sha256,
    size: u64,
}

impl<R: Read> HashingReader<R> {
    fn new(inner: R) -> Self {
        HashingReader {
            inner,
            hasher: Sha256::new(),
            size: 0,
        }
    }

    fn finish(self) -> (u64, String) {
        (self.size, hex::encode(self.hasher.finalize()))
    }
}

impl<R: Read> Read for HashingReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.hasher.update(&buf[..n]);
        self.size += n as u64;
        Ok(n)
    }
}

/// Decrypts the age file `src` into `dest`, returning the plain size and SHA-256.
fn decrypt_file(ids: &Identities, src: &Path, dest: &Path) -> Result<(u64, String), StoreError> {
    let input = std::fs::File::open(src).map_err(StoreError::io(src))?;
    let mut plain = HashingReader::new(ids.decrypt(input)?);
    let mut out = private_file(dest)?;
    std::io::copy(&mut plain, &mut out).map_err(|e| StoreError::crypto("decrypting", e))?;
    out.sync_all().map_err(StoreError::io(dest))?;
    Ok(plain.finish())
}

/// What a prune did (or, with `dry_run`, would do).
#[derive(Debug, Clone, Serialize)]
pub struct PruneOutcome {
    /// Every backup, newest first per group, with whether it is kept and why.
    pub decisions: Vec<Decision>,
    /// Backups kept against the policy: the newest that verifies (or a whole group where
    /// nothing verifies).
    pub protected: Vec<String>,
    /// Every check made to find the newest backup that verifies.
    pub checks: Vec<RemoteCheck>,
    /// Backups removed (empty with `dry_run`).
    pub removed: Vec<String>,
    /// Nothing was removed: only planned.
    pub dry_run: bool,
}

impl Store {
    /// Applies `policy` (restic `forget` semantics, per source and kind), never removing the
    /// newest backup of a group that verifies (checked newest first with [`Store::check`]).
    pub async fn prune(
        &self,
        policy: &Policy,
        dry_run: bool,
        identities: Option<&Identities>,
    ) -> Result<PruneOutcome, StoreError> {
        if policy.is_empty() {
            return Err(StoreError::NoPolicy);
        }
        let entries = self.list().await?;
        let items: Vec<Item> = entries
            .iter()
            .map(|e| Item {
                name: e.name.clone(),
                group: format!("{} {}", e.manifest.source, e.manifest.kind),
                time: e.manifest.created,
            })
            .collect();
        let mut decisions = retention::plan(&items, policy);
        let by_name = |n: &str| {
            entries
                .iter()
                .find(|e| e.name == n)
                .expect("planned from entries")
        };
        // Checks are async; ask them in the order protect_newest_verified would, then replay.
        let mut checks = Vec::new();
        let mut verified = Vec::new();
        let mut settled: Vec<&str> = Vec::new();
        for d in &decisions {
            if settled.contains(&d.group.as_str()) {
                continue;
            }
            let c = self.check(by_name(&d.name), identities).await;
            if c.ok {
                verified.push(d.name.clone());
                settled.push(&d.group);
            }
            checks.push(c);
        }
        let protected =
            retention::protect_newest_verified(&mut decisions, |n| verified.iter().any(|v| v == n));
        let mut removed = Vec::new();
        if !dry_run {
            for d in decisions.iter().filter(|d| !d.keep) {
                self.delete(by_name(&d.name)).await?;
                removed.push(d.name.clone());
            }
        }
        Ok(PruneOutcome {
            decisions,
            protected,
            checks,
            removed,
            dry_run,
        })
    }
}

/// Creates (or truncates) `path` with mode 0600: archives of Knot backups hold DNSSEC keys.
fn private_file(path: &Path) -> Result<std::fs::File, StoreError> {
    use std::os::unix::fs::OpenOptionsExt;
    std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)
        .map_err(StoreError::io(path))
}
