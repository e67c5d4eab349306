//! `dnsdhcp restore --local`: restore archives into running daemons without restarting them.
//!
//! Every archive is verified in full before anything changes. Zones: a full Knot backup goes
//! back through Knot's own `zone-restore`; a zones-only archive through one transaction per zone
//! that makes the zone serve exactly the archived records and serial ([`crate::zones`]). Leases:
//! the lease file is staged and put in place crash-safely ([`crate::leases`]), then Kea
//! re-reads its lease files (`config-reload`).

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use knot_ctl::{BackupOptions, Components};

use crate::archive::{self, ArchiveError, ArchiveKind, ExtractOptions, Limits, VerifyReport};
use crate::backup::{effective_uid, zone_of_member};
use crate::leases::{self, LeaseInstallError};
use crate::legacy::{self, Converted, LegacyError};
use crate::target::LocalTarget;
use crate::zones::{
    Method, RestoreOptions, SyncOutcome, ZONE_FILE_LOAD_TIMEOUT, ZoneSyncError, prepare_backup_dir,
    sync_zone, wait_served,
};

/// Why a restore failed.
#[derive(Debug, thiserror::Error)]
pub enum RestoreError {
    /// The archive failed verification; nothing was changed.
    #[error("{}: verification failed:\n  {}", archive.display(), problems.join("\n  "))]
    Verify {
        /// The archive.
        archive: PathBuf,
        /// Every problem, naming member and line.
        problems: Vec<String>,
    },
    /// The archive is of the wrong kind for this use.
    #[error("{}: a {found} archive cannot be restored as {wanted}", archive.display())]
    WrongKind {
        /// The archive.
        archive: PathBuf,
        /// Its kind.
        found: String,
        /// What was asked for.
        wanted: &'static str,
    },
    /// Zones in the archive are not served by Knot (they must be configured first); nothing
    /// was changed.
    #[error(
        "zone(s) {zone} are in the archive but Knot does not serve them; add them to Knot's configuration first (nothing was restored)"
    )]
    UnknownZone {
        /// The zones, comma-separated.
        zone: String,
    },
    /// The archive holds no zone: a restore would restore nothing.
    #[error("{}: the archive holds no zone file; nothing to restore", archive.display())]
    NothingToRestore {
        /// The archive.
        archive: PathBuf,
    },
    /// Knot refused or failed a command.
    #[error("knot: {context}: {source}")]
    Knot {
        /// What was being done.
        context: String,
        /// Knot's error.
        #[source]
        source: knot_ctl::Error,
    },
    /// After the restore, a zone did not come back with the archived serial in time.
    #[error("zone {zone} did not serve serial {expected} within {waited:?} (serving {serving:?})")]
    SerialMismatch {
        /// The zone.
        zone: String,
        /// The archived serial.
        expected: u32,
        /// What it serves (None: not loaded).
        serving: Option<u32>,
        /// How long we waited.
        waited: Duration,
    },
    /// Replacing a zone's contents failed; that zone's transaction was aborted.
    #[error(transparent)]
    ZoneSync(#[from] ZoneSyncError),
    /// Lease files could not be put in place.
    #[error(transparent)]
    Leases(#[from] LeaseInstallError),
    /// Kea refused or failed a command.
    #[error("kea: {context}: {source}")]
    Kea {
        /// What was being done.
        context: String,
        /// Kea's error.
        #[source]
        source: kea_leases::ControlError,
    },
    /// Extraction failed; nothing was changed.
    #[error(transparent)]
    Archive(#[from] ArchiveError),
    /// A manifest-less archive could not be read or converted; nothing was changed.
    #[error(transparent)]
    Legacy(#[from] LegacyError),
    /// A check before the first change failed; nothing was changed.
    #[error(transparent)]
    Preflight(#[from] crate::preflight::PreflightError),
    /// A transaction is in the way (someone else's, or a running dnsdhcp's).
    #[error(transparent)]
    Txn(#[from] crate::txn::TxnError),
    /// The restore stopped part-way: some of it is in place, some is not.
    #[error(
        "restore incomplete: {cause}\n  restored: {}\n  not restored: {}\n  to finish: {finish}",
        if restored.is_empty() { "nothing".to_owned() } else { restored.join(", ") },
        not_restored.join(", ")
    )]
    Incomplete {
        /// What is in place (zones, leases).
        restored: Vec<String>,
        /// What is not.
        not_restored: Vec<String>,
        /// The command that finishes the restore.
        finish: String,
        /// Why it stopped (a local step's [`RestoreError`], or a Kubernetes step's error).
        #[source]
        cause: Box<dyn std::error::Error + Send + Sync>,
    },
    /// A file-system step failed.
    #[error("{}: {source}", path.display())]
    Io {
        /// The path.
        path: PathBuf,
        /// The error.
        #[source]
        source: std::io::Error,
    },
}

fn knot(context: impl Into<String>) -> impl FnOnce(knot_ctl::Error) -> RestoreError {
    let context = context.into();
    move |source| RestoreError::Knot { context, source }
}

/// Verifies `archive` and returns the report, or every problem as an error.
pub fn verified(archive: &Path) -> Result<VerifyReport, RestoreError> {
    let report = archive::verify(archive, &Limits::default());
    if report.ok {
        Ok(report)
    } else {
        Err(RestoreError::Verify {
            archive: archive.to_owned(),
            problems: report.problems.iter().map(|p| p.to_string()).collect(),
        })
    }
}

/// One zone as restored.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct RestoredZone {
    /// The zone (FQDN).
    pub zone: String,
    /// The serial it serves now: past the served and the archived one, or the archived one
    /// with `--keep-serial`.
    pub serial: u32,
    /// Records in the archived zone file.
    pub records: u64,
    /// How it was put back.
    pub method: Method,
}

/// What a zone restore did.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct ZonesRestore {
    /// The archive restored.
    pub archive: PathBuf,
    /// `zone-restore` (full archive) or `transaction` (zones-only archive; large zones by
    /// their zone file, see each zone's method); `post-start` after a pod restart.
    pub method: String,
    /// Every zone restored.
    pub zones: Vec<RestoredZone>,
}

/// How long a restored zone may take to be served again.
pub const ZONE_LOAD_TIMEOUT: Duration = Duration::from_secs(60);

/// Options of a zone restore.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ZoneRestoreOptions {
    /// Serve the archived serial exactly instead of one past both the served and the archived
    /// serial.
    pub keep_serial: bool,
}

