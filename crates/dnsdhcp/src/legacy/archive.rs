//! Archives written the original chart's way, without a manifest: `tar czf` of a
//! `knotc zone-backup` directory (or of its `zonefiles/`), or of Kea's lease directory.
//!
//! Nothing vouches for such an archive's integrity, but everything else is enforced as for the
//! project's own archives: every entry is checked as safe extraction requires, every zone file
//! is parsed, every lease row is parsed, and the lease files combine the way Kea loads them
//! (`X.completed`, else `X.2` then `X.1`; then `X`) into the one file the target restores.

use std::collections::BTreeMap;
use std::io::Read;
use std::path::{Path, PathBuf};

use kea_leases::csv::{LeaseReader, ReadError};
use kea_leases::{EffectiveSet, Role};

use crate::archive::{ArchiveError, ArchiveKind, ArchiveWriter, Limits, Manifest, scan};
use crate::backup::ZONEFILES_DIR;

use super::LegacyError;

/// Directories of a Knot backup that hold no zone data this conversion uses.
const KNOT_AUX_DIRS: [&str; 4] = ["journal", "timers", "keys", "catalog"];
/// How a Kea DHCPv4 lease file starts.
const LEASE_HEADER_START: &[u8] = b"address,hwaddr,";
/// The script directory of the original chart's later backups.
pub(crate) const SCRIPTS_DIR: &str = "restore-scripts";

/// One zone file found in a legacy archive.
#[derive(Debug, Clone)]
pub struct LegacyZone {
    /// Zone name, absolute, lower case (`example.com.`).
    pub name: String,
    /// The archive member it came from.
    pub member: String,
    /// The zone file.
    pub data: Vec<u8>,
    /// Its SOA serial.
    pub serial: u32,
    /// Its record count.
    pub records: u64,
}

/// One lease file found in a legacy archive.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct LegacyLeaseFile {
    /// The archive member.
    pub member: String,
    /// Valid rows.
    pub rows: u64,
    /// Distinct live leases in this file on its own.
    pub leases: u64,
    /// Whether Kea loads it (`X.2`/`X.1` are not loaded beside `X.completed`).
    pub loaded: bool,
}

/// What a manifest-less archive holds, parsed and checked.
#[derive(Debug, Clone)]
pub enum LegacyContent {
    /// Zone files.
    Zones(Vec<LegacyZone>),
    /// Kea lease files combined as Kea loads them.
    Leases {
        /// The lease file's base name in the archive (e.g. `dhcp4.leases`).
        base: String,
        /// Every lease file of that set.
        files: Vec<LegacyLeaseFile>,
        /// The lease set Kea would load.
        set: Box<EffectiveSet>,
    },
    /// Shell scripts of the original chart's `restore-scripts/` backups (see `dnsdhcp import`).
    Scripts(BTreeMap<String, Vec<u8>>),
}

/// A manifest-less archive, read and checked.
#[derive(Debug, Clone)]
pub struct Legacy {
    /// The archive.
    pub archive: PathBuf,
    /// What it holds.
    pub content: LegacyContent,
    /// Members not converted (Knot's journal, timers, keys; `.pid`, lock and unrelated files),
    /// and torn last rows left out, each with why.
    pub ignored: Vec<String>,
}

impl Legacy {
    /// The kind of project archive this converts into.
    pub fn kind(&self) -> Option<ArchiveKind> {
        match self.content {
            LegacyContent::Zones(_) => Some(ArchiveKind::Zones),
            LegacyContent::Leases { .. } => Some(ArchiveKind::Leases),
            LegacyContent::Scripts(_) => None,
        }
    }
}

/// A member kept for classification.
struct Captured {
    path: String,
    data: Vec<u8>,
}

/// Whether `archive` has a manifest (reads the whole archive, checking every entry).
pub fn has_manifest(archive: &Path, limits: &Limits) -> Result<bool, ArchiveError> {
    Ok(scan::scan(archive, limits, |_, _, _, _| Ok(()))?
        .manifest
        .is_some())
}

