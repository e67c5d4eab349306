//! `dnsdhcp backup`: zones through Knot's own `zone-backup`, leases from a consistent snapshot.
//!
//! Each backup writes a timestamped archive and replaces the fixed-name archive the restore path
//! consumes (`zones.tar.gz`, `kea-leases.tar.gz`). Both are written under a temporary name and
//! renamed into place when complete, so a crash never leaves a partial file under a final name
//! and never damages the previous archive. A fixed-name archive is only replaced when the new
//! backup's counts are plausible against it ([`ShrinkGuard`]).

mod shrink;

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use kea_leases::Snapshot;
use knot_ctl::{BackupOptions, Components};

use crate::archive::{self, ArchiveError, ArchiveKind, ArchiveWriter, Manifest, Member};
use crate::knot_storage::{self, human};
use crate::target::LocalTarget;

pub use crate::archive::{member_of_zone, zone_of_member};
pub use shrink::{Counts, DEFAULT_SHRINK_LIMIT, ShrinkGuard, ShrinkRefused};

/// The zones-only archive the post-start role and `restore --zones` consume.
pub const ZONES_ARCHIVE: &str = "zones.tar.gz";
/// The lease archive the init-leases role and `restore --leases` consume.
pub const LEASES_ARCHIVE: &str = "kea-leases.tar.gz";
/// Where Knot's backup layout keeps zone files.
pub const ZONEFILES_DIR: &str = "zonefiles";

/// Why a backup failed. Nothing under a final name has changed when this is returned.
#[derive(Debug, thiserror::Error)]
pub enum BackupError {
    /// Knot refused or failed a command.
    #[error("knot: {context}: {source}")]
    Knot {
        /// What was being done.
        context: String,
        /// Knot's error.
        #[source]
        source: knot_ctl::Error,
    },
    /// Knot serves no zones.
    #[error("knot serves no zones; nothing to back up")]
    NoZones,
    /// The backup directory has too little room for Knot's backup (knotd 3.2 crashes when the
    /// file system fills up under it); nothing was asked of Knot.
    #[error("not enough space in {}: need ~{}, have {}", dir.display(), human(*need), human(*have))]
    NoSpace {
        /// The backup directory.
        dir: PathBuf,
        /// What the backup is estimated to need.
        need: u64,
        /// What is available.
        have: u64,
    },
    /// The lease snapshot failed.
    #[error("lease snapshot of {}: {source}", path.display())]
    Snapshot {
        /// The lease file.
        path: PathBuf,
        /// The snapshot error.
        #[source]
        source: kea_leases::SnapshotError,
    },
    /// None of Kea's lease files (`X`, `X.1`, `X.2`, `X.completed`) exists at the path given.
    #[error(
        "no lease file at {} (nor .1, .2, .completed): is it the path in Kea's \
         lease-database.name? set --kea-lease-file or DNSDHCP_KEA_LEASE_FILE",
        path.display()
    )]
    NoLeaseFile {
        /// The lease file path given.
        path: PathBuf,
    },
    /// Writing an archive failed.
    #[error(transparent)]
    Archive(#[from] ArchiveError),
    /// The fixed-name archive was kept: the new backup's counts dropped too far against it.
    /// The timestamped archive was written.
    #[error(transparent)]
    Shrink(#[from] Box<ShrinkRefused>),
    /// A file-system operation failed.
    #[error("{}: {source}", path.display())]
    Io {
        /// The path.
        path: PathBuf,
        /// The error.
        #[source]
        source: std::io::Error,
    },
}

fn knot(context: impl Into<String>) -> impl FnOnce(knot_ctl::Error) -> BackupError {
    let context = context.into();
    move |source| BackupError::Knot { context, source }
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> BackupError + '_ {
    move |source| BackupError::Io {
        path: path.to_owned(),
        source,
    }
}

/// One archive a backup wrote.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct Written {
    /// Where it is.
    pub path: PathBuf,
    /// Its manifest.
    pub manifest: Manifest,
}