/// Restores zones from `archive` into the running Knot of `target` with default options (see
/// [`restore_zones_with`]).
pub fn restore_zones(target: &LocalTarget, archive: &Path) -> Result<ZonesRestore, RestoreError> {
    restore_zones_with(target, archive, &ZoneRestoreOptions::default())
}

/// Restores zones from `archive` into the running Knot of `target`: a full archive
/// (`knot-zones-*.tar.gz`) with Knot's `zone-restore`, a zones-only one (`zones.tar.gz`) by
/// transaction (large zones by their zone file). Waits until every zone is served again; the
/// serial moves past both the served and the archived one unless `opts.keep_serial`. An archive
/// written the original chart's way (no manifest) is checked, converted and restored as
/// `zones.tar.gz`.
pub fn restore_zones_with(
    target: &LocalTarget,
    archive: &Path,
    opts: &ZoneRestoreOptions,
) -> Result<ZonesRestore, RestoreError> {
    let (_scratch, converted) = convert_legacy(archive)?;
    let mut restored = restore_zones_from(
        target,
        converted.as_ref().map_or(archive, |c| c.path()),
        opts,
    )?;
    restored.archive = archive.to_owned();
    Ok(restored)
}

/// Everything a `restore --local` did.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct LocalRestore {
    /// Transactions an interrupted dnsdhcp had left open on the archived zones, aborted first.
    pub aborted: Vec<crate::txn::Aborted>,
    /// What the preflight noted for the running daemons (records converted to RFC 3597 form
    /// for an older Knot; an unknown Knot version).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub notes: Vec<String>,
    /// The zones restored.
    pub zones: Option<ZonesRestore>,
    /// The leases restored.
    pub leases: Option<LeasesRestore>,
}

