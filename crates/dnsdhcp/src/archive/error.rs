//! The error type of the archive layer.

use std::io;
use std::path::{Path, PathBuf};

use super::zone::ZoneFileError;

/// Everything that can go wrong while writing, checking or extracting an archive.
///
/// Variants name the archive member (path inside the archive) or the file on disk concerned, so
/// the message alone tells an operator what to look at.
#[derive(Debug, thiserror::Error)]
pub enum ArchiveError {
    /// Reading or writing a file on disk failed.
    #[error("{}: {source}", path.display())]
    Io {
        /// The file or directory the operation was about.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: io::Error,
    },
    /// The archive itself could not be read (bad gzip, truncated data, broken tar headers).
    #[error("{}: unreadable archive: {source}", archive.display())]
    Corrupt {
        /// The archive file.
        archive: PathBuf,
        /// The underlying decoding error.
        #[source]
        source: io::Error,
    },
    /// An entry that safe extraction refuses (wrong type, unsafe path, duplicate, over a limit).
    #[error("{}: entry {entry:?} rejected: {reason}", archive.display())]
    Rejected {
        /// The archive file.
        archive: PathBuf,
        /// The entry's path as stored in the archive (lossily decoded).
        entry: String,
        /// Why it was rejected.
        reason: String,
    },
    /// The manifest is missing, unreadable, or disagrees with the archive's contents.
    #[error("{}: manifest: {reason}", archive.display())]
    Manifest {
        /// The archive file.
        archive: PathBuf,
        /// What is wrong.
        reason: String,
    },
    /// A member's content does not match the size or SHA-256 recorded in the manifest.
    #[error("{}: member {member}: checksum mismatch: {reason}", archive.display())]
    Checksum {
        /// The archive file.
        archive: PathBuf,
        /// The member's path inside the archive.
        member: String,
        /// Expected versus actual size or digest.
        reason: String,
    },
    /// A zone file could not be parsed.
    #[error(transparent)]
    Zone(#[from] ZoneFileError),
    /// A lease file has a malformed row.
    #[error("{member}:{line}: {message}")]
    Leases {
        /// The lease file (archive member or path on disk).
        member: String,
        /// The 1-based line number.
        line: usize,
        /// What is wrong with that line.
        message: String,
    },
    /// A path given to the writer cannot be stored (absolute, `..`, reserved, duplicate).
    #[error("cannot store {path:?} in an archive: {reason}")]
    InvalidMemberPath {
        /// The requested path inside the archive.
        path: String,
        /// Why it is refused.
        reason: String,
    },
    /// A source file changed size while it was being archived.
    #[error("{}: file changed while being archived ({reason})", path.display())]
    SourceChanged {
        /// The source file.
        path: PathBuf,
        /// Expected versus actual size.
        reason: String,
    },
    /// An earlier error left the writer unusable; the archive will not be published.
    #[error("archive writer for {} failed earlier and cannot continue", path.display())]
    WriterFailed {
        /// The final path the archive was meant for.
        path: PathBuf,
    },
    /// The writer's methods were called in an order it does not support (a programming error).
    #[error("archive writer misuse: {reason}")]
    Misuse {
        /// What was wrong.
        reason: &'static str,
    },
    /// The extraction destination already exists and the mode does not allow replacing it.
    #[error("{}: destination already exists", path.display())]
    DestinationExists {
        /// The destination directory.
        path: PathBuf,
    },
}

impl ArchiveError {
    pub(crate) fn io(path: impl Into<PathBuf>, source: io::Error) -> Self {
        ArchiveError::Io {
            path: path.into(),
            source,
        }
    }

    /// For `map_err`: a read error of `archive`'s stream (gzip, tar or a member's content)
    /// makes it corrupt.
    pub(crate) fn corrupt(archive: &Path) -> impl Fn(io::Error) -> Self + Copy + '_ {
        move |source| ArchiveError::Corrupt {
            archive: archive.to_owned(),
            source,
        }
    }
}

/// Attach a path to an `io::Result`.
pub(crate) trait IoContext<T> {
    fn at(self, path: impl Into<PathBuf>) -> Result<T, ArchiveError>;
}

impl<T> IoContext<T> for io::Result<T> {
    fn at(self, path: impl Into<PathBuf>) -> Result<T, ArchiveError> {
        self.map_err(|e| ArchiveError::io(path, e))
    }
}