/// What a zone backup wrote: the full archive and the zones-only copy.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct ZonesBackup {
    /// `knot-zones-<name>-<stamp>.tar.gz`: Knot's whole backup directory.
    pub full: Written,
    /// `zones.tar.gz`: zone files only.
    pub zones: Written,
}

/// What a lease backup wrote.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct LeasesBackup {
    /// `kea-leases-<name>-<stamp>.tar.gz`.
    pub archive: Written,
    /// `kea-leases.tar.gz`, the same content.
    pub latest: Written,
    /// Rows Kea itself would skip at load (malformed), with file and line.
    pub skipped_rows: Vec<String>,
    /// How many attempts the snapshot needed (more than one: the lease files changed under it).
    pub snapshot_attempts: u32,
}

/// `backup --json`: what was written (and uploaded). The in-pod backup prints it; the
/// Kubernetes target reads it back into this type.
#[derive(Debug, Clone, Default, serde::Serialize, serde::Deserialize)]
pub struct BackupReport {
    /// The zone archives, if zones were backed up.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub zones: Option<ZonesBackup>,
    /// The lease archives, if leases were backed up.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub leases: Option<LeasesBackup>,
    /// The store entries, with `--to`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub uploaded: Option<Vec<crate::store::Entry>>,
}

/// A UTC timestamp for archive names, e.g. `20261127T064500Z`.
pub fn stamp() -> String {
    jiff::Timestamp::now()
        .strftime("%Y%m%dT%H%M%SZ")
        .to_string()
}

/// `<dir>/<prefix>-<stamp>.tar.gz`, or with `-2`, `-3`, ... after the stamp when a backup of
/// the same second already has that name: a timestamped archive is never replaced.
pub fn stamped_path(dir: &Path, prefix: &str) -> PathBuf {
    let stamp = stamp();
    let first = dir.join(format!("{prefix}-{stamp}.tar.gz"));
    if !first.exists() {
        return first;
    }
    (2u32..)
        .map(|n| dir.join(format!("{prefix}-{stamp}-{n}.tar.gz")))
        .find(|p| !p.exists())
        .expect("a free name")
}

/// `<dir>/<name>`, or with `-2`, `-3`, ... before `.tar.gz` when that name is taken: where an
/// archive made elsewhere (in the pod) is stored without replacing an earlier one.
pub fn free_path(dir: &Path, name: &str) -> PathBuf {
    let first = dir.join(name);
    if !first.exists() {
        return first;
    }
    let stem = name.strip_suffix(".tar.gz").unwrap_or(name);
    (2u32..)
        .map(|n| dir.join(format!("{stem}-{n}.tar.gz")))
        .find(|p| !p.exists())
        .expect("a free name")
}

/// Backs up every zone Knot serves into `out_dir` (created if missing).
///
/// Knot writes its own backup (`zone-backup`, blocking, with zone files, journal, timers, keys
/// and catalog) into a private staging directory inside `out_dir`, handed to knotd's user; that
/// directory becomes `knot-zones-<name>-<stamp>.tar.gz`, and its `zonefiles/` the new
/// `zones.tar.gz`. The zone files are written by Knot from memory, so they hold every change it
/// accepted, dynamic updates included.
pub fn backup_zones(target: &LocalTarget, out_dir: &Path) -> Result<ZonesBackup, BackupError> {
    backup_zones_waiting(target, out_dir, ZONE_EVENTS_TIMEOUT)
}

/// [`backup_zones`], recording `source` in the manifests (the Kubernetes target runs the
/// backup in the pod and records `kubernetes:<context>/<namespace>/<statefulset>`).
pub fn backup_zones_as(
    target: &LocalTarget,
    out_dir: &Path,
    source: &str,
) -> Result<ZonesBackup, BackupError> {
    backup_zones_with(target, out_dir, source, &ShrinkGuard::default())
}

