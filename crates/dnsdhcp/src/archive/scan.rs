//! Reading an archive entry by entry and checking everything that safe extraction requires.

use std::collections::{BTreeMap, HashSet};
use std::fs::File;
use std::io::{self, BufReader, Read};
use std::path::Path;

use flate2::read::MultiGzDecoder;
use sha2::{Digest, Sha256};

use super::error::{ArchiveError, IoContext};
use super::manifest::{ArchiveKind, FORMAT_VERSION, MANIFEST_NAME, Manifest};

/// Bounds on what an archive may contain, checked before anything is extracted.
///
/// They keep a hostile or damaged archive from filling a volume or exhausting memory.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Limits {
    /// Maximum number of entries (files, directories and the manifest).
    pub max_entries: u64,
    /// Maximum size of one file, in bytes.
    pub max_file_size: u64,
    /// Maximum total size of all files, in bytes.
    pub max_total_size: u64,
    /// Maximum size of the manifest, which is read into memory.
    pub max_manifest_size: u64,
}

impl Default for Limits {
    /// 100,000 entries, 4 GiB per file, 16 GiB in total, 64 MiB of manifest.
    fn default() -> Self {
        Limits {
            max_entries: 100_000,
            max_file_size: 4 << 30,
            max_total_size: 16 << 30,
            max_manifest_size: 64 << 20,
        }
    }
}

/// Whether an entry is a file or a directory (the only two types accepted).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Kind {
    File,
    Dir,
}

/// One accepted entry, as seen by the checking pass.
#[derive(Clone, Debug)]
pub(crate) struct ScannedEntry {
    pub path: String,
    pub kind: Kind,
    pub size: u64,
    /// Hex SHA-256 for files; empty for directories.
    pub sha256: String,
    /// Permission bits from the header (already masked to 0o777).
    pub mode: u32,
}

/// The result of a checking pass: every entry in order (the manifest excluded) and the manifest.
#[derive(Debug)]
pub(crate) struct Scan {
    pub entries: Vec<ScannedEntry>,
    pub manifest: Option<Manifest>,
}

impl Scan {
    /// Every file entry (no directories), by path.
    pub fn files(&self) -> BTreeMap<&str, &ScannedEntry> {
        self.entries
            .iter()
            .filter(|e| e.kind == Kind::File)
            .map(|e| (e.path.as_str(), e))
            .collect()
    }
}

/// Normalise an entry path: UTF-8, relative, no `..`, `.` and empty components dropped.
///
/// Returns the `/`-joined components (empty for the archive root itself) or why it is refused.
pub(crate) fn normalize_path(raw: &[u8]) -> Result<String, String> {
    let s = std::str::from_utf8(raw).map_err(|_| "path is not valid UTF-8".to_owned())?;
    if s.starts_with('/') {
        return Err("absolute path".into());
    }
    let mut parts = Vec::new();
    for c in s.split('/') {
        match c {
            "" | "." => {}
            ".." => return Err("path has a `..` component".into()),
            c if c.contains('\0') => return Err("path contains NUL".into()),
            c => parts.push(c),
        }
    }
    Ok(parts.join("/"))
}

/// A reader that hashes and counts what passes through it.
pub(crate) struct HashingReader<R> {
    inner: R,
    hasher: Sha256,
    count: u64,
}

impl<R: Read> HashingReader<R> {
    pub fn new(inner: R) -> Self {
        HashingReader {
            inner,
            hasher: Sha256::new(),
            count: 0,
        }
    }

    /// Bytes read so far and the hex digest of them.
    pub fn finish(self) -> (u64, String) {
        (self.count, hex::encode(self.hasher.finalize()))
    }
}

impl<R: Read> Read for HashingReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.hasher.update(&buf[..n]);
        self.count += n as u64;
        Ok(n)
    }
}

/// Open an archive for reading entries.
pub(crate) fn open(
    archive: &Path,
) -> Result<tar::Archive<MultiGzDecoder<BufReader<File>>>, ArchiveError> {
    let file = File::open(archive).at(archive)?;
    Ok(tar::Archive::new(MultiGzDecoder::new(
        BufReader::with_capacity(256 << 10, file),
    )))
}

