//! Crash-safe file replacement: temporary name in the same directory, fsync, rename, fsync dir.

use std::fs::{File, Permissions};
use std::io::{self, Write};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use tempfile::{NamedTempFile, TempPath};

use super::error::{ArchiveError, IoContext};

/// The directory that holds `path` (`.` for a bare file name).
pub(crate) fn parent_dir(path: &Path) -> &Path {
    match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    }
}

/// Create a hidden temporary file `.NAME.partial-XXXXXX` beside `final_path`, mode 0600 from the
/// start. The returned `TempPath` removes the file when dropped.
pub(crate) fn partial_file(final_path: &Path) -> Result<(File, TempPath), ArchiveError> {
    let name = final_path
        .file_name()
        .ok_or_else(|| ArchiveError::io(final_path, io::Error::other("path has no file name")))?;
    let prefix = format!(".{}.partial-", name.to_string_lossy());
    let dir = parent_dir(final_path);
    let tmp: NamedTempFile = tempfile::Builder::new()
        .prefix(&prefix)
        .permissions(Permissions::from_mode(0o600))
        .tempfile_in(dir)
        .at(dir)?;
    Ok(tmp.into_parts())
}

/// Flush a directory's entries (a rename or unlink within it) to stable storage.
pub(crate) fn fsync_dir(dir: &Path) -> Result<(), ArchiveError> {
    File::open(dir).and_then(|d| d.sync_all()).at(dir)
}

/// Rename a fully written and fsynced temporary file onto `final_path`, then fsync the directory.
pub fn publish(temp: TempPath, final_path: &Path) -> Result<(), ArchiveError> {
    temp.persist(final_path)
        .map_err(|e| ArchiveError::io(final_path, e.error))?;
    fsync_dir(parent_dir(final_path))
}

/// Write `final_path` atomically: `write` fills a temporary file (mode 0600) beside it, which is
/// then fsynced and renamed over `final_path`.
///
/// A crash or error at any point leaves either the old file or the new one, never a partial file
/// under the final name; on error the temporary file is removed.
pub fn write_file_atomically(
    final_path: &Path,
    write: impl FnOnce(&mut File) -> io::Result<()>,
) -> Result<(), ArchiveError> {
    let (mut file, temp) = partial_file(final_path)?;
    write(&mut file).at(&*temp)?;
    file.flush().at(&*temp)?;
    file.sync_all().at(&*temp)?;
    drop(file);
    publish(temp, final_path)
}

/// Atomically replace `final_path` with a copy of `src` (mode 0600), e.g. `zones.tar.gz` from the
/// timestamped archive just written.
pub fn replace_file_atomically(src: &Path, final_path: &Path) -> Result<(), ArchiveError> {
    let mut input = File::open(src).at(src)?;
    write_file_atomically(final_path, |out| io::copy(&mut input, out).map(drop))
}

/// Remove the hidden `.NAME.partial-*` files a killed writer left beside `final_path`; returns
/// how many were removed.
///
/// Only call this when no other writer for the same final name can be running (e.g. under the
/// backup's own lock): it would delete that writer's temporary file.
pub fn remove_partial_files(final_path: &Path) -> Result<usize, ArchiveError> {
    let Some(name) = final_path.file_name() else {
        return Ok(0);
    };
    let prefix = format!(".{}.partial-", name.to_string_lossy());
    let dir = parent_dir(final_path);
    let mut removed = 0;
    for entry in std::fs::read_dir(dir).at(dir)? {
        let entry = entry.at(dir)?;
        if entry.file_name().to_string_lossy().starts_with(&prefix)
            && entry.file_type().at(entry.path())?.is_file()
        {
            std::fs::remove_file(entry.path()).at(entry.path())?;
            removed += 1;
        }
    }
    if removed > 0 {
        fsync_dir(dir)?;
    }
    Ok(removed)
}

/// A unique, hidden, not-yet-existing sibling name for `path`: `.NAME.TAG-XXXXXX`.
pub(crate) fn sibling_dir(path: &Path, tag: &str) -> Result<tempfile::TempDir, ArchiveError> {
    let name = path
        .file_name()
        .ok_or_else(|| ArchiveError::io(path, io::Error::other("path has no file name")))?;
    let dir = parent_dir(path);
    tempfile::Builder::new()
        .prefix(&format!(".{}.{tag}-", name.to_string_lossy()))
        .permissions(Permissions::from_mode(0o700))
        .tempdir_in(dir)
        .at(dir)
}

/// `renameat2(a, b, flags)`; `Ok(false)` when the kernel or filesystem does not support `flags`.
#[cfg(target_os = "linux")]
fn renameat2(a: &Path, b: &Path, flags: libc::c_uint) -> Result<bool, ArchiveError> {
    use std::ffi::CString;
    use std::os::unix::ffi::OsStrExt;
    let ca = CString::new(a.as_os_str().as_bytes())
        .map_err(|e| ArchiveError::io(a, io::Error::other(e)))?;
    let cb = CString::new(b.as_os_str().as_bytes())
        .map_err(|e| ArchiveError::io(b, io::Error::other(e)))?;
    // SAFETY: both arguments are valid NUL-terminated strings that outlive the call.
    let rc = unsafe {
        libc::renameat2(
            libc::AT_FDCWD,
            ca.as_ptr(),
            libc::AT_FDCWD,
            cb.as_ptr(),
            flags,
        )
    };
    if rc == 0 {
        return Ok(true);
    }
    let err = io::Error::last_os_error();
    match err.raw_os_error() {
        Some(libc::EINVAL) | Some(libc::ENOSYS) | Some(libc::EOPNOTSUPP) => Ok(false),
        _ => Err(ArchiveError::io(b, err)),
    }
}

/// Atomically exchange two paths (Linux `RENAME_EXCHANGE`); `Ok(false)` when unsupported.
pub(crate) fn exchange(a: &Path, b: &Path) -> Result<bool, ArchiveError> {
    #[cfg(target_os = "linux")]
    {
        renameat2(a, b, libc::RENAME_EXCHANGE)
    }
    #[cfg(not(target_os = "linux"))]
    {
        let _ = (a, b);
        Ok(false)
    }
}

/// Rename `a` to `b`, failing with [`ArchiveError::DestinationExists`] if `b` exists (atomically
/// on Linux with `RENAME_NOREPLACE`; elsewhere checked just before the rename).
pub(crate) fn rename_noreplace(a: &Path, b: &Path) -> Result<(), ArchiveError> {
    #[cfg(target_os = "linux")]
    match renameat2(a, b, libc::RENAME_NOREPLACE) {
        Ok(true) => return Ok(()),
        Ok(false) => {}
        Err(ArchiveError::Io { source, .. }) if source.kind() == io::ErrorKind::AlreadyExists => {
            return Err(ArchiveError::DestinationExists { path: b.to_owned() });
        }
        Err(e) => return Err(e),
    }
    if b.symlink_metadata().is_ok() {
        return Err(ArchiveError::DestinationExists { path: b.to_owned() });
    }
    std::fs::rename(a, b).at(b)
}

/// A path under `dir` that does not exist yet (for moving an old tree aside).
pub(crate) fn unused_sibling(path: &Path, tag: &str) -> PathBuf {
    let name = path.file_name().unwrap_or_default().to_string_lossy();
    let dir = parent_dir(path);
    let pid = std::process::id();
    (0u32..)
        .map(|i| dir.join(format!(".{name}.{tag}-{pid}-{i}")))
        .find(|p| p.symlink_metadata().is_err())
        .expect("an unused name exists")
}
