//! Coming from the original chart: its archives, its restore scripts, its values.
//!
//! * [`archive`]: archives without a manifest (`tar czf` of a `knotc zone-backup` directory or
//!   of Kea's lease directory) are read, checked and converted into project archives, so every
//!   restore path (`restore`, both targets, and the in-pod roles) accepts them.
//! * [`scripts`]: the `restore-scripts/` archives of the original chart's later backups, parsed
//!   (never executed) and converted by `dnsdhcp import`.
//! * [`values`]: values written for the original chart (`segments[]`) converted by
//!   `dnsdhcp values convert`.

pub mod archive;
pub mod scripts;
pub mod values;

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
                            apex_from_target: false,
                            newer_types: Vec::new(),
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

/// One archive `import` wrote.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Imported {
    /// Where it is.
    pub path: PathBuf,
    /// Its verification report (the archive is verified after writing).
    pub report: VerifyReport,
}

/// What `import` made of one legacy archive.
#[derive(Debug, Clone, serde::Serialize)]
pub struct ImportReport {
    /// The legacy archive.
    pub archive: PathBuf,
    /// `restore-scripts` or `files` (a `tar` of zone or lease files).
    pub format: &'static str,
    /// The project archives written.
    pub written: Vec<Imported>,
    /// Script lines that carry data but could not be converted.
    pub unconverted: Vec<scripts::Unconverted>,
    /// Members left out, with why.
    pub ignored: Vec<String>,
}

/// The name of an imported archive: the legacy one's with `-imported[-what]` before `.tar.gz`.
fn imported_name(archive: &Path, what: Option<&str>) -> String {
    let name = archive
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "archive.tar.gz".into());
    let stem = name
        .strip_suffix(".tar.gz")
        .or_else(|| name.strip_suffix(".tgz"))
        .unwrap_or(&name);
    match what {
        Some(w) => format!("{stem}-imported-{w}.tar.gz"),
        None => format!("{stem}-imported.tar.gz"),
    }
}

/// Converts a legacy `archive` into verified project archives in `out_dir` (created if
/// missing): a `restore-scripts/` archive by parsing its scripts (never running them), a `tar`
/// of zone or lease files as `restore` would. Nothing is executed; what could not be converted
/// is listed in the report.
pub fn import(archive: &Path, out_dir: &Path) -> Result<ImportReport, LegacyError> {
    let limits = Limits::default();
    if has_manifest(archive, &limits)? {
        return Err(LegacyError::HasManifest {
            archive: archive.to_owned(),
        });
    }
    std::fs::create_dir_all(out_dir).map_err(|e| ArchiveError::io(out_dir, e))?;
    let legacy = read_legacy(archive, &limits)?;
    let source = format!(
        "import:{}",
        archive
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default()
    );
    let (format, paths, unconverted) = match &legacy.content {
        LegacyContent::Scripts(s) => {
            let parsed = scripts::parse_scripts(s);
            let both = !parsed.zones.is_empty() && parsed.has_lease_script;
            let zones_out = out_dir.join(imported_name(archive, both.then_some("zones")));
            let leases_out = out_dir.join(imported_name(archive, both.then_some("leases")));
            let written = scripts::write_imported(&parsed, &source, &zones_out, &leases_out)?;
            if written.is_empty() {
                return Err(LegacyError::Unrecognised {
                    archive: archive.to_owned(),
                    reason: "its restore scripts hold neither zone records nor a lease script"
                        .into(),
                });
            }
            let paths = written.into_iter().map(|(p, _)| p).collect();
            ("restore-scripts", paths, parsed.unconverted)
        }
        _ => {
            let out = out_dir.join(imported_name(archive, None));
            archive::write_converted(&legacy, &out)?;
            ("files", vec![out], Vec::new())
        }
    };
    let written = paths
        .into_iter()
        .map(|path| Imported {
            report: crate::archive::verify(&path, &limits),
            path,
        })
        .collect();
    Ok(ImportReport {
        archive: archive.to_owned(),
        format,
        written,
        unconverted,
        ignored: legacy.ignored,
    })
}
