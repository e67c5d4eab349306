//! The checks every restore runs before its first change, whatever the target.
//!
//! Two halves: [`check_archives`] where the archives are (every archive verified in full, each
//! archive's kind matching its slot), and [`check_target`] where the daemons are (Knot and Kea
//! answering, every archived zone configured and loadable by the running Knot's version, no
//! transaction in the way, room on disk). A
//! `--local` restore runs both here; the Kubernetes target runs the first on the workstation
//! and the second inside the pod's containers (`dnsdhcp pod preflight`), on the same
//! [`Needs`]. Every problem is collected, so one run names them all; nothing is changed unless
//! all pass.

use std::path::{Path, PathBuf};

use crate::archive::{self, ArchiveKind, Limits, NewerType, VerifyReport};
use crate::target::LocalTarget;
use crate::txn::{self, Aborted};
use crate::zonefile::KnotTable;

/// The restore was refused before anything changed.
#[derive(Debug, thiserror::Error)]
#[error(
    "nothing was changed; the restore was refused because:\n  {}",
    problems.join("\n  ")
)]
pub struct PreflightError {
    /// Every problem found, each naming what it is about and what to do.
    pub problems: Vec<String>,
}

/// `value` when no problem was found, the refusal otherwise.
fn verdict<T>(problems: Vec<String>, value: T) -> Result<T, PreflightError> {
    if problems.is_empty() {
        Ok(value)
    } else {
        Err(PreflightError { problems })
    }
}

/// A verified archive in its slot.
#[derive(Debug, Clone)]
pub struct Slot {
    /// The archive.
    pub path: PathBuf,
    /// Its size in bytes.
    pub size: u64,
    /// Its verification report (`ok`).
    pub report: VerifyReport,
}

/// The archives of one restore, verified and of the right kinds.
#[derive(Debug, Clone, Default)]
pub struct Archives {
    /// The zone archive (`knot-zones-*.tar.gz` or `zones.tar.gz`).
    pub zones: Option<Slot>,
    /// The lease archive.
    pub leases: Option<Slot>,
}

/// What a restore needs of the target, derived from the archives: what the target-side checks
/// look at. Sent to the pod as JSON.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Needs {
    /// Zones the zone archive restores (empty: no zones).
    pub zones: Vec<String>,
    /// Room the zones need on disk: the archive and its extracted files.
    pub zone_bytes: u64,
    /// Whether leases are restored.
    pub leases: bool,
    /// Room the leases need beside the lease file: the archive and the staged lease file.
    pub lease_bytes: u64,
    /// Archived zones holding record types older Knot versions do not read by name.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub newer_types: Vec<ZoneTypes>,
}

/// The record types of one archived zone file that older Knot versions do not read by name.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct ZoneTypes {
    /// The zone.
    pub zone: String,
    /// Its file in the archive.
    pub file: String,
    /// The types.
    pub types: Vec<NewerType>,
}

/// What the target-side checks found that the restore will clean up first.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct TargetReady {
    /// Transactions an interrupted dnsdhcp left open on the archived zones (aborted by the
    /// restore before its first change).
    pub abandoned: Vec<Aborted>,
    /// What the restore will do differently for the running Knot (records converted to RFC
    /// 3597 form; an unknown version checked against the nearest known one).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub notes: Vec<String>,
}

fn slot(
    path: &Path,
    wanted: &[ArchiveKind],
    slot: &str,
    problems: &mut Vec<String>,
) -> Option<Slot> {
    let report = archive::verify(path, &Limits::default());
    if !report.ok {
        problems.push(format!(
            "{}: verification failed: {}",
            path.display(),
            report
                .problems
                .iter()
                .map(|p| p.to_string())
                .collect::<Vec<_>>()
                .join("; ")
        ));
        return None;
    }
    match report.kind {
        Some(k) if wanted.contains(&k) => {}
        other => {
            problems.push(format!(
                "{}: a {} archive cannot be restored as {slot} (is it in the wrong slot? --zones takes knot-zones-*.tar.gz or zones.tar.gz, --leases kea-leases*.tar.gz)",
                path.display(),
                other.map_or("kind-less".into(), |k| k.to_string()),
            ));
            return None;
        }
    }
    let size = std::fs::metadata(path).map(|m| m.len()).unwrap_or(0);
    Some(Slot {
        path: path.to_owned(),
        size,
        report,
    })
}