impl LocalRestore {
    /// The report `restore --json` prints, for a restore into `target` (its source name).
    pub fn report(self, target: String) -> RestoreReport {
        RestoreReport {
            target,
            aborted: self.aborted,
            notes: self.notes,
            zones: self.zones,
            leases: self.leases,
            pod: None,
        }
    }
}

/// What a restore did, whatever the target: `restore --json` prints it (kind `restore`) in
/// this one shape, and the Kubernetes target reads the in-pod `restore --local` back into it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct RestoreReport {
    /// Where: `local:<name>` or `kubernetes:<context>/<namespace>/<statefulset>`.
    pub target: String,
    /// Transactions an interrupted dnsdhcp had left open on the archived zones, aborted first.
    pub aborted: Vec<crate::txn::Aborted>,
    /// What the preflight noted for the running daemons (records converted to RFC 3597 form
    /// for an older Knot; an unknown Knot version).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub notes: Vec<String>,
    /// The zones restored (each with the serial it serves now).
    pub zones: Option<ZonesRestore>,
    /// The leases restored (with the count Kea holds now).
    pub leases: Option<LeasesRestore>,
    /// Kubernetes: the pod, and its replacement's uid when it was restarted (null with
    /// `--local`).
    pub pod: Option<PodRestore>,
}

/// The pod a Kubernetes restore went into.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct PodRestore {
    /// The pod.
    pub name: String,
    /// Its uid before.
    pub old_uid: String,
    /// The replacement's uid (null with `--live`: not restarted).
    pub new_uid: Option<String>,
}

/// `restore --local`: the preflight ([`crate::preflight`]: archives verified and in the right
/// slots, daemons answering, zones configured, no transaction in the way, room on disk), then
/// the zones, then the leases. A failure after the first change is
/// [`RestoreError::Incomplete`], naming what is restored, what is not, and the command that
/// finishes the job. Archives written the original chart's way are converted first.
pub fn restore_local(
    target: &LocalTarget,
    zones: Option<&Path>,
    leases: Option<&Path>,
    opts: &ZoneRestoreOptions,
) -> Result<LocalRestore, RestoreError> {
    let zones_conv = zones.map(convert_legacy).transpose()?;
    let leases_conv = leases.map(convert_legacy).transpose()?;
    let effective =
        |orig: Option<&Path>, conv: &Option<(tempfile::TempDir, Option<Converted>)>| match conv {
            Some((_, Some(c))) => Some(c.path().to_owned()),
            _ => orig.map(Path::to_owned),
        };
    let zones_eff = effective(zones, &zones_conv);
    let leases_eff = effective(leases, &leases_conv);
    let archives = crate::preflight::check_archives(zones_eff.as_deref(), leases_eff.as_deref())?;
    let places = crate::preflight::Places::default();
    let ready = crate::preflight::check_target(target, &archives.needs(), &places)?;

    let mut done = LocalRestore {
        aborted: Vec::new(),
        notes: ready.notes,
        zones: None,
        leases: None,
    };
    if let (Some(z), Some(orig)) = (&archives.zones, zones) {
        let names: Vec<&str> = z.report.zones.iter().map(|z| z.name.as_str()).collect();
        let mut client = target.knot().map_err(knot("connect"))?;
        done.aborted = crate::txn::clear_abandoned(&mut client, &names)?;
        drop(client);
        let mut r = restore_zones_from(target, &z.path, opts)?;
        r.archive = orig.to_owned();
        done.zones = Some(r);
    }
    if let (Some(l), Some(orig)) = (&archives.leases, leases) {
        match restore_leases_from(target, &l.path) {
            Ok(mut r) => {
                r.archive = orig.to_owned();
                done.leases = Some(r);
            }
            Err(cause) => match &done.zones {
                Some(zones) => {
                    return Err(RestoreError::Incomplete {
                        restored: zones
                            .zones
                            .iter()
                            .map(|z| format!("zone {}", z.zone))
                            .collect(),
                        not_restored: vec![format!("leases from {}", orig.display())],
                        finish: format!("dnsdhcp restore --local --leases {}", orig.display()),
                        cause: Box::new(cause),
                    });
                }
                None => return Err(cause),
            },
        }
    }
    Ok(done)
}

