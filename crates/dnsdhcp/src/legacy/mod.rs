//! Coming from the original chart: its archives, its restore scripts, its values.
//!
//! * [`archive`]: archives without a manifest (`tar czf` of a `knotc zone-backup` directory or
//!   of Kea's lease directory) are read, checked and converted into project archives, so every
//!   restore path (`restore`, both targets, and the in-pod roles) accepts them.

pub mod archive;

use std::path::{Path, PathBuf};

use crate::archive::{ArchiveError, Limits, Manifest, VerifyReport};

pub use archive::{Legacy, LegacyContent, LegacyLeaseFile, LegacyZone, has_manifest, read_legacy};

/// The note every manifest-less archive carries.
pub const NO_MANIFEST_NOTE: &str = "no manifest: integrity cannot be checked";

/// Why a manifest-less archive cannot be used.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum LegacyError {
    /// Reading, checking or writing an archive failed (a bad entry, zone file or lease row).
    #[error(transparent)]
    Archive(#[from] ArchiveError),
    /// The archive has no manifest and is not one the original chart wrote.
    #[error("{}: {reason}", archive.display())]
    Unrecognised {
        /// The archive.
        archive: PathBuf,
        /// What was found instead.
        reason: String,
    },
    /// The archive has a manifest: it is a project archive, not a legacy one.
    #[error("{}: has a manifest; it is not a legacy archive", archive.display())]
    HasManifest {
        /// The archive.
        archive: PathBuf,
    },
    /// A `restore-scripts/` archive is restored only after `dnsdhcp import` converted it (so the
    /// operator sees what could not be converted).
    #[error(
        "{}: an archive of the original chart's restore scripts; convert it first with `dnsdhcp import {}`",
        archive.display(), archive.display()
    )]
    NeedsImport {
        /// The archive.
        archive: PathBuf,
    },
}

impl LegacyError {
    /// Names `archive` in an error found before the archive's path was known.
    fn in_archive(self, archive: &Path) -> Self {
        match self {
            LegacyError::Unrecognised { archive: a, reason } if a.as_os_str().is_empty() => {
                LegacyError::Unrecognised {
                    archive: archive.to_owned(),
                    reason,
                }
            }
            other => other,
        }
    }
}

/// A project archive converted from a legacy one; the file is removed when this drops.
#[derive(Debug)]
pub struct Converted {
    path: PathBuf,
    /// The legacy archive as read.
    pub legacy: Legacy,
    /// The converted archive's manifest.
    pub manifest: Manifest,
}

impl Converted {
    /// The converted archive.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

impl Drop for Converted {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.path);
    }
}

/// When `archive` has no manifest, reads it as a legacy archive (checking everything that can
/// be checked) and converts it into a hidden project archive in `dir` (same filesystem as the
/// data it restores, where that matters); `None` for a project archive.
pub fn convert_if_legacy(archive: &Path, dir: &Path) -> Result<Option<Converted>, LegacyError> {
    let limits = Limits::default();
    // An unreadable archive is left to the caller's verification, which names the problem.
    if has_manifest(archive, &limits).unwrap_or(true) {
        return Ok(None);
    }
    let legacy = read_legacy(archive, &limits)?;
    let name = archive
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "archive.tar.gz".into());
    let path = dir.join(format!(".dnsdhcp-legacy-{}-{}", std::process::id(), name));
    let manifest = archive::write_converted(&legacy, &path)?;
    Ok(Some(Converted {
        path,
        legacy,
        manifest,
    }))
}

/// Fills `report` for a manifest-less `archive`: marks it legacy, notes that its integrity
/// cannot be checked, and reports its zones or leases, or every problem found.
pub(crate) fn fill_report(archive: &Path, limits: &Limits, report: &mut VerifyReport) {
    report.legacy = true;
    report.notes.push(NO_MANIFEST_NOTE.into());
    match read_legacy(archive, limits) {
        Ok(legacy) => {
            report.kind = legacy.kind();
            match &legacy.content {
                LegacyContent::Zones(zones) => {
                    for z in zones {
                        report.records += z.records;
                        report.zones.push(crate::archive::ZoneCheck {
                            name: z.name.clone(),
                            file: z.member.clone(),
                            serial: z.serial,
                            records: z.records,
                        });
                    }
                }
                LegacyContent::Leases { files, set, .. } => {
                    for f in files {
                        report.lease_files.push(crate::archive::LeaseFileCheck {
                            file: f.member.clone(),
                            rows: f.rows,
                            leases: f.leases,
                        });
                    }
                    report.lease_count = set.leases.len() as u64;
                }
                LegacyContent::Scripts(_) => {
                    report.add_problem(
                        LegacyError::NeedsImport {
                            archive: archive.to_owned(),
                        }
                        .to_string(),
                    );
                }
            }
            report
                .notes
                .extend(legacy.ignored.iter().map(|i| format!("ignored {i}")));
        }
        Err(LegacyError::Archive(e)) => report.add_error(e),
        Err(e) => report.add_problem(e.to_string()),
    }
    report.ok = report.problems.is_empty();
}
