//! Backup archives: manifest, atomic writer, safe extraction, verification.
//!
//! An archive is a gzip-compressed tar file. Its members are the backed-up files (regular files
//! and directories only) followed by [`MANIFEST_NAME`], a JSON [`Manifest`] that records the size
//! and SHA-256 of every file, the SOA serial and record count of every zone file and the row count
//! of every lease file. Archives are written under a temporary name and renamed into place
//! ([`ArchiveWriter`]), checked entry by entry before anything is extracted ([`extract`]), and can
//! be verified on their own ([`verify`]).
//!
//! Layout: members keep the relative paths they were added with (e.g. a Knot backup directory
//! added with [`ArchiveWriter::add_dir_all_with`] gives `knot_backup.label`, `zonefiles/*.zone`,
//! `keys/...`); [`MANIFEST_NAME`] comes last. A writer may end a first gzip member after the
//! zone files ([`ArchiveWriter::end_prefix`]) so that `zones.tar.gz` is published by copying
//! those bytes and appending its own manifest
//! ([`ArchiveWriter::finish_with_prefix_copy`]); readers accept gzip streams of several
//! members, as `gzip` and `tar` do.

mod error;
mod extract;
mod fsutil;
mod gzip;
mod manifest;
pub(crate) mod scan;
mod verify;
mod writer;
pub(crate) mod zone;

pub use error::ArchiveError;
pub use extract::{ExtractMode, ExtractOptions, Extracted, extract};
pub use fsutil::{
    publish as publish_file, remove_partial_files, replace_file_atomically, write_file_atomically,
};
pub use manifest::{
    ArchiveKind, FORMAT_VERSION, FileEntry, LeaseFileFacts, MANIFEST_NAME, Manifest, ZoneFacts,
};
pub use scan::{Limits, read_manifest};
pub use verify::{LeaseFileCheck, Problem, VerifyReport, ZoneCheck, check_lease_rows, verify};
pub use writer::{ArchiveWriter, Member, filter_archive};
pub(crate) use zone::normalize_zone_name;
pub use zone::{
    NewerType, ZoneFileError, ZoneSummary, member_of_zone, zone_checker, zone_facts,
    zone_facts_from_file, zone_facts_without_apex, zone_of_member, zone_summary,
};