/// [`backup_zones_as`], replacing `zones.tar.gz` only when `guard` accepts the new counts
/// against it; otherwise [`BackupError::Shrink`], with the timestamped archive written.
pub fn backup_zones_with(
    target: &LocalTarget,
    out_dir: &Path,
    source: &str,
    guard: &ShrinkGuard,
) -> Result<ZonesBackup, BackupError> {
    zones_backup(target, out_dir, ZONE_EVENTS_TIMEOUT, source, guard)
}

/// [`backup_zones`], waiting at most `wait` for the zone events Knot's backup conflicts with
/// (see [`ZONE_EVENTS_TIMEOUT`]); with zero, Knot is asked once, at once.
pub fn backup_zones_waiting(
    target: &LocalTarget,
    out_dir: &Path,
    wait: Duration,
) -> Result<ZonesBackup, BackupError> {
    zones_backup(
        target,
        out_dir,
        wait,
        &target.source(),
        &ShrinkGuard::default(),
    )
}

fn zones_backup(
    target: &LocalTarget,
    out_dir: &Path,
    wait: Duration,
    source: &str,
    guard: &ShrinkGuard,
) -> Result<ZonesBackup, BackupError> {
    fs::create_dir_all(out_dir).map_err(io(out_dir))?;
    let out_dir = fs::canonicalize(out_dir).map_err(io(out_dir))?;
    let mut client = target.knot().map_err(knot("connect"))?;
    let zones: Vec<String> = client
        .zone_status_all()
        .map_err(knot("zone-status"))?
        .into_iter()
        .map(|s| s.zone)
        .collect();
    if zones.is_empty() {
        return Err(BackupError::NoZones);
    }
    check_space(&mut client, &zones, &out_dir)?;

    let staging = tempfile::Builder::new()
        .prefix(".knot-backup-")
        .tempdir_in(&out_dir)
        .map_err(io(&out_dir))?;
    hand_to_knot(target, staging.path())?;
    let backup_dir = run_zone_backup(&mut client, &zones, staging.path(), wait)?;
    drop(client);

    let full_path = stamped_path(&out_dir, &format!("knot-zones-{}", target.name));
    let zones_path = out_dir.join(ZONES_ARCHIVE);
    let mut w = ArchiveWriter::create(&full_path, ArchiveKind::ZonesFull, source)?;
    write_backup_dir(&mut w, &backup_dir)?;
    // The zones-only copy goes under a temporary name until the guard accepts it.
    let candidate = candidate_path(&zones_path).map_err(io(&out_dir))?;
    let (full_manifest, zones_manifest) =
        w.finish_with_prefix_copy(&candidate, ArchiveKind::Zones)?;
    drop(staging);
    guard.check(&zones_path, &zones_manifest, Some(&full_path))?;
    archive::publish_file(candidate, &zones_path)?;
    Ok(ZonesBackup {
        full: Written {
            path: full_path,
            manifest: full_manifest,
        },
        zones: Written {
            path: zones_path,
            manifest: zones_manifest,
        },
    })
}

/// A hidden temporary path beside `fixed` (`.NAME.new-XXXXXX`, removed when dropped) for a
/// new fixed-name archive waiting for the guard.
pub fn candidate_path(fixed: &Path) -> std::io::Result<tempfile::TempPath> {
    let dir = fixed.parent().unwrap_or(Path::new("."));
    let name = fixed.file_name().unwrap_or_default().to_string_lossy();
    tempfile::Builder::new()
        .prefix(&format!(".{name}.new-"))
        .tempfile_in(dir)
        .map(|f| f.into_temp_path())
}

