//! The in-pod roles: what the chart's init containers and the `knot-auth` postStart hook run.
//!
//! * [`copy_binary`]: puts this binary into a shared volume for the other containers.
//! * [`init_zones`]: first start: copies the chart's initial zone files into the zones volume.
//! * [`init_leases`]: restores `kea-leases.tar.gz` from the lease volume before Kea starts.
//! * [`post_start`]: once Knot runs: aborts stale transactions, restores `zones.tar.gz` from the
//!   zones volume, merges the static records from the values file.
//!
//! Each role reports progress through a `log` callback, so the caller decides where lines go
//! (a postStart hook's own output is discarded by Kubernetes).

use std::fs;
use std::io::{self, Write};
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::archive::{self, ExtractOptions};
use crate::backup::{LEASES_ARCHIVE, ZONES_ARCHIVE, stamp};
use crate::leases;
use crate::legacy::{self, LegacyError, NO_MANIFEST_NOTE};
use crate::preflight;
use crate::probe::RecordsMerge;
use crate::records::{self, ApplyOptions};
use crate::target::LocalTarget;
use crate::zones::{RestoreOptions, sync_zone};

/// Why a role failed. The caller exits non-zero.
#[derive(Debug, thiserror::Error)]
pub enum PodError {
    /// Knot did not answer in time, or a zone is not served.
    #[error("zones cannot be served: {0}")]
    ZonesNotServed(String),
    /// Lease files could not be put in place.
    #[error(transparent)]
    Leases(#[from] leases::LeaseInstallError),
    /// A manifest-less archive could not be converted for a reason other than its content.
    #[error(transparent)]
    Legacy(#[from] LegacyError),
    /// A file-system step failed.
    #[error("{}: {source}", path.display())]
    Io {
        /// The path.
        path: PathBuf,
        /// The error.
        #[source]
        source: io::Error,
    },
}

fn io_at(path: &Path) -> impl FnOnce(io::Error) -> PodError + '_ {
    move |source| PodError::Io {
        path: path.to_owned(),
        source,
    }
}

/// Gives `path` the owner of its directory when running as root: an archive received into a
/// volume by the tool's own container (root) must be readable by the daemon's container that
/// restores it at the next start (`knot-auth` runs as Knot's user).
pub fn own_like_parent(path: &Path) -> Result<(), PodError> {
    use std::os::unix::fs::MetadataExt;
    if crate::backup::effective_uid() != 0 {
        return Ok(());
    }
    let dir = path.parent().unwrap_or(Path::new("."));
    let meta = fs::metadata(dir).map_err(io_at(dir))?;
    std::os::unix::fs::chown(path, Some(meta.uid()), Some(meta.gid())).map_err(io_at(path))
}

/// Copies the running binary to `dest` (mode 0755), atomically.
pub fn copy_binary(dest: &Path) -> Result<(), PodError> {
    let exe = std::env::current_exe().map_err(io_at(Path::new("/proc/self/exe")))?;
    let dir = dest.parent().unwrap_or(Path::new("."));
    fs::create_dir_all(dir).map_err(io_at(dir))?;
    let tmp = dir.join(format!(
        ".{}.tmp",
        dest.file_name().unwrap_or_default().to_string_lossy()
    ));
    fs::copy(&exe, &tmp).map_err(io_at(&tmp))?;
    fs::set_permissions(&tmp, fs::Permissions::from_mode(0o755)).map_err(io_at(&tmp))?;
    fs::rename(&tmp, dest).map_err(io_at(dest))?;
    Ok(())
}

/// Copies every zone file from `initial_dir` (the chart's ConfigMap) into `zones_dir` when the
/// zone has no file there yet; never overwrites. Returns the files copied.
pub fn init_zones(initial_dir: &Path, zones_dir: &Path) -> Result<Vec<PathBuf>, PodError> {
    fs::create_dir_all(zones_dir).map_err(io_at(zones_dir))?;
    let mut copied = Vec::new();
    let mut names: Vec<_> = fs::read_dir(initial_dir)
        .map_err(io_at(initial_dir))?
        .filter_map(|e| e.ok())
        .map(|e| e.file_name())
        .collect();
    names.sort();
    for name in names {
        // ConfigMap volumes hold `..data` and timestamped directories beside symlinked files.
        if name.to_string_lossy().starts_with('.') {
            continue;
        }
        let src = initial_dir.join(&name);
        if !src.is_file() {
            continue;
        }
        let dest = zones_dir.join(&name);
        if dest.symlink_metadata().is_ok() {
            continue;
        }
        let tmp = zones_dir.join(format!(".{}.init", name.to_string_lossy()));
        fs::copy(&src, &tmp).map_err(io_at(&tmp))?;
        fs::File::open(&tmp)
            .and_then(|f| f.sync_all())
            .map_err(io_at(&tmp))?;
        // A hard link fails if the destination appeared meanwhile: never overwrite.
        let linked = fs::hard_link(&tmp, &dest);
        fs::remove_file(&tmp).map_err(io_at(&tmp))?;
        match linked {
            Ok(()) => copied.push(dest),
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {}
            Err(e) => return Err(io_at(&dest)(e)),
        }
    }
    Ok(copied)
}

/// What [`init_leases`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LeasesInit {
    /// No archive: the lease files are as they were.
    NothingToRestore,
    /// The archive was restored and removed.
    Restored {
        /// Leases in the archive.
        leases: u64,
    },
    /// An interrupted restore was completed (its archive had already been consumed).
    Completed,
    /// The archive failed verification and was moved aside; the lease files are unchanged.
    Rejected {
        /// Where the archive now is.
        moved_to: PathBuf,
        /// Why.
        reason: String,
    },
}