/// Verifies every archive in full and checks each one's kind against its slot.
pub fn check_archives(
    zones: Option<&Path>,
    leases: Option<&Path>,
) -> Result<Archives, PreflightError> {
    let mut problems = Vec::new();
    let archives = Archives {
        zones: zones.and_then(|p| {
            slot(
                p,
                &[ArchiveKind::Zones, ArchiveKind::ZonesFull],
                "zones",
                &mut problems,
            )
        }),
        leases: leases.and_then(|p| slot(p, &[ArchiveKind::Leases], "leases", &mut problems)),
    };
    verdict(problems, archives)
}

impl Archives {
    /// What the target must offer for these archives.
    pub fn needs(&self) -> Needs {
        let bytes = |s: &Slot| s.size.saturating_add(s.report.bytes);
        Needs {
            zones: self
                .zones
                .iter()
                .flat_map(|s| &s.report.zones)
                .map(|z| z.name.clone())
                .collect(),
            zone_bytes: self.zones.as_ref().map_or(0, bytes),
            leases: self.leases.is_some(),
            lease_bytes: self.leases.as_ref().map_or(0, bytes),
            newer_types: self
                .zones
                .iter()
                .flat_map(|s| &s.report.zones)
                .filter(|z| !z.newer_types.is_empty())
                .map(|z| ZoneTypes {
                    zone: z.name.clone(),
                    file: z.file.clone(),
                    types: z.newer_types.clone(),
                })
                .collect(),
        }
    }
}

impl Needs {
    /// The part of these needs Knot's container checks (zones only).
    pub fn zones_part(&self) -> Needs {
        Needs {
            zones: self.zones.clone(),
            zone_bytes: self.zone_bytes,
            newer_types: self.newer_types.clone(),
            ..Needs::default()
        }
    }

    /// The part of these needs Kea's container checks (leases only).
    pub fn leases_part(&self) -> Needs {
        Needs {
            leases: self.leases,
            lease_bytes: self.lease_bytes,
            ..Needs::default()
        }
    }

    /// Whether nothing is needed (no check to run).
    pub fn is_empty(&self) -> bool {
        self.zones.is_empty() && !self.leases
    }
}

/// The result of the target-side checks run inside a pod (`dnsdhcp pod preflight`): printed
/// by the pod as JSON and read by the workstation into the same type.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct TargetCheck {
    /// Format version ([`crate::kube::inpod::FORMAT_VERSION`]).
    pub version: u32,
    /// Every problem found (empty: the target can take the restore).
    pub problems: Vec<String>,
    /// What the restore will clean up first (when there is no problem).
    pub ready: TargetReady,
}

impl TargetCheck {
    /// Runs [`check_target`] and keeps its outcome as data.
    pub fn run(target: &LocalTarget, needs: &Needs, places: &Places) -> TargetCheck {
        let (problems, ready) = match check_target(target, needs, places) {
            Ok(ready) => (Vec::new(), ready),
            Err(e) => (e.problems, TargetReady::default()),
        };
        TargetCheck {
            version: crate::kube::inpod::FORMAT_VERSION,
            problems,
            ready,
        }
    }
}

/// Where the target keeps what a restore writes: the zones' staging directory (this host's
/// temporary directory, or the pod's zones volume) and the lease file's directory.
#[derive(Debug, Clone)]
pub struct Places {
    /// Where zone archives are staged and extracted.
    pub zones_dir: PathBuf,
}

impl Default for Places {
    fn default() -> Self {
        Places {
            zones_dir: std::env::temp_dir(),
        }
    }
}