/// Converts a manifest-less `archive` into a project archive in a fresh temporary directory
/// (removed when the returned guard drops); `None` for a project archive.
pub fn convert_legacy(
    archive: &Path,
) -> Result<(tempfile::TempDir, Option<Converted>), RestoreError> {
    let scratch = tempfile::Builder::new()
        .prefix("dnsdhcp-legacy-")
        .tempdir()
        .map_err(|source| RestoreError::Io {
            path: std::env::temp_dir(),
            source,
        })?;
    let converted = legacy::convert_if_legacy(archive, scratch.path())?;
    Ok((scratch, converted))
}

fn restore_zones_from(
    target: &LocalTarget,
    archive: &Path,
    opts: &ZoneRestoreOptions,
) -> Result<ZonesRestore, RestoreError> {
    let report = verified(archive)?;
    if report.zones.is_empty() {
        return Err(RestoreError::NothingToRestore {
            archive: archive.to_owned(),
        });
    }
    let served = served_serials(target, &report)?;
    match report.kind {
        Some(ArchiveKind::ZonesFull) => restore_full(target, archive, &report, &served, opts),
        Some(ArchiveKind::Zones) => restore_zone_files(target, archive, &report, opts),
        other => Err(RestoreError::WrongKind {
            archive: archive.to_owned(),
            found: other.map_or("unknown".into(), |k| k.to_string()),
            wanted: "zones",
        }),
    }
}

/// The serial of every zone Knot serves and has loaded (names lowercase); an error naming the
/// archive's zones Knot does not serve at all.
fn served_serials(
    target: &LocalTarget,
    report: &VerifyReport,
) -> Result<BTreeMap<String, u32>, RestoreError> {
    let mut client = target.knot().map_err(knot("connect"))?;
    let served: BTreeMap<String, Option<u32>> = client
        .zone_status_all()
        .map_err(knot("zone-status"))?
        .into_iter()
        .map(|s| (s.zone.to_ascii_lowercase(), s.serial))
        .collect();
    let missing: Vec<String> = report
        .zones
        .iter()
        .filter(|z| !served.contains_key(&z.name.to_ascii_lowercase()))
        .map(|z| z.name.clone())
        .collect();
    if !missing.is_empty() {
        return Err(RestoreError::UnknownZone {
            zone: missing.join(", "),
        });
    }
    Ok(served
        .into_iter()
        .filter_map(|(z, s)| s.map(|s| (z, s)))
        .collect())
}

/// A zone-files archive: extracted to a staging directory, then each zone synced into Knot
/// in a transaction, one after the other (a failure after the first says what is restored).
fn restore_zone_files(
    target: &LocalTarget,
    archive: &Path,
    report: &VerifyReport,
    opts: &ZoneRestoreOptions,
) -> Result<ZonesRestore, RestoreError> {
    let (staging, dest) = extract_to_staging(archive, "zones")?;
    let stage = staging.path().join("knot");
    fs::create_dir(&stage).map_err(|source| RestoreError::Io {
        path: stage.clone(),
        source,
    })?;
    give_tree_to_knot(target, &stage)?;
    let sync_opts = RestoreOptions {
        keep_serial: opts.keep_serial,
        stage_dir: Some(stage),
    };
    let mut client = target.knot().map_err(knot("connect"))?;
    let mut zones = Vec::new();
    for z in &report.zones {
        let path = dest.join(&z.file);
        let synced = fs::read(&path)
            .map_err(|source| RestoreError::Io { path, source })
            .and_then(|data| {
                let data = if z.apex_from_target {
                    legacy::scripts::with_target_apex(&mut client, &z.name, &data)?
                } else {
                    data
                };
                Ok(sync_zone(&mut client, &z.name, &z.file, &data, &sync_opts)?)
            });
        let SyncOutcome { serial, method, .. } = match synced {
            Ok(o) => o,
            Err(cause) if zones.is_empty() => return Err(cause),
            Err(cause) => return Err(zones_incomplete(archive, report, &zones, cause)),
        };
        zones.push(RestoredZone {
            zone: z.name.clone(),
            serial,
            records: z.records,
            method,
        });
    }
    Ok(ZonesRestore {
        archive: archive.to_owned(),
        method: "transaction".into(),
        zones,
    })
}