/// Before Kea starts: restores `kea-leases.tar.gz` from the lease directory if present
/// (verified; old `.completed`, `.2`, `.1` and `.pid` removed), then removes the archive, so a
/// restart never applies it twice. Also removes a stale LFC `.pid` file, which would stop Kea
/// from starting if its PID were reused.
///
/// Only an archive that fails verification is moved aside. An I/O error (no space, a read
/// error, permissions) is returned with the archive left in place for the next start.
pub fn init_leases(lease_file: &Path) -> Result<LeasesInit, PodError> {
    let dir = lease_file.parent().unwrap_or(Path::new("."));
    fs::create_dir_all(dir).map_err(io_at(dir))?;
    let archive = dir.join(LEASES_ARCHIVE);
    let outcome = if leases::finish_pending(lease_file)? {
        // The archive that was staged is consumed; a crash may have left it in place.
        if archive.exists() {
            leases::remove_durably(&archive)?;
        }
        LeasesInit::Completed
    } else if archive.exists() {
        // Read it once: a read error is the disk's fault, not the archive's.
        fs::File::open(&archive)
            .and_then(|mut f| io::copy(&mut f, &mut io::sink()))
            .map_err(io_at(&archive))?;
        // An archive written the original chart's way is checked and converted first.
        let converted = match legacy::convert_if_legacy(&archive, dir) {
            Err(LegacyError::Archive(e @ archive::ArchiveError::Io { .. })) => {
                return Err(LegacyError::Archive(e).into());
            }
            other => other,
        };
        let staged = match &converted {
            Ok(c) => match leases::stage(c.as_ref().map_or(&*archive, |c| c.path()), lease_file) {
                Ok(report) => Ok(report),
                Err(e) if is_rejection(&e) => Err(e.to_string()),
                Err(e) => return Err(e.into()),
            },
            Err(e) => Err(e.to_string()),
        };
        match staged {
            Ok(report) => {
                drop(converted);
                leases::remove_durably(&archive)?;
                leases::finish_pending(lease_file)?;
                LeasesInit::Restored {
                    leases: report.lease_count,
                }
            }
            Err(reason) => {
                drop(converted);
                let moved_to = reject(&archive)?;
                LeasesInit::Rejected { moved_to, reason }
            }
        }
    } else {
        LeasesInit::NothingToRestore
    };
    let mut pid = lease_file.as_os_str().to_owned();
    pid.push(".pid");
    match fs::remove_file(PathBuf::from(&pid)) {
        Ok(()) => {}
        Err(e) if e.kind() == io::ErrorKind::NotFound => {}
        Err(e) => return Err(io_at(Path::new(&pid))(e)),
    }
    Ok(outcome)
}

