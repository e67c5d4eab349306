//! Safe extraction: check every entry first, extract into a fresh sibling directory, rename.

use std::collections::HashMap;
use std::fs::{self, DirBuilder, OpenOptions, Permissions};
use std::io::{self, Read, Write};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use super::error::{ArchiveError, IoContext};
use super::fsutil::{
    exchange, fsync_dir, parent_dir, rename_noreplace, sibling_dir, unused_sibling,
};
use super::manifest::{FileEntry, MANIFEST_NAME, Manifest};
use super::scan::{self, HashingReader, Kind, Limits, normalize_path};

/// What to do when the destination directory already exists.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum ExtractMode {
    /// Fail with [`ArchiveError::DestinationExists`] (checked atomically at the rename).
    #[default]
    CreateNew,
    /// Swap the new tree in (atomic `RENAME_EXCHANGE` on Linux, else rename the old one aside
    /// first), then remove the old tree.
    Replace,
}

/// Options for [`extract`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ExtractOptions {
    /// Size and count limits.
    pub limits: Limits,
    /// Behaviour when the destination exists.
    pub mode: ExtractMode,
    /// Refuse archives without a manifest (true by default; `dnsdhcp` always writes one).
    pub require_manifest: bool,
    /// Permission bits of the destination directory itself.
    pub root_mode: u32,
}

impl Default for ExtractOptions {
    /// Default limits, [`ExtractMode::CreateNew`], manifest required, destination mode 0700.
    fn default() -> Self {
        ExtractOptions {
            limits: Limits::default(),
            mode: ExtractMode::CreateNew,
            require_manifest: true,
            root_mode: 0o700,
        }
    }
}

/// What [`extract`] put in place.
#[derive(Clone, Debug)]
pub struct Extracted {
    /// The destination directory.
    pub dest: PathBuf,
    /// The archive's manifest (not itself extracted), if it had one.
    pub manifest: Option<Manifest>,
    /// Every file extracted, with its verified size and SHA-256.
    pub files: Vec<FileEntry>,
}

/// Extract `archive` into the directory `dest`, or change nothing.
///
/// First every entry is read and checked (types, paths, duplicates, limits, gzip integrity, and
/// sizes and SHA-256 against the manifest). Only then is the archive extracted into a fresh
/// hidden directory beside `dest` (same filesystem), re-checking each file's digest, fsynced, and
/// renamed to `dest`. Files get the archive's permission bits without group/other write and
/// the current time as mtime; the manifest is returned, not extracted.
pub fn extract(
    archive: &Path,
    dest: &Path,
    opts: &ExtractOptions,
) -> Result<Extracted, ArchiveError> {
    if opts.mode == ExtractMode::CreateNew && dest.symlink_metadata().is_ok() {
        return Err(ArchiveError::DestinationExists {
            path: dest.to_owned(),
        });
    }
    // Pass 1: check everything.
    let scan = check(archive, opts)?;
    // Pass 2: write into a fresh directory beside dest; it is removed on any error.
    let tmp = sibling_dir(dest, "extract")?;
    let root = tmp.path().to_owned();
    let (files, dirs) = write_entries(archive, &scan, &root)?;
    if files.len() != scan.files().len() {
        return Err(changed(archive, "(file count)"));
    }
    set_dir_modes(dirs)?;
    sync_tree(&root)?;
    fs::set_permissions(&root, Permissions::from_mode(opts.root_mode & 0o777)).at(&root)?;

    publish_dir(tmp, dest, opts.mode)?;
    Ok(Extracted {
        dest: dest.to_owned(),
        manifest: scan.manifest,
        files,
    })
}

/// Reads and checks every entry of `archive`, and its manifest against them.
fn check(archive: &Path, opts: &ExtractOptions) -> Result<scan::Scan, ArchiveError> {
    let scan = scan::scan(archive, &opts.limits, |_, _, _, _| Ok(()))?;
    match &scan.manifest {
        Some(m) => scan::check_manifest(archive, &scan, m)?,
        None if opts.require_manifest => {
            return Err(ArchiveError::Manifest {
                archive: archive.to_owned(),
                reason: "no manifest".into(),
            });
        }
        None => {}
    }
    Ok(scan)
}

/// An entry that differs from what the first pass checked.
fn changed(archive: &Path, what: &str) -> ArchiveError {
    ArchiveError::Checksum {
        archive: archive.to_owned(),
        member: what.to_owned(),
        reason: "the archive changed between checking and extracting".into(),
    }
}

/// A directory extracted, and the permission bits the archive gives it.
type MadeDir = (PathBuf, u32);