/// A zone restore that stopped after `done` zones: what is restored, what is not, and how to
/// finish (a rerun leaves zones that already match alone).
fn zones_incomplete(
    archive: &Path,
    report: &VerifyReport,
    done: &[RestoredZone],
    cause: RestoreError,
) -> RestoreError {
    RestoreError::Incomplete {
        restored: done.iter().map(|r| format!("zone {}", r.zone)).collect(),
        not_restored: report.zones[done.len()..]
            .iter()
            .map(|z| format!("zone {}", z.name))
            .collect(),
        finish: format!(
            "fix the cause, then run the same restore again (zones already restored are left as they are): dnsdhcp restore --local --zones {}",
            archive.display()
        ),
        cause: Box::new(cause),
    }
}

/// Extracts `archive` (checked entry by entry first) into `<fresh temp dir>/<name>`; the temp
/// dir is removed when the returned guard drops.
fn extract_to_staging(
    archive: &Path,
    name: &str,
) -> Result<(tempfile::TempDir, PathBuf), RestoreError> {
    let staging = tempfile::Builder::new()
        .prefix("dnsdhcp-restore-")
        .tempdir()
        .map_err(|source| RestoreError::Io {
            path: std::env::temp_dir(),
            source,
        })?;
    let dest = staging.path().join(name);
    archive::extract(archive, &dest, &ExtractOptions::default())?;
    Ok((staging, dest))
}

fn restore_full(
    target: &LocalTarget,
    archive: &Path,
    report: &VerifyReport,
    served: &BTreeMap<String, u32>,
    opts: &ZoneRestoreOptions,
) -> Result<ZonesRestore, RestoreError> {
    // Knot reads the backup as its own user: stage it where that user may read it.
    let (staging, dest) = extract_to_staging(archive, "backup")?;
    // Only the zones whose files are in the archive: Knot 3.2 deletes the live zone file of a
    // zone restored from a backup that lacks it.
    let zones: Vec<(&str, &str)> = report
        .zones
        .iter()
        .filter(|z| zone_of_member(&z.file).is_some())
        .map(|z| (z.name.as_str(), z.file.as_str()))
        .collect();
    // Every zone file loadable by the running Knot and holding the serial to serve, before
    // anything changes.
    let mut client = target.knot().map_err(knot("connect"))?;
    let table = crate::zones::knot_table(&mut client, zones.first().map_or(".", |z| z.0))?;
    drop(client);
    let serials = prepare_backup_dir(&dest, &zones, served, opts.keep_serial, table)?;
    give_tree_to_knot(target, staging.path())?;
    let names: Vec<&str> = zones.iter().map(|z| z.0).collect();
    let backup_opts = BackupOptions {
        components: Components {
            zonefile: Some(true),
            journal: Some(false),
            timers: Some(true),
            kaspdb: Some(true),
            catalog: None,
        },
        ..BackupOptions::new(&dest)
    };
    let mut client = target.knot().map_err(knot("connect"))?;
    client
        .zone_restore(&names, &backup_opts)
        .map_err(knot(format!("zone-restore +backupdir {}", dest.display())))?;
    let mut restored = Vec::new();
    for (z, serial) in report.zones.iter().zip(serials) {
        wait_served(&mut client, &z.name, serial, ZONE_FILE_LOAD_TIMEOUT)?;
        restored.push(RestoredZone {
            zone: z.name.clone(),
            serial,
            records: z.records,
            method: Method::ZoneFile,
        });
    }
    Ok(ZonesRestore {
        archive: archive.to_owned(),
        method: "zone-restore".into(),
        zones: restored,
    })
}

