//! Putting restored lease files in place so that Kea, whenever it next loads, sees either the
//! old lease files or the restored ones — never a mix, never the same archive applied twice.
//!
//! The protocol, inside the lease directory:
//! 1. **stage**: the archive is verified and extracted into `.dnsdhcp-restore.new/` (checked
//!    entry by entry before anything is written), fsynced;
//! 2. **commit**: that directory is renamed to `.dnsdhcp-restore.ready/` — from here on the
//!    restore will complete, whatever happens; the caller removes the consumed archive now;
//! 3. **finish**: Kea's other lease files (`X.pid`, `X.completed`, `X.2`, `X.1`) are removed,
//!    the restored file is renamed over `X`, and the ready directory is removed.
//!
//! [`finish_pending`] completes an interrupted step 3 and is run first by every caller, so a
//! crash at any point either leaves the old files (before 2) or ends with the restored ones.

use std::fs;
use std::io;
use std::path::{Path, PathBuf};

use kea_leases::Role;

use crate::archive::{self, ArchiveError, ExtractOptions, Limits, VerifyReport};

/// Staging directory name (step 1).
const NEW_DIR: &str = ".dnsdhcp-restore.new";
/// Committed directory name (steps 2–3).
const READY_DIR: &str = ".dnsdhcp-restore.ready";

/// Why restoring lease files failed.
#[derive(Debug, thiserror::Error)]
pub enum LeaseInstallError {
    /// The archive failed verification; nothing was changed.
    #[error("{}: verification failed: {}", archive.display(), problems.join("; "))]
    Verify {
        /// The archive.
        archive: PathBuf,
        /// What is wrong, each naming the member and line.
        problems: Vec<String>,
    },
    /// The archive does not hold exactly one lease file.
    #[error("{}: expected exactly one lease file, found {found}", archive.display())]
    NotOneLeaseFile {
        /// The archive.
        archive: PathBuf,
        /// How many it has.
        found: usize,
    },
    /// Extraction failed; nothing was changed.
    #[error(transparent)]
    Archive(#[from] ArchiveError),
    /// A file-system step failed.
    #[error("{}: {source}", path.display())]
    Io {
        /// The path.
        path: PathBuf,
        /// The error.
        #[source]
        source: io::Error,
    },
}

fn io_at(path: &Path) -> impl FnOnce(io::Error) -> LeaseInstallError + '_ {
    move |source| LeaseInstallError::Io {
        path: path.to_owned(),
        source,
    }
}

/// The directory holding `lease_file`.
fn lease_dir(lease_file: &Path) -> &Path {
    lease_file
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."))
}

/// Checks `archive` in full (checksums, every lease row) and that it holds one lease file.
pub fn verify_lease_archive(archive: &Path) -> Result<VerifyReport, LeaseInstallError> {
    let report = archive::verify(archive, &Limits::default());
    if !report.ok {
        return Err(LeaseInstallError::Verify {
            archive: archive.to_owned(),
            problems: report.problems.iter().map(|p| p.to_string()).collect(),
        });
    }
    if report.lease_files.len() != 1 {
        return Err(LeaseInstallError::NotOneLeaseFile {
            archive: archive.to_owned(),
            found: report.lease_files.len(),
        });
    }
    Ok(report)
}

/// Steps 1 and 2: verifies `archive`, extracts it beside `lease_file` and commits to the
/// restore. After this returns, the caller may remove the archive; [`finish_pending`] then puts
/// the files in place.
pub fn stage(archive: &Path, lease_file: &Path) -> Result<VerifyReport, LeaseInstallError> {
    let report = verify_lease_archive(archive)?;
    let dir = lease_dir(lease_file);
    let new = dir.join(NEW_DIR);
    if new.exists() {
        // Left by a crash before the commit: not committed, so simply start again.
        fs::remove_dir_all(&new).map_err(io_at(&new))?;
    }
    archive::extract(archive, &new, &ExtractOptions::default())?;
    let member = &report.lease_files[0].file;
    let target_name = lease_file.file_name().unwrap_or_default();
    let staged = new.join(member);
    let renamed = new.join(target_name);
    if staged != renamed {
        fs::rename(&staged, &renamed).map_err(io_at(&staged))?;
    }
    fsync(&new)?;
    let ready = dir.join(READY_DIR);
    fs::rename(&new, &ready).map_err(io_at(&new))?;
    fsync(dir)?;
    Ok(report)
}

/// Step 3: if a committed restore is pending beside `lease_file`, removes Kea's other lease
/// files and the `.pid`, moves the restored file over `lease_file`. Returns whether there was
/// one. Safe to run again after a crash in the middle.
pub fn finish_pending(lease_file: &Path) -> Result<bool, LeaseInstallError> {
    let dir = lease_dir(lease_file);
    let ready = dir.join(READY_DIR);
    if !ready.is_dir() {
        return Ok(false);
    }
    let restored = ready.join(lease_file.file_name().unwrap_or_default());
    if restored.exists() {
        let mut pid = lease_file.as_os_str().to_owned();
        pid.push(".pid");
        let others = [Role::Completed, Role::Previous, Role::Rotated]
            .map(|r| r.path_for(lease_file))
            .into_iter()
            .chain([PathBuf::from(pid)]);
        for path in others {
            match fs::remove_file(&path) {
                Ok(()) => {}
                Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                Err(e) => return Err(io_at(&path)(e)),
            }
        }
        fs::rename(&restored, lease_file).map_err(io_at(&restored))?;
        fsync(dir)?;
    }
    fs::remove_dir_all(&ready).map_err(io_at(&ready))?;
    fsync(dir)?;
    Ok(true)
}

fn fsync(dir: &Path) -> Result<(), LeaseInstallError> {
    fs::File::open(dir)
        .and_then(|f| f.sync_all())
        .map_err(io_at(dir))
}

/// Removes `path` and makes the removal durable.
pub fn remove_durably(path: &Path) -> Result<(), LeaseInstallError> {
    fs::remove_file(path).map_err(io_at(path))?;
    fsync(lease_dir(path))
}