/// Read every entry of `archive`, check it, hash it, and hand each file's content to `on_file`
/// (with its size and permission bits).
///
/// Checks: only regular files and directories; safe, unique paths; no file where another entry
/// needs a directory; entry, file and total size limits; the gzip stream is complete and intact;
/// the manifest (if present) parses and has a supported format. `on_file` sees a file's content
/// (it may read none, some or all of it; the rest is read and hashed here). It is not called for
/// the manifest. Manifest contents are not compared here; see [`check_manifest`].
pub(crate) fn scan(
    archive: &Path,
    limits: &Limits,
    mut on_file: impl FnMut(&str, u64, u32, &mut dyn Read) -> Result<(), ArchiveError>,
) -> Result<Scan, ArchiveError> {
    let corrupt = ArchiveError::corrupt(archive);
    let mut ar = open(archive)?;
    let mut entries = Vec::new();
    let mut manifest = None;
    let mut layout = Layout::default();
    let mut budget = Budget {
        limits,
        count: 0,
        total: 0,
    };
    for entry in ar.entries().map_err(corrupt)? {
        let mut entry = entry.map_err(corrupt)?;
        let raw = entry.path_bytes().into_owned();
        let shown = String::from_utf8_lossy(&raw).into_owned();
        let reject = |reason: String| ArchiveError::Rejected {
            archive: archive.to_owned(),
            entry: shown.clone(),
            reason,
        };
        budget.count_entry().map_err(reject)?;
        let kind = match entry.header().entry_type() {
            tar::EntryType::Regular => Kind::File,
            tar::EntryType::Directory => Kind::Dir,
            other => {
                return Err(reject(format!(
                    "entry type {other:?} is not a regular file or directory"
                )));
            }
        };
        let path = normalize_path(&raw).map_err(reject)?;
        if path.is_empty() {
            if kind == Kind::Dir {
                continue; // "./": the archive root itself
            }
            return Err(reject("file entry with an empty path".into()));
        }
        layout.place(&path, kind).map_err(reject)?;
        let mode = entry.header().mode().map_err(corrupt)? & 0o777;
        let size = entry.size();
        if kind == Kind::Dir {
            entries.push(ScannedEntry {
                path,
                kind,
                size: 0,
                sha256: String::new(),
                mode,
            });
        } else if path == MANIFEST_NAME {
            if size > limits.max_manifest_size {
                return Err(reject(format!(
                    "manifest larger than {} bytes",
                    limits.max_manifest_size
                )));
            }
            let mut buf = Vec::with_capacity(size as usize);
            entry.read_to_end(&mut buf).map_err(corrupt)?;
            manifest = Some(parse_manifest(archive, &buf)?);
        } else {
            budget.add_file(size).map_err(reject)?;
            let mut hashing = HashingReader::new(&mut entry);
            on_file(&path, size, mode, &mut hashing)?;
            let sha256 = finish_hashing(hashing, size, &shown).map_err(corrupt)?;
            entries.push(ScannedEntry {
                path,
                kind,
                size,
                sha256,
                mode,
            });
        }
    }
    // Read the gzip stream to its end so that its CRC and length are checked too.
    let mut rest = ar.into_inner();
    io::copy(&mut rest, &mut io::sink()).map_err(corrupt)?;
    Ok(Scan { entries, manifest })
}

/// Reads the rest of a file entry that `on_file` left and returns its SHA-256; an entry that
/// ends before its announced size is truncated.
fn finish_hashing<R: Read>(
    mut hashing: HashingReader<R>,
    size: u64,
    shown: &str,
) -> io::Result<String> {
    io::copy(&mut hashing, &mut io::sink())?;
    let (n, sha256) = hashing.finish();
    if n != size {
        return Err(io::Error::new(
            io::ErrorKind::UnexpectedEof,
            format!("entry {shown:?} is truncated ({n} of {size} bytes)"),
        ));
    }
    Ok(sha256)
}

/// The paths seen so far: each once, and no file where another entry needs a directory (nor
/// the reverse).
#[derive(Default)]
struct Layout {
    seen: HashSet<String>,
    files: HashSet<String>,
    parents: HashSet<String>,
}

impl Layout {
    /// Takes `path` (normalized, not empty) as a `kind`, or says why it cannot be.
    fn place(&mut self, path: &str, kind: Kind) -> Result<(), String> {
        if !self.seen.insert(path.to_owned()) {
            return Err("duplicate path".into());
        }
        if self.parents.contains(path) && kind == Kind::File {
            return Err("file where a directory is needed".into());
        }
        let mut prefix = path;
        while let Some(i) = prefix.rfind('/') {
            prefix = &prefix[..i];
            if self.files.contains(prefix) {
                return Err(format!("parent {prefix:?} is a file"));
            }
            if !self.parents.insert(prefix.to_owned()) {
                break;
            }
        }
        if kind == Kind::File {
            self.files.insert(path.to_owned());
        }
        Ok(())
    }
}

/// The entry count and the files' total size, against the limits.
struct Budget<'l> {
    limits: &'l Limits,
    count: u64,
    total: u64,
}