/// Whether `e` condemns the archive itself (it fails verification or safe extraction), as
/// opposed to an I/O error of the disk it is read from or extracted to.
fn is_rejection(e: &leases::LeaseInstallError) -> bool {
    use crate::archive::ArchiveError;
    match e {
        leases::LeaseInstallError::Verify { .. }
        | leases::LeaseInstallError::NotOneLeaseFile { .. } => true,
        leases::LeaseInstallError::Archive(a) => match a {
            ArchiveError::Io { .. } => false,
            ArchiveError::Corrupt { source, .. } => source.raw_os_error().is_none(),
            _ => true,
        },
        _ => false,
    }
}

/// Creates Kea's control-socket directory with mode exactly 0750: Kea 2.6 refuses any other
/// (and an emptyDir is 0777).
pub fn prepare_socket_dir(dir: &Path) -> Result<(), PodError> {
    fs::create_dir_all(dir).map_err(io_at(dir))?;
    fs::set_permissions(dir, fs::Permissions::from_mode(0o750)).map_err(io_at(dir))
}

/// Moves a rejected archive aside (`NAME.rejected-<stamp>`) so it is not tried again.
fn reject(archive: &Path) -> Result<PathBuf, PodError> {
    let mut name = archive.as_os_str().to_owned();
    name.push(format!(".rejected-{}", stamp()));
    let moved = PathBuf::from(name);
    fs::rename(archive, &moved).map_err(io_at(archive))?;
    Ok(moved)
}

/// Settings of [`post_start`].
#[derive(Debug, Clone)]
pub struct PostStartConfig {
    /// Knot's control socket (the rest of the target is unused).
    pub target: LocalTarget,
    /// The zones volume, where `zones.tar.gz` is looked for.
    pub zones_dir: PathBuf,
    /// Helm values files holding `zones` and `staticRecords`; missing files are skipped.
    pub values_files: Vec<PathBuf>,
    /// How long to wait for Knot to answer and for zones to load.
    pub timeout: Duration,
    /// Options of the static-record apply.
    pub apply: ApplyOptions,
}

/// After Knot starts: waits for it (bounded), aborts transactions left open by an earlier run,
/// restores `zones.tar.gz` from the zones volume when present (so Knot serves exactly the
/// archive, record for record and serial, whatever its journal held), then merges the static
/// records. Fails only when the zones cannot be served; every other problem is logged and
/// leaves the zones as they were. Returns how the merge ended (the caller decides whether a
/// failed merge keeps the pod from becoming Ready).
pub fn post_start(
    cfg: &PostStartConfig,
    log: &mut dyn FnMut(String),
) -> Result<RecordsMerge, PodError> {
    let mut client = cfg
        .target
        .wait_for_knot(cfg.timeout)
        .map_err(|e| PodError::ZonesNotServed(format!("knot does not answer: {e}")))?;
    log(format!(
        "knot answers on {}",
        cfg.target.knot_socket.display()
    ));
    abort_open_transactions(&mut client, log);
    restore_staged_zones(&mut client, &cfg.zones_dir, log)?;
    let records = merge_static_records(&mut client, cfg, log);
    wait_for_zones(&mut client, cfg.timeout, log)?;
    Ok(records)
}

/// Aborts the transactions an earlier run left open; problems are logged.
fn abort_open_transactions(client: &mut knot_ctl::Client<UnixStream>, log: &mut dyn FnMut(String)) {
    match client.open_transactions(None) {
        Ok(zones) => {
            for zone in zones {
                log(format!("aborting a transaction left open on {zone}"));
                if let Err(e) = client.zone_abort(&zone) {
                    log(format!("warning: zone-abort {zone}: {e}"));
                }
            }
        }
        Err(e) => log(format!("warning: cannot list open transactions: {e}")),
    }
}