/// Waits until `zone` is loaded and serves `serial`.
pub fn wait_for_serial(
    target: &LocalTarget,
    zone: &str,
    serial: u32,
    timeout: Duration,
) -> Result<(), RestoreError> {
    let start = Instant::now();
    loop {
        let mut client = target.knot().map_err(knot("connect"))?;
        let serving = client
            .zone_status(zone)
            .map_err(knot(format!("zone-status {zone}")))?
            .serial;
        if serving == Some(serial) {
            return Ok(());
        }
        if start.elapsed() >= timeout {
            return Err(RestoreError::SerialMismatch {
                zone: zone.to_owned(),
                expected: serial,
                serving,
                waited: start.elapsed(),
            });
        }
        drop(client);
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Hands a staged tree to knotd's user (when we are root and it is another user).
fn give_tree_to_knot(target: &LocalTarget, root: &Path) -> Result<(), RestoreError> {
    let Some((uid, gid)) = target.knot_owner() else {
        return Ok(());
    };
    if effective_uid() != 0 || uid == 0 {
        return Ok(());
    }
    let mut stack = vec![root.to_owned()];
    while let Some(path) = stack.pop() {
        std::os::unix::fs::chown(&path, Some(uid), Some(gid)).map_err(|source| {
            RestoreError::Io {
                path: path.clone(),
                source,
            }
        })?;
        if path.is_dir() {
            for entry in fs::read_dir(&path).map_err(|source| RestoreError::Io {
                path: path.clone(),
                source,
            })? {
                let entry = entry.map_err(|source| RestoreError::Io {
                    path: path.clone(),
                    source,
                })?;
                stack.push(entry.path());
            }
        }
    }
    Ok(())
}

/// What a lease restore did.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct LeasesRestore {
    /// The archive restored.
    pub archive: PathBuf,
    /// Leases in the archive.
    pub archived: u64,
    /// Leases Kea holds after `config-reload`.
    pub held: u64,
}

/// Restores leases from `archive` into the running Kea of `target`: the lease file is put in
/// place crash-safely, then `config-reload` makes Kea load it. Returns the lease counts before
/// (archive) and after (what Kea holds). An archive of Kea's lease directory written the
/// original chart's way (no manifest) is checked and its files combined as Kea loads them.
pub fn restore_leases(target: &LocalTarget, archive: &Path) -> Result<LeasesRestore, RestoreError> {
    let (_scratch, converted) = convert_legacy(archive)?;
    let mut restored =
        restore_leases_from(target, converted.as_ref().map_or(archive, |c| c.path()))?;
    restored.archive = archive.to_owned();
    Ok(restored)
}

fn restore_leases_from(
    target: &LocalTarget,
    archive: &Path,
) -> Result<LeasesRestore, RestoreError> {
    let kea = target.kea();
    // Check Kea answers before touching anything.
    kea.list_commands().map_err(|source| RestoreError::Kea {
        context: "list-commands".into(),
        source,
    })?;
    leases::finish_pending(&target.kea_lease_file)?;
    let report = leases::stage(archive, &target.kea_lease_file)?;
    leases::finish_pending(&target.kea_lease_file)?;
    kea.config_reload().map_err(|source| RestoreError::Kea {
        context: "config-reload".into(),
        source,
    })?;
    let held = count_leases(target)?;
    Ok(LeasesRestore {
        archive: archive.to_owned(),
        archived: report.lease_count,
        held,
    })
}

/// How many leases Kea holds now, paged through `lease4-get-page` (one page in memory at a time).
pub fn count_leases(target: &LocalTarget) -> Result<u64, RestoreError> {
    let mut count = 0u64;
    for page in target.kea().lease4_pages(1000) {
        count += page
            .map_err(|source| RestoreError::Kea {
                context: "lease4-get-page".into(),
                source,
            })?
            .len() as u64;
    }
    Ok(count)
}