impl Budget<'_> {
    fn count_entry(&mut self) -> Result<(), String> {
        self.count += 1;
        if self.count > self.limits.max_entries {
            return Err(format!("more than {} entries", self.limits.max_entries));
        }
        Ok(())
    }

    /// A file of `size` bytes (not the manifest): within the per-file and total limits.
    fn add_file(&mut self, size: u64) -> Result<(), String> {
        if size > self.limits.max_file_size {
            return Err(format!(
                "size {size} exceeds the per-file limit {}",
                self.limits.max_file_size
            ));
        }
        self.total += size;
        if self.total > self.limits.max_total_size {
            return Err(format!(
                "total size exceeds the limit {}",
                self.limits.max_total_size
            ));
        }
        Ok(())
    }
}

/// Parses a manifest's JSON, refusing formats newer than [`FORMAT_VERSION`].
fn parse_manifest(archive: &Path, json: &[u8]) -> Result<Manifest, ArchiveError> {
    let m: Manifest = serde_json::from_slice(json).map_err(|e| ArchiveError::Manifest {
        archive: archive.to_owned(),
        reason: format!("invalid JSON: {e}"),
    })?;
    if m.format > FORMAT_VERSION {
        return Err(ArchiveError::Manifest {
            archive: archive.to_owned(),
            reason: format!(
                "format {} is newer than this tool understands ({FORMAT_VERSION})",
                m.format
            ),
        });
    }
    Ok(m)
}

/// Reads only the manifest of `archive`, skipping the members before it unhashed: a quick
/// look at what the archive claims (e.g. its counts), not a verification.
pub fn read_manifest(archive: &Path, limits: &Limits) -> Result<Manifest, ArchiveError> {
    if let Some(manifest) = tail_manifest(archive, limits) {
        return parse_manifest(archive, &manifest);
    }
    let corrupt = ArchiveError::corrupt(archive);
    let mut ar = open(archive)?;
    for entry in ar.entries().map_err(corrupt)? {
        let mut entry = entry.map_err(corrupt)?;
        let path = normalize_path(&entry.path_bytes()).unwrap_or_default();
        if path != MANIFEST_NAME {
            continue;
        }
        if entry.size() > limits.max_manifest_size {
            break;
        }
        let mut buf = Vec::with_capacity(entry.size() as usize);
        entry.read_to_end(&mut buf).map_err(corrupt)?;
        return parse_manifest(archive, &buf);
    }
    Err(ArchiveError::Manifest {
        archive: archive.to_owned(),
        reason: "no manifest".into(),
    })
}

/// Compressed bytes at the end of an archive searched for a last gzip member holding the
/// manifest.
const TAIL: u64 = 1 << 20;

/// The manifest's bytes when the archive's last gzip member holds the manifest and the end of
/// the tar stream and nothing else, as [`super::ArchiveWriter`] writes it: gzip headers in the
/// last [`TAIL`] bytes are tried from the end, and one counts only if it decodes, checksum
/// included, to exactly the end of the file. `None` otherwise (older archives: one member).
fn tail_manifest(archive: &Path, limits: &Limits) -> Option<Vec<u8>> {
    use std::io::{Seek, SeekFrom};
    let mut file = File::open(archive).ok()?;
    let size = file.metadata().ok()?.len();
    let start = size.saturating_sub(TAIL);
    file.seek(SeekFrom::Start(start)).ok()?;
    let mut tail = Vec::with_capacity((size - start) as usize);
    file.read_to_end(&mut tail).ok()?;
    let mut end = tail.len();
    while let Some(pos) = tail[..end].windows(3).rposition(|w| w == [0x1f, 0x8b, 8]) {
        if let Some(manifest) = manifest_member(&tail[pos..], limits) {
            return Some(manifest);
        }
        end = pos + 2;
    }
    None
}

/// The manifest in `member`: one gzip member ending exactly at the end of `member`, holding a
/// tar stream of the manifest entry alone.
fn manifest_member(member: &[u8], limits: &Limits) -> Option<Vec<u8>> {
    let mut gz = flate2::bufread::GzDecoder::new(member);
    let mut data = Vec::new();
    (&mut gz)
        .take(limits.max_manifest_size + (64 << 10))
        .read_to_end(&mut data)
        .ok()?;
    if !gz.into_inner().is_empty() {
        return None;
    }
    let mut ar = tar::Archive::new(data.as_slice());
    let mut entries = ar.entries().ok()?;
    let mut entry = entries.next()?.ok()?;
    if entry.header().entry_type() != tar::EntryType::Regular
        || normalize_path(&entry.path_bytes()).ok()? != MANIFEST_NAME
        || entry.size() > limits.max_manifest_size
    {
        return None;
    }
    let mut manifest = Vec::with_capacity(entry.size() as usize);
    entry.read_to_end(&mut manifest).ok()?;
    drop(entry);
    entries.next().is_none().then_some(manifest)
}