/// Reads a manifest-less `archive`: checks every entry as safe extraction does, keeps zone
/// files, lease files and restore scripts, parses them, and tells what it holds.
pub fn read_legacy(archive: &Path, limits: &Limits) -> Result<Legacy, LegacyError> {
    let mut captured = Vec::new();
    let mut ignored = Vec::new();
    let scanned = scan::scan(archive, limits, |path, size, _, data| {
        let corrupt = ArchiveError::corrupt(archive);
        let mut buf = Vec::new();
        Read::take(&mut *data, LEASE_HEADER_START.len() as u64)
            .read_to_end(&mut buf)
            .map_err(corrupt)?;
        if wanted(path, &buf) {
            buf.reserve(size as usize);
            data.read_to_end(&mut buf).map_err(corrupt)?;
            captured.push(Captured {
                path: path.to_owned(),
                data: buf,
            });
        } else {
            ignored.push(format!(
                "{path}: not a zone file, lease file or restore script"
            ));
        }
        Ok(())
    })?;
    if scanned.manifest.is_some() {
        return Err(LegacyError::HasManifest {
            archive: archive.to_owned(),
        });
    }
    check_end_marker(archive)?;
    let unrecognised = |reason: String| LegacyError::Unrecognised {
        archive: archive.to_owned(),
        reason,
    };
    let (scripts, rest): (Vec<_>, Vec<_>) = captured.into_iter().partition(|c| is_script(&c.path));
    if !scripts.is_empty() {
        for c in rest {
            ignored.push(format!("{}: beside restore scripts", c.path));
        }
        let scripts = scripts.into_iter().map(|c| (c.path, c.data)).collect();
        return Ok(Legacy {
            archive: archive.to_owned(),
            content: LegacyContent::Scripts(scripts),
            ignored,
        });
    }
    let (zones, leases): (Vec<_>, Vec<_>) =
        rest.into_iter().partition(|c| c.path.ends_with(".zone"));
    let content = match (zones.is_empty(), leases.is_empty()) {
        (false, false) => {
            return Err(unrecognised(format!(
                "holds both zone files ({}) and lease files ({}); the original backups never mixed them",
                zones[0].path, leases[0].path
            )));
        }
        (false, true) => LegacyContent::Zones(
            zone_files(zones, &mut ignored).map_err(|e| e.in_archive(archive))?,
        ),
        (true, false) => lease_files(leases, &mut ignored).map_err(|e| e.in_archive(archive))?,
        (true, true) => {
            return Err(unrecognised(
                "no manifest, and neither zone files (*.zone), Kea DHCPv4 lease files nor restore-scripts/ found"
                    .into(),
            ));
        }
    };
    Ok(Legacy {
        archive: archive.to_owned(),
        content,
        ignored,
    })
}

/// Without a manifest, the one sign that the archive is complete: `tar` ends every archive
/// with zero blocks, which a truncated stream (even one cut at a gzip member boundary) lacks.
fn check_end_marker(archive: &Path) -> Result<(), LegacyError> {
    let corrupt = ArchiveError::corrupt(archive);
    let file = std::fs::File::open(archive).map_err(corrupt)?;
    let mut gz = flate2::read::MultiGzDecoder::new(std::io::BufReader::new(file));
    let mut buf = vec![0u8; 64 << 10];
    let mut tail = [0u8; 1024];
    let mut total = 0u64;
    loop {
        let n = gz.read(&mut buf).map_err(corrupt)?;
        if n == 0 {
            break;
        }
        total += n as u64;
        if n >= tail.len() {
            let len = tail.len();
            tail.copy_from_slice(&buf[n - len..n]);
        } else {
            tail.copy_within(n.., 0);
            let keep = tail.len() - n;
            tail[keep..].copy_from_slice(&buf[..n]);
        }
    }
    if total < tail.len() as u64 || tail.iter().any(|&b| b != 0) {
        return Err(LegacyError::Unrecognised {
            archive: archive.to_owned(),
            reason: "the tar stream does not end with tar's end-of-archive blocks: the archive is truncated"
                .into(),
        });
    }
    Ok(())
}

/// Whether a member is worth keeping: a `*.zone` file outside Knot's auxiliary directories, a
/// restore script, or a file starting (`head`) like a Kea DHCPv4 lease file.
fn wanted(path: &str, head: &[u8]) -> bool {
    let parts: Vec<&str> = path.split('/').collect();
    if parts.iter().any(|p| KNOT_AUX_DIRS.contains(p)) && !parts.contains(&ZONEFILES_DIR) {
        return false;
    }
    is_script(path) || path.ends_with(".zone") || head == LEASE_HEADER_START
}