/// Adds Knot's backup directory to `w`: zone files first, as the prefix that becomes
/// `zones.tar.gz` by copying the compressed bytes, then everything else.
fn write_backup_dir(w: &mut ArchiveWriter, backup_dir: &Path) -> Result<(), BackupError> {
    let zonefiles = backup_dir.join(ZONEFILES_DIR);
    if zonefiles.is_dir() {
        w.add_dir(ZONEFILES_DIR, 0o750)?;
        w.add_dir_all_with(ZONEFILES_DIR, &zonefiles, classify_zone_member)?;
    }
    w.end_prefix()?;
    let mut rest: Vec<_> = fs::read_dir(backup_dir)
        .map_err(io(backup_dir))?
        .filter_map(|e| e.ok())
        .map(|e| e.file_name())
        .filter(|n| n != ZONEFILES_DIR)
        .collect();
    rest.sort();
    for name in rest {
        let src = backup_dir.join(&name);
        let member = name.to_string_lossy().into_owned();
        if src.is_dir() {
            w.add_dir(&member, 0o750)?;
            w.add_dir_all(&member, &src)?;
        } else {
            w.add_file(&member, &src)?;
        }
    }
    Ok(())
}

/// Refuses a backup whose estimated size ([`knot_storage::backup_size`], with a margin) exceeds
/// the room in `dir`.
fn check_space<S: std::io::Read + std::io::Write>(
    client: &mut knot_ctl::Client<S>,
    zones: &[String],
    dir: &Path,
) -> Result<(), BackupError> {
    let estimate = knot_storage::backup_size(client, zones).map_err(knot("conf-read"))?;
    let need = estimate + estimate / 10 + (1 << 20);
    let have = knot_storage::available(dir).map_err(io(dir))?;
    if have < need {
        return Err(BackupError::NoSpace {
            dir: dir.to_owned(),
            need,
            have,
        });
    }
    Ok(())
}

/// How long a backup waits for zone events it conflicts with (a large zone still loading,
/// flushing or being written to the journal).
pub const ZONE_EVENTS_TIMEOUT: Duration = Duration::from_secs(600);

/// Runs Knot's blocking `zone-backup` of `zones` into `<staging>/backup-N`, first waiting until
/// no zone event runs; when Knot still reports a conflict ("not enough space provided": a zone
/// busy with its journal right after a large load), waits and tries again in a fresh directory,
/// within `wait`. Returns the backup directory.
fn run_zone_backup<S: std::io::Read + std::io::Write>(
    client: &mut knot_ctl::Client<S>,
    zones: &[String],
    staging: &Path,
    wait: Duration,
) -> Result<PathBuf, BackupError> {
    let start = Instant::now();
    let names: Vec<&str> = zones.iter().map(String::as_str).collect();
    for attempt in 1.. {
        wait_for_zone_events(client, start, wait)?;
        let backup_dir = staging.join(format!("backup-{attempt}"));
        let opts = BackupOptions {
            components: Components {
                zonefile: Some(true),
                journal: Some(true),
                timers: Some(true),
                kaspdb: Some(true),
                catalog: Some(true),
            },
            ..BackupOptions::new(&backup_dir)
        };
        let context = || format!("zone-backup +backupdir {}", backup_dir.display());
        match client.zone_backup(&names, &opts) {
            Ok(()) => return Ok(backup_dir),
            Err(e)
                if e.to_string().contains("not enough space provided")
                    && start.elapsed() < wait =>
            {
                let _ = fs::remove_dir_all(&backup_dir);
                std::thread::sleep(Duration::from_millis(500));
            }
            Err(e) => return Err(knot(context())(e)),
        }
    }
    unreachable!("the loop returns")
}

