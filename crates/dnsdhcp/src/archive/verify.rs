//! Verifying an archive on its own: structure, checksums, zone files and lease rows.

use std::collections::{HashMap, HashSet};
use std::fmt;
use std::io::Read;
use std::path::{Path, PathBuf};

use kea_leases::csv::{Header, RowKey, check_row};
use serde::Serialize;

use super::error::ArchiveError;
use super::manifest::{ArchiveKind, LeaseFileFacts, Manifest, ZoneFacts};
use super::scan::{self, Limits};
use super::zone::{ZoneFileError, ZoneSummary, zone_checker};
use crate::zonefile::NewerType;

/// One thing wrong with an archive, tied to a member and line when possible.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Problem {
    /// The archive member concerned, if any.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub member: Option<String>,
    /// The 1-based line within that member, if any.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub line: Option<usize>,
    /// What is wrong.
    pub message: String,
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match (&self.member, self.line) {
            (Some(m), Some(l)) => write!(f, "{m}:{l}: {}", self.message),
            (Some(m), None) => write!(f, "{m}: {}", self.message),
            _ => f.write_str(&self.message),
        }
    }
}

/// A zone file as found by `verify`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct ZoneCheck {
    /// Zone name (from the manifest).
    pub name: String,
    /// Archive member.
    pub file: String,
    /// SOA serial parsed from the file.
    pub serial: u32,
    /// Records parsed from the file.
    pub records: u64,
    /// The file has no SOA and NS: a restore keeps the target zone's (serial is 0).
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub apex_from_target: bool,
    /// Record types written by a name older Knot versions do not read.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub newer_types: Vec<NewerType>,
}

/// A lease file as found by `verify`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct LeaseFileCheck {
    /// Archive member.
    pub file: String,
    /// Valid lease rows.
    pub rows: u64,
    /// Distinct live leases in this file.
    pub leases: u64,
}

/// The outcome of [`verify`]: what the archive holds and every problem found.
///
/// `ok` is true exactly when `problems` is empty. Serialises as the `--json` output.
#[derive(Clone, Debug, Serialize)]
pub struct VerifyReport {
    /// The archive verified.
    pub archive: PathBuf,
    /// True when no problem was found.
    pub ok: bool,
    /// Archive kind from the manifest.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub kind: Option<ArchiveKind>,
    /// Source from the manifest.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub source: Option<String>,
    /// Creation time from the manifest (RFC 3339).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub created: Option<String>,
    /// Tool version that wrote the archive.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tool_version: Option<String>,
    /// Regular files in the archive (manifest excluded).
    pub files: u64,
    /// Their total size in bytes.
    pub bytes: u64,
    /// Every zone file that parsed.
    pub zones: Vec<ZoneCheck>,
    /// Total records over those zones.
    pub records: u64,
    /// Every lease file that parsed.
    pub lease_files: Vec<LeaseFileCheck>,
    /// Distinct live leases over all lease files, in manifest order.
    pub lease_count: u64,
    /// Everything wrong; empty when `ok`.
    pub problems: Vec<Problem>,
    /// A manifest-less archive written the original chart's way (see [`crate::legacy`]).
    pub legacy: bool,
    /// What the report wants known beyond problems (e.g. that a legacy archive's integrity
    /// cannot be checked, members it ignores).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub notes: Vec<String>,
}

impl VerifyReport {
    fn new(archive: &Path) -> Self {
        VerifyReport {
            archive: archive.to_owned(),
            ok: false,
            kind: None,
            source: None,
            created: None,
            tool_version: None,
            files: 0,
            bytes: 0,
            zones: Vec::new(),
            records: 0,
            lease_files: Vec::new(),
            lease_count: 0,
            problems: Vec::new(),
            legacy: false,
            notes: Vec::new(),
        }
    }

    /// Records a problem not tied to a member.
    pub(crate) fn add_problem(&mut self, message: String) {
        self.problem(None, None, message);
    }

    /// Records an archive error as a problem (naming its member and line).
    pub(crate) fn add_error(&mut self, e: ArchiveError) {
        self.error(e);
    }

    fn problem(&mut self, member: Option<&str>, line: Option<usize>, message: impl Into<String>) {
        self.problems.push(Problem {
            member: member.map(str::to_owned),
            line,
            message: message.into(),
        });
    }

    fn error(&mut self, e: ArchiveError) {
        match e {
            ArchiveError::Zone(z) => self.problem(Some(&z.file), z.line, z.message),
            ArchiveError::Leases {
                member,
                line,
                message,
            } => self.problem(Some(&member), Some(line), message),
            ArchiveError::Checksum { member, reason, .. } => {
                self.problem(Some(&member), None, format!("checksum mismatch: {reason}"))
            }
            ArchiveError::Rejected { entry, reason, .. } => {
                self.problem(Some(&entry), None, format!("rejected entry: {reason}"))
            }
            ArchiveError::Manifest { reason, .. } => {
                self.problem(None, None, format!("manifest: {reason}"))
            }
            ArchiveError::Corrupt { source, .. } => {
                self.problem(None, None, format!("unreadable archive: {source}"))
            }
            other => self.problem(None, None, other.to_string()),
        }
    }
}