fn is_script(path: &str) -> bool {
    let mut parts = path.split('/').rev();
    let (Some(file), Some(dir)) = (parts.next(), parts.next()) else {
        return false;
    };
    dir == SCRIPTS_DIR && file.ends_with(".sh")
}

/// The zone files among `members`: those in a `zonefiles/` directory when there is one (a
/// whole Knot backup), else every `*.zone` file. Each is parsed; the zone is its file name.
fn zone_files(
    members: Vec<Captured>,
    ignored: &mut Vec<String>,
) -> Result<Vec<LegacyZone>, LegacyError> {
    let in_zonefiles = |p: &str| p.rsplit('/').nth(1) == Some(ZONEFILES_DIR);
    let knot_layout = members.iter().any(|c| in_zonefiles(&c.path));
    let mut seen: BTreeMap<String, String> = BTreeMap::new();
    let mut zones = Vec::new();
    for c in members {
        if knot_layout && !in_zonefiles(&c.path) {
            ignored.push(format!("{}: outside zonefiles/", c.path));
            continue;
        }
        let file = c.path.rsplit('/').next().unwrap_or(&c.path);
        let stem = file.strip_suffix(".zone").unwrap_or(file);
        let name = crate::archive::normalize_zone_name(stem);
        if stem.is_empty() || name == "." {
            return Err(LegacyError::Unrecognised {
                archive: PathBuf::new(),
                reason: format!("{}: no zone name in the file name", c.path),
            });
        }
        if let Some(first) = seen.insert(name.clone(), c.path.clone()) {
            return Err(LegacyError::Unrecognised {
                archive: PathBuf::new(),
                reason: format!("zone {name} appears twice: {first} and {}", c.path),
            });
        }
        let (serial, records) = crate::archive::zone_facts(&c.path, &name, &c.data)
            .map_err(|e| LegacyError::Archive(e.into()))?;
        zones.push(LegacyZone {
            name,
            member: c.path,
            data: c.data,
            serial,
            records,
        });
    }
    Ok(zones)
}

/// Splits a lease file member into (its lease set's path, its role in Kea's rotation).
fn lease_role(path: &str) -> (&str, Role) {
    for role in [Role::Completed, Role::Previous, Role::Rotated] {
        if let Some(base) = path.strip_suffix(role.suffix())
            && !base.is_empty()
            && !base.ends_with('/')
        {
            return (base, role);
        }
    }
    (path, Role::Current)
}

/// The lease files among `members`, combined as Kea loads them. They must form one set
/// (`X`, `X.1`, `X.2`, `X.completed`); LFC's unfinished `X.output` is not loaded by Kea.
fn lease_files(
    members: Vec<Captured>,
    ignored: &mut Vec<String>,
) -> Result<LegacyContent, LegacyError> {
    let mut sets: BTreeMap<&str, BTreeMap<Role, &Captured>> = BTreeMap::new();
    let mut outputs = Vec::new();
    for c in &members {
        if c.path.ends_with(".output") {
            outputs.push(c);
            continue;
        }
        let (base, role) = lease_role(&c.path);
        sets.entry(base).or_default().insert(role, c);
    }
    if sets.len() > 1 {
        let names: Vec<&str> = sets.keys().copied().collect();
        return Err(LegacyError::Unrecognised {
            archive: PathBuf::new(),
            reason: format!(
                "more than one set of lease files ({}); Kea loads one",
                names.join(", ")
            ),
        });
    }
    let Some((base, files)) = sets.into_iter().next() else {
        return Err(LegacyError::Unrecognised {
            archive: PathBuf::new(),
            reason: "only LFC output files (*.output), which Kea does not load".into(),
        });
    };
    for c in outputs {
        // Still parsed: every lease row in the archive must be sound.
        parse_rows(&c.path, &c.data, None, ignored)?;
        ignored.push(format!(
            "{}: LFC's unfinished output, not loaded by Kea",
            c.path
        ));
    }
    let load = kea_leases::load::roles_to_load(|r| files.contains_key(&r));
    let mut set = EffectiveSet::default();
    let mut out = Vec::new();
    for (role, c) in &files {
        let loaded = load.contains(role);
        if loaded {
            continue; // applied below, in load order
        }
        let (rows, leases) = parse_rows(&c.path, &c.data, None, ignored)?;
        ignored.push(format!(
            "{}: not loaded by Kea beside a .completed file",
            c.path
        ));
        out.push(LegacyLeaseFile {
            member: c.path.clone(),
            rows,
            leases,
            loaded,
        });
    }
    for role in &load {
        let c = files[role];
        let (rows, leases) = parse_rows(&c.path, &c.data, Some(&mut set), ignored)?;
        out.push(LegacyLeaseFile {
            member: c.path.clone(),
            rows,
            leases,
            loaded: true,
        });
    }
    let base = base.rsplit('/').next().unwrap_or(base).to_owned();
    Ok(LegacyContent::Leases {
        base,
        files: out,
        set: Box::new(set),
    })
}