/// Writes every entry of `archive` under `root`, each as the first pass found it. Returns the
/// files written and the directories made (with their archived modes, set later).
fn write_entries(
    archive: &Path,
    scan: &scan::Scan,
    root: &Path,
) -> Result<(Vec<FileEntry>, Vec<MadeDir>), ArchiveError> {
    let expected: HashMap<&str, &scan::ScannedEntry> =
        scan.entries.iter().map(|e| (e.path.as_str(), e)).collect();
    let mut files = Vec::new();
    let mut dirs: Vec<MadeDir> = Vec::new();
    let mut ar = scan::open(archive)?;
    let corrupt = ArchiveError::corrupt(archive);
    for entry in ar.entries().map_err(corrupt)? {
        let mut entry = entry.map_err(corrupt)?;
        let raw = entry.path_bytes().into_owned();
        let path =
            normalize_path(&raw).map_err(|_| changed(archive, &String::from_utf8_lossy(&raw)))?;
        if path.is_empty() || path == MANIFEST_NAME {
            continue;
        }
        let Some(exp) = expected.get(path.as_str()) else {
            return Err(changed(archive, &path));
        };
        let target = root.join(&path);
        let entry_type = entry.header().entry_type();
        match exp.kind {
            Kind::Dir => {
                if entry_type != tar::EntryType::Directory {
                    return Err(changed(archive, &path));
                }
                mkdirs(&target)?;
                dirs.push((target, exp.mode));
            }
            Kind::File => {
                if entry_type != tar::EntryType::Regular || entry.size() != exp.size {
                    return Err(changed(archive, &path));
                }
                let sha256 = write_file(&mut entry, exp, &target, archive, &path)?;
                files.push(FileEntry {
                    path,
                    size: exp.size,
                    sha256,
                });
            }
        }
    }
    let mut rest = ar.into_inner();
    io::copy(&mut rest, &mut io::sink()).map_err(corrupt)?;
    Ok((files, dirs))
}

/// Writes the file entry `path` of `archive` to `target` (new, owner-only until done),
/// checks its digest against the first pass's, sets its mode and makes it durable. Returns
/// its SHA-256.
fn write_file(
    entry: &mut impl Read,
    exp: &scan::ScannedEntry,
    target: &Path,
    archive: &Path,
    path: &str,
) -> Result<String, ArchiveError> {
    mkdirs(parent_dir(target))?;
    let mut out = OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(target)
        .at(target)?;
    let mut hashing = HashingReader::new(entry.take(exp.size));
    let mut buf = vec![0u8; 64 << 10];
    loop {
        let n = hashing
            .read(&mut buf)
            .map_err(ArchiveError::corrupt(archive))?;
        if n == 0 {
            break;
        }
        out.write_all(&buf[..n]).at(target)?;
    }
    let (n, sha256) = hashing.finish();
    if n != exp.size || sha256 != exp.sha256 {
        return Err(changed(archive, path));
    }
    out.set_permissions(Permissions::from_mode(file_mode(exp.mode)))
        .at(target)?;
    out.sync_all().at(target)?;
    Ok(sha256)
}

/// Directory modes last (a read-only directory must still receive its files), deepest first.
fn set_dir_modes(mut dirs: Vec<MadeDir>) -> Result<(), ArchiveError> {
    dirs.sort_by(|a, b| b.0.cmp(&a.0));
    for (dir, mode) in &dirs {
        fs::set_permissions(dir, Permissions::from_mode((mode & 0o755) | 0o700)).at(dir)?;
    }
    Ok(())
}

/// Permission bits for an extracted file: the archive's, owner read/write forced, no
/// group/other write, no set-id or sticky bits.
fn file_mode(mode: u32) -> u32 {
    (mode & 0o755) | 0o600
}

fn mkdirs(dir: &Path) -> Result<(), ArchiveError> {
    DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
        .at(dir)
}

/// fsync every directory under (and including) `root`.
fn sync_tree(root: &Path) -> Result<(), ArchiveError> {
    for entry in fs::read_dir(root).at(root)? {
        let entry = entry.at(root)?;
        if entry.file_type().at(entry.path())?.is_dir() {
            sync_tree(&entry.path())?;
        }
    }
    fsync_dir(root)
}

/// Move the finished temporary tree to `dest` according to `mode`.
fn publish_dir(tmp: tempfile::TempDir, dest: &Path, mode: ExtractMode) -> Result<(), ArchiveError> {
    let parent = parent_dir(dest).to_owned();
    let dest_exists = dest.symlink_metadata().is_ok();
    if mode == ExtractMode::CreateNew || !dest_exists {
        rename_noreplace(tmp.path(), dest)?;
        let _ = tmp.keep();
        return fsync_dir(&parent);
    }
    if !dest.symlink_metadata().at(dest)?.is_dir() {
        return Err(ArchiveError::io(
            dest,
            io::Error::other("destination exists and is not a directory"),
        ));
    }
    if exchange(tmp.path(), dest)? {
        // The temporary name now holds the old tree; TempDir removes it.
        fsync_dir(&parent)?;
        let _ = tmp.close();
        return Ok(());
    }
    // No atomic exchange: old aside, new in (old back on failure), old removed.
    let aside = unused_sibling(dest, "old");
    fs::rename(dest, &aside).at(dest)?;
    if let Err(e) = fs::rename(tmp.path(), dest) {
        let _ = fs::rename(&aside, dest);
        return Err(ArchiveError::io(dest, e));
    }
    let _ = tmp.keep();
    fsync_dir(&parent)?;
    let _ = fs::remove_dir_all(&aside);
    Ok(())
}