/// The addresses of the leases Kea would hold after loading some lease files in order (a later
/// row replaces an earlier one, a zero valid lifetime deletes): only the addresses, about
/// 10 bytes per lease, so counting a million leases takes some 16 MB.
#[derive(Clone, Debug, Default)]
pub(crate) struct LeaseSet {
    live: HashSet<u32>,
}

impl LeaseSet {
    /// Applies one file's rows (its net effect) after those applied so far.
    pub(crate) fn add_file(&mut self, file: FileLeases) {
        if self.live.is_empty() {
            self.live = file.live;
        } else {
            for a in &file.deleted {
                self.live.remove(a);
            }
            self.live.extend(file.live);
        }
    }
}

/// Number of leases in a [`LeaseSet`].
pub(crate) fn live(set: &LeaseSet) -> u64 {
    set.live.len() as u64
}

/// The net effect of one lease file: the addresses it leaves live, those whose last row in
/// it deletes them, and its valid rows.
#[derive(Debug, Default)]
pub(crate) struct FileLeases {
    live: HashSet<u32>,
    deleted: HashSet<u32>,
    /// Valid rows (deletions and replaced rows included).
    pub(crate) rows: u64,
}

impl FileLeases {
    fn apply(&mut self, key: RowKey) {
        self.rows += 1;
        let addr = u32::from(key.address);
        if key.valid_lifetime == 0 {
            self.live.remove(&addr);
            self.deleted.insert(addr);
        } else {
            self.deleted.remove(&addr);
            self.live.insert(addr);
        }
    }

    /// Distinct live leases the file describes on its own.
    pub(crate) fn leases(&self) -> u64 {
        self.live.len() as u64
    }
}

/// Checks a Kea memfile lease file fed in pieces of any size, with `kea_leases`' rules (header,
/// column count, field syntax, Kea's row-validity rules): memory is one line and the
/// addresses. The first bad row is an error naming the member and line.
pub(crate) struct LeaseRowCheck {
    member: String,
    header: Option<Header>,
    /// Lines completed so far.
    line: u64,
    partial: Vec<u8>,
    file: FileLeases,
}

impl LeaseRowCheck {
    pub(crate) fn new(member: &str) -> Self {
        Self {
            member: member.to_owned(),
            header: None,
            line: 0,
            partial: Vec::new(),
            file: FileLeases::default(),
        }
    }

    fn fail(&self, line: u64, message: String) -> ArchiveError {
        ArchiveError::Leases {
            member: self.member.clone(),
            line: line as usize,
            message,
        }
    }

    /// Checks every line completed by `bytes`; the rest is kept for the next call.
    pub(crate) fn feed(&mut self, mut bytes: &[u8]) -> Result<(), ArchiveError> {
        while let Some(i) = bytes.iter().position(|&b| b == b'\n') {
            if self.partial.is_empty() {
                self.line_done(&bytes[..i])?;
            } else {
                let mut line = std::mem::take(&mut self.partial);
                line.extend_from_slice(&bytes[..i]);
                self.line_done(&line)?;
                line.clear();
                self.partial = line;
            }
            bytes = &bytes[i + 1..];
        }
        self.partial.extend_from_slice(bytes);
        Ok(())
    }

    fn line_done(&mut self, line: &[u8]) -> Result<(), ArchiveError> {
        self.line += 1;
        let Some(header) = &self.header else {
            let header = Header::parse(line).map_err(|k| self.fail(1, k.to_string()))?;
            self.header = Some(header);
            return Ok(());
        };
        if line.is_empty() {
            return Ok(());
        }
        match check_row(header, line) {
            Ok(key) => {
                self.file.apply(key);
                Ok(())
            }
            Err(kind) => Err(self.fail(self.line, kind.to_string())),
        }
    }

    /// Checks a final line without line feed; returns the file's net effect.
    pub(crate) fn finish(mut self) -> Result<FileLeases, ArchiveError> {
        if !self.partial.is_empty() {
            let line = std::mem::take(&mut self.partial);
            self.line_done(&line)?;
        }
        Ok(self.file)
    }