/// Waits until no zone has a running event, or `wait` after `start` (then the backup is tried
/// anyway: Knot decides).
fn wait_for_zone_events<S: std::io::Read + std::io::Write>(
    client: &mut knot_ctl::Client<S>,
    start: Instant,
    wait: Duration,
) -> Result<(), BackupError> {
    loop {
        let busy = client
            .zone_status_all()
            .map_err(knot("zone-status"))?
            .iter()
            .any(|s| s.events.iter().any(|e| e.value == "running"));
        if !busy || start.elapsed() >= wait {
            return Ok(());
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// `zonefiles/<zone>.zone` is the zone file of `<zone>` in Knot's backup layout.
pub fn classify_zone_member(member: &str) -> Member {
    match zone_of_member(member) {
        Some(zone) => Member::Zone(zone),
        None => Member::Plain,
    }
}

/// Makes `dir` writable by knotd only: mode 0700, owned by the user that owns Knot's control
/// socket when that is another user and we may change owners (root).
pub(crate) fn hand_to_knot(target: &LocalTarget, dir: &Path) -> Result<(), BackupError> {
    fs::set_permissions(dir, fs::Permissions::from_mode(0o700)).map_err(io(dir))?;
    if let Some((uid, gid)) = target.knot_owner() {
        let me = effective_uid();
        if uid != me && me == 0 {
            std::os::unix::fs::chown(dir, Some(uid), Some(gid)).map_err(io(dir))?;
        }
    }
    Ok(())
}

/// The effective user id, read from `/proc/self/status`.
pub(crate) fn effective_uid() -> u32 {
    fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("Uid:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|v| v.parse().ok())
        })
        .unwrap_or(u32::MAX)
}

enum StreamError {
    Archive(ArchiveError),
    Snapshot(kea_leases::SnapshotError),
}

/// Streams `compacted` into `w` as `member`: one thread assembles the rows (reading them from
/// the snapshot's files) while this one hashes and compresses; at most a few 4 MiB chunks are
/// in memory. The rows were checked by the compaction, whose counts go into the manifest.
fn stream_compacted(
    w: &mut ArchiveWriter,
    member: &str,
    compacted: &kea_leases::Compacted<'_>,
) -> Result<(), StreamError> {
    use std::sync::mpsc;
    let (tx, rx) = mpsc::sync_channel::<Vec<u8>>(2);
    let leases = compacted.lease_count() as u64;
    std::thread::scope(|scope| {
        let producer = scope.spawn(move || compacted.write_to(ChunkSender(tx)));
        let added = w.add_checked_leases(
            member,
            compacted.len(),
            0o644,
            ChunkReader {
                rx,
                chunk: Vec::new(),
                pos: 0,
            },
            (leases, leases),
        );
        // The reader is gone: a producer still sending stops at its next chunk.
        let produced = producer.join().expect("lease chunk thread panicked");
        match (added, produced) {
            (Ok(_), Ok(())) => Ok(()),
            // The producer stopped because the archive side failed first.
            (Err(a), Err(kea_leases::SnapshotError::Io { source, .. }))
                if source.kind() == std::io::ErrorKind::BrokenPipe =>
            {
                Err(StreamError::Archive(a))
            }
            (_, Err(e)) => Err(StreamError::Snapshot(e)),
            (Err(a), Ok(())) => Err(StreamError::Archive(a)),
        }
    })
}

/// Hands each chunk written to it to a [`ChunkReader`].
struct ChunkSender(std::sync::mpsc::SyncSender<Vec<u8>>);

impl std::io::Write for ChunkSender {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0
            .send(buf.to_vec())
            .map_err(|_| std::io::Error::from(std::io::ErrorKind::BrokenPipe))?;
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// Reads the chunks a [`ChunkSender`] sends, in order.
struct ChunkReader {
    rx: std::sync::mpsc::Receiver<Vec<u8>>,
    chunk: Vec<u8>,
    pos: usize,
}

impl std::io::Read for ChunkReader {
    fn read(&mut self, out: &mut [u8]) -> std::io::Result<usize> {
        while self.pos == self.chunk.len() {
            match self.rx.recv() {
                Ok(chunk) => {
                    self.chunk = chunk;
                    self.pos = 0;
                }
                Err(_) => return Ok(0),
            }
        }
        let n = out.len().min(self.chunk.len() - self.pos);
        out[..n].copy_from_slice(&self.chunk[self.pos..self.pos + n]);
        self.pos += n;
        Ok(n)
    }
}

/// Backs up Kea's leases into `out_dir`: a consistent snapshot of the lease files (safe
/// against a concurrent LFC rotation, torn last rows ignored, `.pid` never included),
/// compacted to the one file Kea would load, streamed into `kea-leases-<name>-<stamp>.tar.gz`
/// (gzip level 1: compressing dominates the time), which is then copied byte for byte to
/// `kea-leases.tar.gz`. Memory: the compaction index (16 bytes per row read) and the lease
/// addresses, never the rows themselves.
pub fn backup_leases(target: &LocalTarget, out_dir: &Path) -> Result<LeasesBackup, BackupError> {
    backup_leases_as(target, out_dir, &target.source())
}

/// [`backup_leases`], recording `source` in the manifests (see [`backup_zones_as`]).
pub fn backup_leases_as(
    target: &LocalTarget,
    out_dir: &Path,
    source: &str,
) -> Result<LeasesBackup, BackupError> {
    backup_leases_with(target, out_dir, source, &ShrinkGuard::default())
}

/// [`backup_leases_as`], replacing `kea-leases.tar.gz` only when `guard` accepts the new lease
/// count against it; otherwise [`BackupError::Shrink`], with the timestamped archive written.
pub fn backup_leases_with(
    target: &LocalTarget,
    out_dir: &Path,
    source: &str,
    guard: &ShrinkGuard,
) -> Result<LeasesBackup, BackupError> {
    let lease_file = &target.kea_lease_file;
    // No lease file at all is a wrong path, not an empty lease set: Kea always has one.
    if kea_leases::load::files_to_load(lease_file).is_empty() {
        return Err(BackupError::NoLeaseFile {
            path: lease_file.clone(),
        });
    }
    fs::create_dir_all(out_dir).map_err(io(out_dir))?;
    let snap_err = |source| BackupError::Snapshot {
        path: lease_file.clone(),
        source,
    };
    let snapshot = Snapshot::take(lease_file).map_err(snap_err)?;
    let compacted = snapshot.compact().map_err(snap_err)?;
    let skipped_rows = compacted.errors().iter().map(|e| e.to_string()).collect();
    let member = lease_file
        .file_name()
        .and_then(|n| n.to_str())
        .unwrap_or("kea-leases4.csv")
        .to_owned();

    let path = stamped_path(out_dir, &format!("kea-leases-{}", target.name));
    let mut w = ArchiveWriter::create_with_level(
        &path,
        ArchiveKind::Leases,
        source,
        flate2::Compression::fast(),
    )?;
    stream_compacted(&mut w, &member, &compacted).map_err(|e| match e {
        StreamError::Archive(e) => BackupError::Archive(e),
        StreamError::Snapshot(source) => snap_err(source),
    })?;
    let archive = Written {
        manifest: w.finish()?,
        path,
    };
    drop(compacted);
    let latest_path = out_dir.join(LEASES_ARCHIVE);
    guard.check(&latest_path, &archive.manifest, Some(&archive.path))?;
    archive::replace_file_atomically(&archive.path, &latest_path)?;
    Ok(LeasesBackup {
        latest: Written {
            path: latest_path,
            manifest: archive.manifest.clone(),
        },
        archive,
        skipped_rows,
        snapshot_attempts: snapshot.attempts(),
    })
}

#[cfg(test)]
mod stamped_tests {
    use super::*;

    #[test]
    fn stamped_names_never_collide_within_a_second() {
        let dir = tempfile::tempdir().unwrap();
        let mut seen = std::collections::BTreeSet::new();
        for _ in 0..5 {
            let p = stamped_path(dir.path(), "kea-leases-x");
            assert!(seen.insert(p.clone()), "{p:?} given twice");
            fs::write(&p, b"x").unwrap();
        }
    }
}
