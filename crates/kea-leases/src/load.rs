//! Kea's start-up load semantics: which files it reads, in which order, and how rows combine.
//!
//! For a lease file `X`: if `X.completed` exists Kea loads it (and ignores `X.2`, `X.1`); else
//! `X.2` then `X.1`; then always `X`. Rows apply in order keyed by address: a later row replaces
//! an earlier one, a row with valid lifetime 0 deletes the entry. Malformed rows are skipped by
//! Kea; here they are collected with file and line, and counted.

use std::collections::BTreeMap;
use std::io;
use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};

use crate::csv::{Header, KEA_2_2_COLUMNS, Lease, LeaseFile, LeaseReader, ParseError, RowError};

/// The role a file plays in Kea's lease-file rotation.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Role {
    /// `X.completed`: LFC's finished output, not yet renamed to `X.2`.
    Completed,
    /// `X.2`: the previous LFC output.
    Previous,
    /// `X.1`: the file Kea rotated away for LFC to merge.
    Rotated,
    /// `X`: the file Kea appends to.
    Current,
}

impl Role {
    /// The suffix appended to the lease file name (`""` for the current file).
    pub fn suffix(self) -> &'static str {
        match self {
            Role::Completed => ".completed",
            Role::Previous => ".2",
            Role::Rotated => ".1",
            Role::Current => "",
        }
    }

    /// The path of this role's file for lease file `lease_file`.
    pub fn path_for(self, lease_file: &Path) -> PathBuf {
        let mut s = lease_file.as_os_str().to_owned();
        s.push(self.suffix());
        PathBuf::from(s)
    }
}

/// The path of LFC's PID file for `lease_file` (`X.pid`). Never back it up or restore it.
pub fn pid_path(lease_file: &Path) -> PathBuf {
    let mut s = lease_file.as_os_str().to_owned();
    s.push(".pid");
    PathBuf::from(s)
}

/// Given which files exist, the roles Kea loads, in load order.
pub fn roles_to_load(exists: impl Fn(Role) -> bool) -> Vec<Role> {
    let mut out = Vec::with_capacity(3);
    if exists(Role::Completed) {
        out.push(Role::Completed);
    } else {
        for r in [Role::Previous, Role::Rotated] {
            if exists(r) {
                out.push(r);
            }
        }
    }
    if exists(Role::Current) {
        out.push(Role::Current);
    }
    out
}

/// The files Kea would load for lease file `lease_file`, in order (only those that exist now).
pub fn files_to_load(lease_file: &Path) -> Vec<(Role, PathBuf)> {
    roles_to_load(|r| r.path_for(lease_file).is_file())
        .into_iter()
        .map(|r| (r, r.path_for(lease_file)))
        .collect()
}

/// The lease set Kea would hold after loading, with what was rejected on the way.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct EffectiveSet {
    /// The effective leases, by address.
    pub leases: BTreeMap<Ipv4Addr, Lease>,
    /// Every malformed row (file and line), in load order.
    pub errors: Vec<RowError>,
    /// Valid rows applied (including deletions and replaced rows).
    pub rows: u64,
    /// The files read, in order.
    pub files: Vec<PathBuf>,
    /// The header of the last file read (the one Kea wrote itself), if any.
    pub header: Option<Header>,
}

impl EffectiveSet {
    /// Applies one valid row as Kea does: replace by address, or delete if valid lifetime is 0.
    /// The lease is stored as Kea holds it ([`Lease::normalize`]: hostname lower-cased).
    pub fn apply(&mut self, mut lease: Lease) {
        self.rows += 1;
        lease.normalize();
        if lease.is_deletion() {
            self.leases.remove(&lease.address);
        } else {
            self.leases.insert(lease.address, lease);
        }
    }

    /// Applies every row of a parsed file and records its errors.
    pub fn apply_file(&mut self, path: &Path, file: LeaseFile) {
        self.files.push(path.to_owned());
        if file.header.is_some() {
            self.header = file.header;
        }
        self.errors.extend(file.errors);
        for r in file.records {
            self.apply(r.lease);
        }
    }

    /// Number of malformed rows.
    pub fn error_count(&self) -> usize {
        self.errors.len()
    }

    /// Writes the set as LFC would: header (of the last file read, else Kea 2.2's), then the
    /// leases sorted by address. Deleted and replaced rows are gone; expired ones are kept.
    pub fn write_to(&self, out: impl io::Write) -> io::Result<()> {
        let header = self.header.clone().unwrap_or_default();
        let mut w = crate::csv::LeaseWriter::new(out, header)?;
        for l in self.leases.values() {
            w.write(l)?;
        }
        w.finish().map(|_| ())
    }
}

/// Errors loading a lease file set.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    /// A file could not be read, or its header is not one Kea accepts.
    #[error(transparent)]
    Parse(#[from] ParseError),
}

/// Computes the effective lease set Kea would load for lease file `lease_file` (the path in
/// `lease-database.name`), reading the files that exist now. Not safe against a concurrent
/// LFC rotation: for a live directory take a [`crate::snapshot::Snapshot`] first.
pub fn load_effective(lease_file: &Path) -> Result<EffectiveSet, LoadError> {
    load_effective_with(lease_file, None)
}

/// [`load_effective`] as a Kea whose own schema has `kea_columns` columns (11: Kea 2.2, 12: Kea
/// 2.4+) loads the files; `None` infers it from the last file's header, which the running Kea
/// wrote itself (Kea 2.4+ upgrades the current file's header to 12 columns when it starts).
pub fn load_effective_with(
    lease_file: &Path,
    kea_columns: Option<usize>,
) -> Result<EffectiveSet, LoadError> {
    let files = files_to_load(lease_file);
    let kea_columns = match kea_columns {
        Some(n) => n,
        None => match files.last() {
            Some((_, last)) => header_columns(last)?,
            None => KEA_2_2_COLUMNS,
        },
    };
    let mut set = EffectiveSet::default();
    for (_, path) in files {
        let open = |path: &Path| {
            let f = std::fs::File::open(path).map_err(|source| ParseError::Io {
                file: path.to_owned(),
                source,
            })?;
            LeaseReader::new(io::BufReader::with_capacity(1 << 16, f), path)
        };
        let reader = open(&path)?.read_by_kea_columns(kea_columns);
        let file = LeaseFile::read_with(reader)?;
        set.apply_file(&path, file);
    }
    Ok(set)
}

/// The width of the schema a lease file's header names (at least Kea 2.2's 11 columns).
fn header_columns(path: &Path) -> Result<usize, ParseError> {
    let f = std::fs::File::open(path).map_err(|source| ParseError::Io {
        file: path.to_owned(),
        source,
    })?;
    let reader = LeaseReader::new(io::BufReader::new(f), path)?;
    Ok(reader.header().map_or(KEA_2_2_COLUMNS, Header::kea_columns))
}