    /// Feeds everything `input` yields, then [`finish`](Self::finish)es.
    pub(crate) fn read_all(
        mut self,
        mut input: impl Read,
        archive: &Path,
    ) -> Result<FileLeases, ArchiveError> {
        let mut buf = vec![0u8; 64 << 10];
        loop {
            let n = match input.read(&mut buf) {
                Ok(0) => break,
                Ok(n) => n,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                Err(source) => return Err(ArchiveError::corrupt(archive)(source)),
            };
            self.feed(&buf[..n])?;
        }
        self.finish()
    }
}

/// Check every row of a Kea memfile lease file and count them.
///
/// Parsing is `kea_leases`' (header, column count, field syntax, Kea's row-validity rules); any
/// rejected row is an error naming `member` and the line. Returns (valid rows, distinct live
/// leases), with Kea's load semantics.
pub fn check_lease_rows(member: &str, data: &[u8]) -> Result<(u64, u64), ArchiveError> {
    let mut check = LeaseRowCheck::new(member);
    check.feed(data)?;
    let file = check.finish()?;
    Ok((file.rows, file.leases()))
}

/// Verify `archive` completely: every entry is safe to extract (as [`extract`](super::extract)
/// checks with `limits`), the manifest is present and matches every file's size and SHA-256,
/// every zone file parses with `domain` and matches its recorded serial and record count, and
/// every lease file's rows parse and match the recorded counts.
///
/// Never fails as a function: everything wrong is a [`Problem`] in the report.
pub fn verify(archive: &Path, limits: &Limits) -> VerifyReport {
    let mut report = VerifyReport::new(archive);
    // Pass 1: structure, checksums, manifest.
    let scan = match scan::scan(archive, limits, |_, _, _, _| Ok(())) {
        Ok(scan) => scan,
        Err(e) => {
            report.error(e);
            return report;
        }
    };
    let files = scan.files();
    report.files = files.len() as u64;
    report.bytes = files.values().map(|e| e.size).sum();
    drop(files);
    let Some(manifest) = &scan.manifest else {
        // Written the original chart's way: check what can be checked.
        crate::legacy::fill_report(archive, limits, &mut report);
        return report;
    };
    report.kind = Some(manifest.kind);
    report.source = Some(manifest.source.clone());
    report.created = Some(manifest.created.to_string());
    report.tool_version = Some(manifest.tool_version.clone());
    if let Err(e) = scan::check_manifest(archive, &scan, manifest) {
        report.error(e);
        return report;
    }
    // Pass 2: parse the zone and lease members named by the manifest.
    check_contents(archive, limits, manifest, &scan, &mut report);
    report.ok = report.problems.is_empty();
    report
}

/// Checks the zone file `data` of `z` as it streams out of the archive, piece by piece.
fn check_zone_stream(
    archive: &Path,
    path: &str,
    z: &ZoneFacts,
    data: &mut dyn Read,
) -> Result<Result<ZoneSummary, ZoneFileError>, ArchiveError> {
    let mut checker = match zone_checker(path, &z.name, !z.apex_from_target) {
        Ok(c) => c,
        Err(e) => return Ok(Err(e)),
    };
    let mut piece = vec![0u8; 256 << 10];
    let mut failed = None;
    loop {
        let n = data
            .read(&mut piece)
            .map_err(ArchiveError::corrupt(archive))?;
        if n == 0 {
            break;
        }
        // After a bad record the rest is still read: the archive's checksums cover it.
        if failed.is_none()
            && let Err(e) = checker.feed(&piece[..n])
        {
            failed = Some(e);
        }
    }
    Ok(match failed {
        Some(e) => Err(e),
        None => checker.finish(),
    })
}

/// The second pass: every zone and lease file checked as it streams out of the archive, and
/// compared with the manifest.
fn check_contents(
    archive: &Path,
    limits: &Limits,
    manifest: &Manifest,
    first: &scan::Scan,
    report: &mut VerifyReport,
) {
    let Some((zones, leases)) = read_contents(archive, limits, manifest, first, report) else {
        return;
    };
    report_zones(zones, report);
    report_leases(leases, manifest, report);
}

/// What the second pass found in one zone file.
type ZoneResult<'m> = (&'m ZoneFacts, Result<ZoneSummary, ZoneFileError>);
/// What the second pass found in one lease file.
type LeaseResult<'m> = (&'m LeaseFileFacts, Result<FileLeases, ArchiveError>);