/// Checks the target can take `needs`: Knot answers and serves every archived zone with no
/// transaction in the way (one an interrupted dnsdhcp left is reported, to be aborted), Kea
/// answers, and there is room on disk. Changes nothing.
pub fn check_target(
    target: &LocalTarget,
    needs: &Needs,
    places: &Places,
) -> Result<TargetReady, PreflightError> {
    let mut problems = Vec::new();
    let mut ready = TargetReady::default();
    if !needs.zones.is_empty() {
        check_knot(target, needs, &mut ready, &mut problems);
        check_room(
            &places.zones_dir,
            needs.zone_bytes,
            "the zones",
            &mut problems,
        );
    }
    if needs.leases {
        if let Err(e) = target.kea().list_commands() {
            problems.push(format!(
                "Kea does not answer on {}: {e} (is kea-dhcp4 running? set --kea-socket or DNSDHCP_KEA_SOCKET)",
                target.kea_socket.display()
            ));
        }
        check_room(
            target.lease_dir(),
            needs.lease_bytes,
            "the leases",
            &mut problems,
        );
    }
    verdict(problems, ready)
}

/// [`check_target`] for a zone archive, over a connection to Knot already open (the pod's
/// post-start hook holds one; Knot 3.2 would not serve a second): Knot serves every archived
/// zone, reads every archived type (or they can be converted), and the zones volume has room.
pub fn check_zones_with<S: std::io::Read + std::io::Write>(
    client: &mut knot_ctl::Client<S>,
    needs: &Needs,
    places: &Places,
) -> Result<TargetReady, PreflightError> {
    let mut problems = Vec::new();
    let mut ready = TargetReady::default();
    let no_answer = |e: &dyn std::fmt::Display| format!("Knot does not answer: {e}");
    check_knot_with(client, needs, &no_answer, &mut ready, &mut problems);
    check_room(
        &places.zones_dir,
        needs.zone_bytes,
        "the zones",
        &mut problems,
    );
    verdict(problems, ready)
}

fn check_knot(
    target: &LocalTarget,
    needs: &Needs,
    ready: &mut TargetReady,
    problems: &mut Vec<String>,
) {
    let no_answer = |e: &dyn std::fmt::Display| {
        format!(
            "Knot does not answer on {}: {e} (is knotd running? set --knot-socket or DNSDHCP_KNOT_SOCKET)",
            target.knot_socket.display()
        )
    };
    match target.knot() {
        Ok(mut client) => check_knot_with(&mut client, needs, &no_answer, ready, problems),
        Err(e) => problems.push(no_answer(&e)),
    }
}

/// [`check_knot`] over an open connection.
fn check_knot_with<S: std::io::Read + std::io::Write>(
    client: &mut knot_ctl::Client<S>,
    needs: &Needs,
    no_answer: &dyn Fn(&dyn std::fmt::Display) -> String,
    ready: &mut TargetReady,
    problems: &mut Vec<String>,
) {
    let served = match client.zone_status_all() {
        Ok(s) => s,
        Err(e) => return problems.push(no_answer(&e)),
    };
    let mut configured = Vec::new();
    for z in &needs.zones {
        match served
            .iter()
            .find(|s| crate::zones::same_zone(&s.zone, z))
        {
            Some(s) => configured.push(s.zone.as_str()),
            None => problems.push(format!(
                "zone {z} is in the archive but Knot does not serve it: add it to Knot's configuration first"
            )),
        }
    }
    match txn::abandoned(client, &configured) {
        Ok(a) => ready.abandoned = a,
        Err(e) => problems.push(e.to_string()),
    }
    match client.version() {
        Ok(v) => check_types(&v, &needs.newer_types, ready, problems),
        Err(e) => problems.push(no_answer(&e)),
    }
}