/// Restores `zones.tar.gz` from the zones volume when present, then removes it; an archive at
/// fault is moved aside, one this Knot cannot take is left for the next start (both logged).
fn restore_staged_zones(
    client: &mut knot_ctl::Client<UnixStream>,
    zones_dir: &Path,
    log: &mut dyn FnMut(String),
) -> Result<(), PodError> {
    let archive = zones_dir.join(ZONES_ARCHIVE);
    let readable = fs::File::open(&archive);
    if let Err(e) = &readable
        && archive.exists()
    {
        // Not the archive's fault (e.g. written by another user with mode 0600): keep it for
        // the next start instead of rejecting it.
        log(format!(
            "error: cannot read {} ({e}); zones NOT restored, archive left in place",
            archive.display()
        ));
    } else if readable.is_ok() {
        log(format!("restoring zones from {}", archive.display()));
        match restore_zones_archive(client, &archive, zones_dir, log) {
            Ok(()) => {
                fs::remove_file(&archive).map_err(io_at(&archive))?;
                log(format!("zones restored; removed {}", archive.display()));
            }
            Err(NotRestored::Archive(reason)) => {
                let moved = reject(&archive)?;
                log(format!(
                    "error: zones NOT restored, archive moved to {}: {reason}",
                    moved.display()
                ));
            }
            Err(NotRestored::Target(reason)) => log(format!(
                "error: zones NOT restored, nothing changed, archive left in place for the next \
                 start: {reason}"
            )),
        }
    }
    Ok(())
}

/// Merges the static records of the values files that exist; the plan applied is logged.
fn merge_static_records(
    client: &mut knot_ctl::Client<UnixStream>,
    cfg: &PostStartConfig,
    log: &mut dyn FnMut(String),
) -> RecordsMerge {
    let files: Vec<&PathBuf> = cfg.values_files.iter().filter(|p| p.exists()).collect();
    if files.is_empty() {
        log("no values file; no static records to merge".into());
        return RecordsMerge::NoValues;
    }
    let connect = || cfg.target.knot();
    let merged = records::load_values(&files)
        .and_then(|values| records::apply_values(client, Some(&connect), values, &cfg.apply));
    match merged {
        Ok(outcome) => {
            let changes: usize = outcome.plan.zones.iter().map(|z| z.changes.len()).sum();
            log(format!(
                "static records merged: {changes} RRset change(s), {} zone(s) committed",
                outcome.committed.len()
            ));
            for line in records::render_plan(&outcome.plan, false).lines() {
                log(format!("  {line}"));
            }
            RecordsMerge::Merged { changes }
        }
        Err(e) => {
            log(format!("error: static records NOT merged: {e}"));
            RecordsMerge::Failed {
                error: e.to_string(),
            }
        }
    }
}

