//! `dnsdhcp restore`.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{Context, Result};
use clap::error::ErrorKind;
use clap::{ArgGroup, Args};

use dnsdhcp::archive::ArchiveKind;
use dnsdhcp::kube::{self, Cluster};
use dnsdhcp::restore;
use dnsdhcp::target::{LocalTarget, Target};

use super::Ctx;
use super::backups::{self, IdentityArgs};
use super::target::TargetArgs;

#[derive(Args, Debug)]
#[command(group(ArgGroup::new("archives").required(true).multiple(true).args(["zones", "leases", "from"])))]
pub struct RestoreArgs {
    /// Zone archive: knot-zones-*.tar.gz (restored with Knot's zone-restore) or zones.tar.gz.
    /// With --from: the name of a backup in the store, or nothing for the newest.
    #[arg(
        long,
        value_name = "ARCHIVE",
        num_args = 0..=1,
        default_missing_value = LATEST
    )]
    zones: Option<PathBuf>,
    /// Lease archive: kea-leases*.tar.gz. With --from: a backup's name, or nothing for the
    /// newest.
    #[arg(long, value_name = "ARCHIVE", num_args = 0..=1, default_missing_value = LATEST)]
    leases: Option<PathBuf>,
    /// Restore from a store (s3://bucket/prefix, gs://, az://, file:///dir): the newest
    /// backups, or those --zones/--leases name. Downloads are checked against the store's
    /// entries and verified in full before anything changes.
    #[arg(long, value_name = "URL")]
    from: Option<String>,
    #[command(flatten)]
    keys: IdentityArgs,
    /// Kubernetes: restore into the running pod's daemons instead of restarting the pod
    /// (--local always restores into the running daemons).
    #[arg(long)]
    live: bool,
    /// Serve the archived SOA serials exactly. By default a restored zone's serial moves past
    /// both the one served before and the archived one, so secondaries transfer it. (Kubernetes:
    /// with --live only.)
    #[arg(long)]
    keep_serial: bool,
    /// Kubernetes: seconds to wait for the StatefulSet's new pod to be Ready after the old one
    /// is deleted.
    #[arg(long, value_name = "SECONDS", default_value_t = 600)]
    timeout: u64,
    /// Print what was restored as JSON.
    #[arg(long)]
    json: bool,
    #[command(flatten)]
    target: TargetArgs,
}

/// What `--zones`/`--leases` stand for without a value (with --from): the newest backup.
const LATEST: &str = "latest";

/// Runs `restore` on the resolved target.
pub fn run(mut a: RestoreArgs, ctx: &mut Ctx) -> Result<ExitCode> {
    let target = a.target.resolve(&ctx.given)?;
    // Archives from a store are downloaded (and checked) first; the directory lives until the
    // restore is over.
    let _downloads = match a.from.clone() {
        Some(url) => Some(fetch_from_store(&url, &mut a, ctx)?),
        None => {
            for (p, flag) in [(&a.zones, "--zones"), (&a.leases, "--leases")] {
                if p.as_deref() == Some(std::path::Path::new(LATEST))
                    && !p.as_ref().is_some_and(|p| p.exists())
                {
                    return Err(ctx
                        .given
                        .usage_error(
                            ErrorKind::MissingRequiredArgument,
                            format!(
                                "{flag} needs an ARCHIVE (or --from URL for the newest backup)"
                            ),
                        )
                        .into());
                }
            }
            None
        }
    };
    match target {
        Target::Local(t) => {
            for (id, flag) in [("live", "--live"), ("timeout", "--timeout")] {
                if ctx.given.on_command_line(id) {
                    return Err(ctx
                        .given
                        .usage_error(
                            ErrorKind::ArgumentConflict,
                            format!(
                                "{flag} is for the Kubernetes target; --local always restores into the running daemons"
                            ),
                        )
                        .into());
                }
            }
            local(&a, &t, ctx)
        }
        Target::Kube(k) => {
            if a.keep_serial && !a.live {
                return Err(ctx
                    .given
                    .usage_error(
                        ErrorKind::ArgumentConflict,
                        "--keep-serial needs --live with the Kubernetes target (after a pod restart the zones are restored by the pod's post-start hook, which moves serials forward)",
                    )
                    .into());
            }
            let mut c = super::connect(&k)?;
            c.timeouts.pod_ready = Duration::from_secs(a.timeout);
            in_cluster(&a, &c, ctx)
        }
    }
}

/// Downloads the archives `--from` names into a temporary directory and points `a` at them.
fn fetch_from_store(url: &str, a: &mut RestoreArgs, ctx: &mut Ctx) -> Result<tempfile::TempDir> {
    let store = backups::open(url)?;
    let ids = a.keys.read()?;
    let dir = tempfile::tempdir().context("temporary directory for the downloads")?;
    let both = a.zones.is_none() && a.leases.is_none();
    let mut wanted: Vec<(&[ArchiveKind], Option<String>, bool)> = vec![
        (
            &[ArchiveKind::ZonesFull, ArchiveKind::Zones],
            a.zones.take().map(name_of),
            true,
        ),
        (&[ArchiveKind::Leases], a.leases.take().map(name_of), false),
    ];
    if both {
        // Neither named: the newest of each kind the store holds.
        let entries = kube::block_on(store.list())?;
        for w in &mut wanted {
            if entries.iter().any(|e| w.0.contains(&e.manifest.kind)) {
                w.1 = Some(LATEST.into());
            }
        }
        if wanted.iter().all(|w| w.1.is_none()) {
            anyhow::bail!("no backups in {url}");
        }
    }
    for (kinds, name, zones) in wanted {
        let Some(name) = name else { continue };
        let (path, entry) = backups::fetch(&store, kinds, &name, dir.path(), ids.as_ref())?;
        if !a.json {
            ctx.out.line(format!(
                "downloaded {} (checksum matches its entry)",
                entry.name
            ));
        }
        if zones {
            a.zones = Some(path);
        } else {
            a.leases = Some(path);
        }
    }
    Ok(dir)
}

fn name_of(p: PathBuf) -> String {
    p.to_string_lossy().into_owned()
}

fn local(a: &RestoreArgs, t: &LocalTarget, ctx: &mut Ctx) -> Result<ExitCode> {
    let opts = restore::ZoneRestoreOptions {
        keep_serial: a.keep_serial,
    };
    let r = restore::restore_local(t, a.zones.as_deref(), a.leases.as_deref(), &opts)?;
    if a.json {
        ctx.out.report("restore", &r.report(t.source()))?;
        return Ok(ExitCode::SUCCESS);
    }
    for note in &r.notes {
        ctx.out.line(format!("note: {note}"));
    }
    for aborted in &r.aborted {
        ctx.out.line(aborted.to_string());
    }
    if let Some(z) = &r.zones {
        ctx.out.zones_restore(z);
    }
    if let Some(l) = &r.leases {
        ctx.out.leases_restore(l);
    }
    Ok(ExitCode::SUCCESS)
}

fn in_cluster(a: &RestoreArgs, c: &Cluster, ctx: &mut Ctx) -> Result<ExitCode> {
    let r = kube::block_on(c.restore_with(
        a.zones.as_deref(),
        a.leases.as_deref(),
        a.live,
        a.keep_serial,
    ))
    .context("restore failed")?;
    if a.json {
        ctx.out.report("restore", &r.report())?;
    } else {
        for line in r.summary() {
            ctx.out.line(line);
        }
    }
    Ok(ExitCode::SUCCESS)
}