/// Checks every archived record type against the type table of the running Knot `v` (the
/// nearest lower known one for a version this tool does not know, which is noted): a type it
/// does not read by name is converted to RFC 3597 form (noted), or is a problem when the
/// records cannot be converted.
fn check_types(
    v: &knot_ctl::Version,
    zones: &[ZoneTypes],
    ready: &mut TargetReady,
    problems: &mut Vec<String>,
) {
    let (table, exact) = KnotTable::for_version(v.major, v.minor);
    if !exact {
        ready.notes.push(format!(
            "knotd {} is not a version this tool knows: record types are checked against \
             Knot {}'s table",
            v.text,
            table.name()
        ));
    }
    for z in zones {
        for t in &z.types {
            if table.reads(domain::base::iana::Rtype::from_int(t.code)) {
                continue;
            }
            let at = format!("zone {}: {}:{}", z.zone, z.file, t.line);
            if t.convertible {
                ready.notes.push(format!(
                    "{at}: {} {} record(s) converted to RFC 3597 form (TYPE{}): the running \
                     knotd {} reads {} only by number (Knot {} reads it by name)",
                    t.records,
                    t.name,
                    t.code,
                    v.text,
                    t.name,
                    KnotTable::LATEST.name()
                ));
            } else {
                problems.push(format!(
                    "{at}: type {} cannot be loaded by the running knotd {} (Knot {} reads it) \
                     and this record cannot be converted to RFC 3597 form: restore into Knot {} \
                     or later, or rewrite the record as TYPE{} \\# LEN HEX",
                    t.name,
                    v.text,
                    KnotTable::LATEST.name(),
                    KnotTable::LATEST.name(),
                    t.code
                ));
            }
        }
    }
}

fn check_room(dir: &Path, needed: u64, what: &str, problems: &mut Vec<String>) {
    match free_bytes(dir) {
        Ok(free) if free >= needed => {}
        Ok(free) => problems.push(format!(
            "not enough room in {} for {what}: {needed} bytes needed, {free} free",
            dir.display()
        )),
        Err(e) => problems.push(format!("{}: {e}", dir.display())),
    }
}

/// Bytes an unprivileged process may still write on the file system holding `dir`.
pub fn free_bytes(dir: &Path) -> std::io::Result<u64> {
    use std::os::unix::ffi::OsStrExt;
    let c = std::ffi::CString::new(dir.as_os_str().as_bytes())
        .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidInput, e))?;
    let mut st: libc::statvfs = unsafe { std::mem::zeroed() };
    // SAFETY: `c` is a valid NUL-terminated path and `st` a writable statvfs.
    if unsafe { libc::statvfs(c.as_ptr(), &mut st) } != 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok((st.f_bavail as u64).saturating_mul(st.f_frsize as u64))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn wallet(convertible: bool) -> Vec<ZoneTypes> {
        vec![ZoneTypes {
            zone: "t.".into(),
            file: "zonefiles/t.zone".into(),
            types: vec![NewerType {
                code: 262,
                name: "WALLET".into(),
                line: 7,
                records: 2,
                convertible,
            }],
        }]
    }

    fn check(version: &str, zones: &[ZoneTypes]) -> (TargetReady, Vec<String>) {
        let v = knot_ctl::Version::parse(version).unwrap();
        let (mut ready, mut problems) = (TargetReady::default(), Vec::new());
        check_types(&v, zones, &mut ready, &mut problems);
        (ready, problems)
    }

    #[test]
    fn types_are_checked_against_the_running_knots_table() {
        let (ready, problems) = check("3.4.6", &wallet(false));
        assert!(problems.is_empty() && ready.notes.is_empty());
        let (ready, problems) = check("Version: 3.2.6", &wallet(true));
        assert!(problems.is_empty(), "{problems:?}");
        assert!(ready.notes[0].contains("zonefiles/t.zone:7: 2 WALLET record(s) converted"));
        let (_, problems) = check("Version: 3.2.6", &wallet(false));
        let p = &problems[0];
        assert!(
            p.contains("zone t.: zonefiles/t.zone:7: type WALLET"),
            "{p}"
        );
        assert!(p.contains("knotd 3.2.6") && p.contains("Knot 3.4"), "{p}");
        // An unknown version takes the nearest lower known table, and says so.
        let (ready, problems) = check("3.3.1", &wallet(false));
        assert!(
            ready.notes[0].contains("knotd 3.3.1 is not a version"),
            "{:?}",
            ready.notes
        );
        assert!(ready.notes[0].contains("Knot 3.2's table"));
        assert_eq!(problems.len(), 1);
        let (ready, problems) = check("3.5.0", &wallet(false));
        assert!(problems.is_empty() && ready.notes[0].contains("Knot 3.4's table"));
    }
}