/// Compare a scan with its manifest: same files, sizes and digests, consistent zone/lease facts.
pub(crate) fn check_manifest(
    archive: &Path,
    scan: &Scan,
    manifest: &Manifest,
) -> Result<(), ArchiveError> {
    let mfail = |reason: String| ArchiveError::Manifest {
        archive: archive.to_owned(),
        reason,
    };
    let files = scan.files();
    let mut listed = HashSet::new();
    for f in &manifest.files {
        if !listed.insert(f.path.as_str()) {
            return Err(mfail(format!("lists {:?} twice", f.path)));
        }
        let Some(e) = files.get(f.path.as_str()) else {
            return Err(mfail(format!(
                "lists {:?}, which is not in the archive",
                f.path
            )));
        };
        if e.size != f.size {
            return Err(ArchiveError::Checksum {
                archive: archive.to_owned(),
                member: f.path.clone(),
                reason: format!("size {} but the manifest says {}", e.size, f.size),
            });
        }
        if !e.sha256.eq_ignore_ascii_case(&f.sha256) {
            return Err(ArchiveError::Checksum {
                archive: archive.to_owned(),
                member: f.path.clone(),
                reason: format!("SHA-256 {} but the manifest says {}", e.sha256, f.sha256),
            });
        }
    }
    for path in files.keys() {
        if !listed.contains(path) {
            return Err(mfail(format!("does not list the archive member {path:?}")));
        }
    }
    for z in &manifest.zones {
        if !listed.contains(z.file.as_str()) {
            return Err(mfail(format!(
                "zone {} refers to {:?}, which is not a listed file",
                z.name, z.file
            )));
        }
    }
    if matches!(manifest.kind, ArchiveKind::Zones | ArchiveKind::ZonesFull) {
        let zone_files: HashSet<&str> = manifest.zones.iter().map(|z| z.file.as_str()).collect();
        let mut unlisted: Vec<&str> = listed
            .iter()
            .copied()
            .filter(|f| super::zone::zone_of_member(f).is_some() && !zone_files.contains(f))
            .collect();
        unlisted.sort();
        if !unlisted.is_empty() {
            return Err(mfail(format!(
                "lists no zone for the zone file(s) {}",
                unlisted.join(", ")
            )));
        }
    }
    for l in &manifest.lease_files {
        if !listed.contains(l.file.as_str()) {
            return Err(mfail(format!(
                "lease file {:?} is not a listed file",
                l.file
            )));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::normalize_path;

    #[test]
    fn manifest_is_read_from_the_last_member_and_from_one_member_archives_too() {
        use super::super::{ArchiveKind, ArchiveWriter};
        use super::{Limits, read_manifest, tail_manifest};
        use std::io::{Read, Write};
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("a.tar.gz");
        let mut w = ArchiveWriter::create(&path, ArchiveKind::Leases, "local:t").unwrap();
        // Several MiB of incompressible-ish data: the manifest is far from the file's start.
        let mut x = 1u64;
        let data: Vec<u8> = (0..3 << 20)
            .map(|_| {
                x = x.wrapping_mul(6364136223846793005).wrapping_add(1);
                (x >> 33) as u8
            })
            .collect();
        w.add_bytes("data", &data, 0o600).unwrap();
        let written = w.finish().unwrap();
        let limits = Limits::default();
        assert!(
            tail_manifest(&path, &limits).is_some(),
            "last member holds the manifest"
        );
        assert_eq!(read_manifest(&path, &limits).unwrap().files, written.files);

        // The same tar stream as one gzip member (an older archive): read the long way.
        let mut tar = Vec::new();
        flate2::read::MultiGzDecoder::new(std::fs::File::open(&path).unwrap())
            .read_to_end(&mut tar)
            .unwrap();
        let one = dir.path().join("one.tar.gz");
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        gz.write_all(&tar).unwrap();
        std::fs::write(&one, gz.finish().unwrap()).unwrap();
        assert!(tail_manifest(&one, &limits).is_none());
        assert_eq!(read_manifest(&one, &limits).unwrap().files, written.files);
    }

    #[test]
    fn normalize_accepts_relative_and_refuses_escapes() {
        assert_eq!(normalize_path(b"a/b").unwrap(), "a/b");
        assert_eq!(normalize_path(b"./a//b/").unwrap(), "a/b");
        assert_eq!(normalize_path(b"./").unwrap(), "");
        assert!(normalize_path(b"../x").is_err());
        assert!(normalize_path(b"a/../../x").is_err());
        assert!(normalize_path(b"a/..").is_err());
        assert!(normalize_path(b"/etc/passwd").is_err());
        assert!(normalize_path(b"\xff").is_err());
    }
}