/// Waits (up to `timeout`) until every zone is loaded, then logs each zone's serial.
fn wait_for_zones(
    client: &mut knot_ctl::Client<UnixStream>,
    timeout: Duration,
    log: &mut dyn FnMut(String),
) -> Result<(), PodError> {
    let deadline = std::time::Instant::now() + timeout;
    loop {
        let statuses = client
            .zone_status_all()
            .map_err(|e| PodError::ZonesNotServed(format!("zone-status: {e}")))?;
        let unloaded: Vec<String> = statuses
            .iter()
            .filter(|s| s.serial.is_none())
            .map(|s| s.zone.clone())
            .collect();
        if unloaded.is_empty() {
            for s in &statuses {
                log(format!(
                    "serving {} serial {}",
                    s.zone,
                    s.serial.unwrap_or(0)
                ));
            }
            return Ok(());
        }
        if std::time::Instant::now() >= deadline {
            return Err(PodError::ZonesNotServed(format!(
                "not loaded: {}",
                unloaded.join(", ")
            )));
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// Why `zones.tar.gz` was not restored.
enum NotRestored {
    /// The archive is at fault (corrupt, not a zone archive, a zone file Knot refuses): it is
    /// moved aside.
    Archive(String),
    /// This Knot cannot take it (a zone it does not serve, a type it cannot load, no room on
    /// the volume), found before anything changed: the archive stays for the next start.
    Target(String),
}

impl From<String> for NotRestored {
    fn from(reason: String) -> Self {
        NotRestored::Archive(reason)
    }
}

/// Verifies and extracts a zones-only archive next to it, then makes every zone serve its
/// archived records (one transaction per zone; Knot then flushes them to its zone files).
/// First come the checks a `restore` makes: the archive verified in full, then Knot serves each
/// zone and reads each type, and the volume has room, so that a restore the target cannot take
/// changes nothing.
fn restore_zones_archive<S: io::Read + io::Write>(
    client: &mut knot_ctl::Client<S>,
    archive: &Path,
    zones_dir: &Path,
    log: &mut dyn FnMut(String),
) -> Result<(), NotRestored> {
    // An archive written the original chart's way is checked and converted first.
    let converted = legacy::convert_if_legacy(archive, zones_dir).map_err(|e| e.to_string())?;
    if let Some(c) = &converted {
        log(format!(
            "{}: {NO_MANIFEST_NOTE}; {} zone file(s) checked and converted",
            archive.display(),
            c.manifest.zones.len()
        ));
    }
    let archive = converted.as_ref().map_or(archive, |c| c.path());
    let archives = preflight::check_archives(Some(archive), None).map_err(|e| e.to_string())?;
    let places = preflight::Places {
        zones_dir: zones_dir.to_owned(),
    };
    let ready = preflight::check_zones_with(client, &archives.needs().zones_part(), &places)
        .map_err(|e| NotRestored::Target(e.problems.join("; ")))?;
    for note in ready.notes {
        log(format!("note: {note}"));
    }
    let report = archives
        .zones
        .map(|slot| slot.report)
        .ok_or_else(|| "not a zone archive".to_owned())?;
    let staging = zones_dir.join(".dnsdhcp-zones-restore");
    if staging.exists() {
        fs::remove_dir_all(&staging).map_err(|e| format!("{}: {e}", staging.display()))?;
    }
    archive::extract(archive, &staging, &ExtractOptions::default()).map_err(|e| e.to_string())?;
    let result = (|| {
        for z in &report.zones {
            let path = staging.join(&z.file);
            let mut data = fs::read(&path).map_err(|e| format!("{}: {e}", path.display()))?;
            if z.apex_from_target {
                data = legacy::scripts::with_target_apex(client, &z.name, &data)
                    .map_err(|e| e.to_string())?;
            }
            let opts = RestoreOptions {
                keep_serial: false,
                stage_dir: Some(zones_dir.to_owned()),
            };
            let outcome =
                sync_zone(client, &z.name, &z.file, &data, &opts).map_err(|e| e.to_string())?;
            log(format!(
                "  {}: serial {}, {} record(s), {} RRset(s) changed",
                z.name, outcome.serial, z.records, outcome.rrsets_changed
            ));
        }
        Ok(())
    })();
    let _ = fs::remove_dir_all(&staging);
    result
}

/// Appends `line` to `path` (e.g. `/proc/1/fd/1`, the container's log) if it can be opened.
pub fn append_line(path: &Path, line: &str) {
    if let Ok(mut f) = fs::OpenOptions::new().append(true).open(path) {
        let _ = writeln!(f, "{line}");
    }
}

/// What [`init_tsig`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TsigInit {
    /// A new key was generated (first start on this zones volume).
    Generated,
    /// The key on the volume was kept.
    Kept,
}

/// File names in the TSIG directory: the base64 key (Kea's `secret-file`) and Knot's `key:`
/// section for it (included by knot.conf), the same names a TSIG Secret of the chart holds.
pub const TSIG_SECRET: &str = "secret";
/// See [`TSIG_SECRET`].
pub const TSIG_KNOT_CONF: &str = "knot-key.conf";

/// The DDNS TSIG key kept on the zones volume: generated once (32 random bytes) when `dir` has
/// none, kept on every later start; `knot-key.conf` rewritten from it with the current key name
/// and algorithm. So the key needs no Secret rendered by Helm (stable under `helm template` and
/// GitOps) and survives every restart. Files are mode 0440 (Knot reads them as owner, Kea's
/// DDNS daemon through the pod's fsGroup).
pub fn init_tsig(dir: &Path, key_name: &str, algorithm: &str) -> Result<TsigInit, PodError> {
    fs::create_dir_all(dir).map_err(io_at(dir))?;
    fs::set_permissions(dir, fs::Permissions::from_mode(0o750)).map_err(io_at(dir))?;
    let secret_path = dir.join(TSIG_SECRET);
    let (secret, outcome) = match fs::read_to_string(&secret_path) {
        Ok(s) if !s.trim().is_empty() => (s.trim().to_owned(), TsigInit::Kept),
        Ok(_) => (new_secret()?, TsigInit::Generated),
        Err(e) if e.kind() == io::ErrorKind::NotFound => (new_secret()?, TsigInit::Generated),
        Err(e) => return Err(io_at(&secret_path)(e)),
    };
    if outcome == TsigInit::Generated {
        write_0440(&secret_path, secret.as_bytes())?;
    }
    let conf =
        format!("key:\n  - id: {key_name}\n    algorithm: {algorithm}\n    secret: {secret}\n");
    let conf_path = dir.join(TSIG_KNOT_CONF);
    if fs::read_to_string(&conf_path).ok().as_deref() != Some(conf.as_str()) {
        write_0440(&conf_path, conf.as_bytes())?;
    }
    Ok(outcome)
}

/// 32 random bytes from the kernel, base64.
fn new_secret() -> Result<String, PodError> {
    let mut key = [0u8; 32];
    let mut filled = 0;
    while filled < key.len() {
        // SAFETY: the pointer and length describe the unfilled tail of `key`.
        let n =
            unsafe { libc::getrandom(key[filled..].as_mut_ptr().cast(), key.len() - filled, 0) };
        if n < 0 {
            let e = io::Error::last_os_error();
            if e.kind() == io::ErrorKind::Interrupted {
                continue;
            }
            return Err(io_at(Path::new("getrandom"))(e));
        }
        filled += n as usize;
    }
    Ok(domain::utils::base64::encode_string(&key))
}

/// Writes `data` to `path` atomically and durably, mode 0440.
fn write_0440(path: &Path, data: &[u8]) -> Result<(), PodError> {
    let mut tmp = path.as_os_str().to_owned();
    tmp.push(".tmp");
    let tmp = PathBuf::from(tmp);
    let _ = fs::remove_file(&tmp);
    let mut f = fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o440)
        .open(&tmp)
        .map_err(io_at(&tmp))?;
    f.write_all(data)
        .and_then(|()| f.sync_all())
        .map_err(io_at(&tmp))?;
    fs::rename(&tmp, path).map_err(io_at(path))
}

#[cfg(test)]
mod tsig_tests {
    use super::*;

    #[test]
    fn the_key_is_generated_once_and_knot_conf_follows_name_and_algorithm() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path().join("tsig");
        assert_eq!(
            init_tsig(&d, "kea-ddns", "hmac-sha256").unwrap(),
            TsigInit::Generated
        );
        let secret = fs::read_to_string(d.join(TSIG_SECRET)).unwrap();
        let raw = domain::utils::base64::decode::<Vec<u8>>(&secret).unwrap();
        assert_eq!(raw.len(), 32);
        let mode = fs::metadata(d.join(TSIG_SECRET))
            .unwrap()
            .permissions()
            .mode()
            & 0o777;
        assert_eq!(mode, 0o440);

        assert_eq!(
            init_tsig(&d, "ddns2", "hmac-sha512").unwrap(),
            TsigInit::Kept
        );
        assert_eq!(fs::read_to_string(d.join(TSIG_SECRET)).unwrap(), secret);
        let conf = fs::read_to_string(d.join(TSIG_KNOT_CONF)).unwrap();
        assert_eq!(
            conf,
            format!("key:\n  - id: ddns2\n    algorithm: hmac-sha512\n    secret: {secret}\n")
        );

        let other = tempfile::tempdir().unwrap();
        init_tsig(other.path(), "kea-ddns", "hmac-sha256").unwrap();
        assert_ne!(
            fs::read_to_string(other.path().join(TSIG_SECRET)).unwrap(),
            secret,
            "every volume gets its own random key"
        );
    }
}