/// Reads the archive again, checking the zone and lease files the manifest lists as they
/// stream by (lease files in archive order, which is load order). `None` (with the problem
/// reported) if the archive cannot be read or changed since the first pass.
fn read_contents<'m>(
    archive: &Path,
    limits: &Limits,
    manifest: &'m Manifest,
    first: &scan::Scan,
    report: &mut VerifyReport,
) -> Option<(Vec<ZoneResult<'m>>, Vec<LeaseResult<'m>>)> {
    let zones: HashMap<&str, _> = manifest
        .zones
        .iter()
        .map(|z| (z.file.as_str(), z))
        .collect();
    let leases: HashMap<&str, _> = manifest
        .lease_files
        .iter()
        .map(|l| (l.file.as_str(), l))
        .collect();
    let mut lease_results = Vec::new();
    let mut zone_results = Vec::new();
    let second = scan::scan(archive, limits, |path, _, _, data| {
        if let Some(l) = leases.get(path) {
            lease_results.push((*l, LeaseRowCheck::new(path).read_all(data, archive)));
        } else if let Some(z) = zones.get(path) {
            let facts = check_zone_stream(archive, path, z, data)?;
            zone_results.push((*z, facts));
        }
        Ok(())
    });
    let second = match second {
        Err(e) => {
            report.error(e);
            return None;
        }
        Ok(second) => second,
    };
    // The archive must not have changed between the passes.
    let a: Vec<_> = first.entries.iter().map(|e| (&e.path, &e.sha256)).collect();
    let b: Vec<_> = second
        .entries
        .iter()
        .map(|e| (&e.path, &e.sha256))
        .collect();
    if a != b {
        report.problem(None, None, "the archive changed while being verified");
        return None;
    }
    Some((zone_results, lease_results))
}

/// Each zone's serial and record count against the manifest's.
fn report_zones(zones: Vec<ZoneResult<'_>>, report: &mut VerifyReport) {
    for (z, result) in zones {
        let summary = match result {
            Ok(summary) => summary,
            Err(e) => {
                report.error(e.into());
                continue;
            }
        };
        let (serial, records) = (summary.serial, summary.records);
        if serial != z.serial || records != z.records {
            report.problem(
                Some(&z.file),
                None,
                format!(
                    "zone {} has serial {serial} and {records} records, the manifest says {} and {}",
                    z.name, z.serial, z.records
                ),
            );
        }
        report.records += records;
        report.zones.push(ZoneCheck {
            name: z.name.clone(),
            file: z.file.clone(),
            serial,
            records,
            apex_from_target: z.apex_from_target,
            newer_types: summary.newer_types,
        });
    }
}

/// Each lease file's rows and leases against the manifest's, then the live leases over all
/// of them against the manifest's total.
fn report_leases(leases: Vec<LeaseResult<'_>>, manifest: &Manifest, report: &mut VerifyReport) {
    let mut set = LeaseSet::default();
    for (l, result) in leases {
        let file = match result {
            Ok(file) => file,
            Err(e) => {
                report.error(e);
                continue;
            }
        };
        let (rows, count) = (file.rows, file.leases());
        if rows != l.rows || count != l.leases {
            report.problem(
                Some(&l.file),
                None,
                format!(
                    "{rows} rows and {count} leases, the manifest says {} and {}",
                    l.rows, l.leases
                ),
            );
        }
        report.lease_files.push(LeaseFileCheck {
            file: l.file.clone(),
            rows,
            leases: count,
        });
        set.add_file(file);
    }
    report.lease_count = live(&set);
    if report.lease_count != manifest.lease_count && report.problems.is_empty() {
        report.problem(
            None,
            None,
            format!(
                "{} leases in total, the manifest says {}",
                report.lease_count, manifest.lease_count
            ),
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const HEADER: &str = "address,hwaddr,client_id,valid_lifetime,expire,subnet_id,fqdn_fwd,fqdn_rev,hostname,state,user_context,pool_id\n";

    #[test]
    fn lease_rows_count_distinct_live_addresses() {
        let data = format!(
            "{HEADER}10.0.0.5,00:11:22:33:44:55,,3600,1700003600,1,0,0,a,0,,0\n\
             10.0.0.6,00:11:22:33:44:56,,3600,1700003600,1,0,0,b,0,,0\n\
             10.0.0.5,00:11:22:33:44:55,,3600,1700007200,1,0,0,a,0,,0\n\
             10.0.0.6,00:11:22:33:44:56,,0,1700003600,1,0,0,b,0,,0\n"
        );
        assert_eq!(check_lease_rows("l.csv", data.as_bytes()).unwrap(), (4, 1));
        assert_eq!(check_lease_rows("l.csv", b"").unwrap(), (0, 0));
    }

    #[test]
    fn bad_lease_row_names_member_and_line() {
        let data = format!(
            "{HEADER}10.0.0.5,00:11:22:33:44:55,,3600,1700003600,1,0,0,a,0,,0\n10.0.0.999,00:11,,3600,1,1,0,0,,0,,0\n"
        );
        let e = check_lease_rows("kea-leases4.csv", data.as_bytes()).unwrap_err();
        assert!(e.to_string().starts_with("kea-leases4.csv:3: "), "{e}");
        let e = check_lease_rows("x.csv", b"nonsense,header\n").unwrap_err();
        assert!(e.to_string().starts_with("x.csv:1: "), "{e}");
    }
}