/// Parses every row of one lease file (a bad row is an error naming member and line), applying
/// them to `set` when given. Returns (valid rows, distinct live leases of this file alone). A torn last row (no line feed: the file was being appended to
/// when it was archived) is left out and noted, as Kea skips it.
fn parse_rows(
    member: &str,
    data: &[u8],
    mut set: Option<&mut EffectiveSet>,
    ignored: &mut Vec<String>,
) -> Result<(u64, u64), LegacyError> {
    let fail = |line: u64, message: String| {
        LegacyError::Archive(ArchiveError::Leases {
            member: member.to_owned(),
            line: line as usize,
            message,
        })
    };
    let reader = LeaseReader::new(data, member).map_err(|e| match e {
        kea_leases::ParseError::Header(r) => fail(r.line, r.kind.to_string()),
        other => fail(1, other.to_string()),
    })?;
    if let (Some(set), Some(h)) = (set.as_deref_mut(), reader.header()) {
        set.header = Some(h.clone());
    }
    let torn_line = (!data.is_empty() && !data.ends_with(b"\n"))
        .then(|| data.iter().filter(|&&b| b == b'\n').count() as u64 + 1);
    let mut rows = 0;
    let mut own = EffectiveSet::default();
    for item in reader {
        match item {
            Ok(rec) => {
                rows += 1;
                if let Some(set) = set.as_deref_mut() {
                    set.apply(rec.lease.clone());
                }
                own.apply(rec.lease);
            }
            Err(ReadError::Row(r)) if Some(r.line) == torn_line => {
                ignored.push(format!(
                    "{member}:{}: torn last row left out ({}), as Kea skips it",
                    r.line, r.kind
                ));
            }
            Err(ReadError::Row(r)) => return Err(fail(r.line, r.kind.to_string())),
            Err(e @ ReadError::Io { .. }) => return Err(fail(0, e.to_string())),
        }
    }
    Ok((rows, own.leases.len() as u64))
}

/// Writes the project archive `out` holding what `legacy` holds: its zone files as
/// `zonefiles/<zone>.zone` (a zones-only archive, restored by transaction), or its lease set
/// as one lease file, compacted as LFC would write it.
pub fn write_converted(legacy: &Legacy, out: &Path) -> Result<Manifest, LegacyError> {
    let source = format!(
        "legacy:{}",
        legacy
            .archive
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default()
    );
    match &legacy.content {
        LegacyContent::Zones(zones) => {
            let mut w = ArchiveWriter::create(out, ArchiveKind::Zones, source)?;
            for z in zones {
                let member = format!("{ZONEFILES_DIR}/{}zone", z.name);
                w.add_zone_bytes(&member, &z.name, &z.data, 0o644)?;
            }
            Ok(w.finish()?)
        }
        LegacyContent::Leases { base, set, .. } => {
            let mut data = Vec::new();
            set.write_to(&mut data)
                .map_err(|e| ArchiveError::io(out, e))?;
            let mut w = ArchiveWriter::create(out, ArchiveKind::Leases, source)?;
            w.add_lease_bytes(base, &data, 0o644)?;
            Ok(w.finish()?)
        }
        LegacyContent::Scripts(_) => Err(LegacyError::NeedsImport {
            archive: legacy.archive.clone(),
        }),
    }
}
