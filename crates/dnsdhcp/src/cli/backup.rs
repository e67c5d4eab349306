//! `dnsdhcp backup zones|leases|all`.

use std::os::unix::fs::PermissionsExt;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context, Result};
use clap::error::ErrorKind;
use clap::{Args, ValueEnum};

use dnsdhcp::backup::{self, BackupError, DEFAULT_SHRINK_LIMIT, ShrinkGuard, ShrinkRefused};
use dnsdhcp::kube;
use dnsdhcp::store::{Recipients, Store};

use super::backups::{self, UploadArgs};
use super::target::TargetArgs;
use super::{Ctx, On};

#[derive(ValueEnum, Debug, Clone, Copy, PartialEq, Eq)]
pub enum What {
    /// DNS zones (Knot).
    Zones,
    /// DHCP leases (Kea).
    Leases,
    /// Both.
    All,
}

impl What {
    pub fn zones(self) -> bool {
        matches!(self, What::Zones | What::All)
    }
    pub fn leases(self) -> bool {
        matches!(self, What::Leases | What::All)
    }
}

#[derive(Args, Debug)]
pub struct BackupArgs {
    /// What to back up.
    what: What,
    /// Directory for the archives (created if missing). With --to and without this flag, a
    /// temporary directory removed after the upload.
    #[arg(short = 'b', long = "backup-dir", default_value = "./backups")]
    dir: PathBuf,
    /// Print what was written as JSON.
    #[arg(long)]
    json: bool,
    /// The source the manifests record (default: `local:<name>`; the Kubernetes target passes
    /// `kubernetes:<context>/<namespace>/<statefulset>` to the backup it runs in the pod).
    #[arg(long, hide = true)]
    source: Option<String>,
    /// Replace zones.tar.gz / kea-leases.tar.gz even when the new backup has far fewer zones,
    /// records or leases than the archive it replaces (see --shrink-limit).
    #[arg(long)]
    allow_shrink: bool,
    /// Keep zones.tar.gz / kea-leases.tar.gz (and exit 1) when the new backup's zone, record or
    /// lease count drops to zero, or by more than PERCENT (0 to 100) against it; the
    /// timestamped archive is written either way.
    #[arg(long, value_name = "PERCENT", default_value_t = DEFAULT_SHRINK_LIMIT, value_parser = parse_shrink_limit, allow_negative_numbers = true)]
    shrink_limit: f64,
    #[command(flatten)]
    upload: UploadArgs,
    #[command(flatten)]
    target: TargetArgs,
}

/// `--shrink-limit`: a number from 0 to 100 (NaN, negatives and more than 100 are usage errors).
fn parse_shrink_limit(text: &str) -> Result<f64, String> {
    text.trim()
        .parse::<f64>()
        .ok()
        .and_then(ShrinkGuard::percent)
        .map(|g| g.limit_percent)
        .ok_or_else(|| format!("`{text}` is not a percentage from 0 to 100"))
}

/// The fixed-name archives a backup kept (one per kind refused); the timestamped archives
/// were written.
#[derive(Debug, thiserror::Error)]
#[error("{}", .0.iter().map(ToString::to_string).collect::<Vec<_>>().join("; and "))]
pub struct Refused(pub Vec<ShrinkRefused>);

/// The refusal inside a backup error, if that is what it is.
fn refusal(e: &anyhow::Error) -> Option<ShrinkRefused> {
    match e.downcast_ref::<BackupError>() {
        Some(BackupError::Shrink(r)) => return Some((**r).clone()),
        Some(_) => return None,
        None => {}
    }
    match e.downcast_ref::<kube::KubeError>() {
        Some(kube::KubeError::Shrink(r)) => Some((**r).clone()),
        _ => None,
    }
}

/// Runs `backup` on the resolved target; each part is reported as soon as it is written.
pub fn run(mut a: BackupArgs, ctx: &mut Ctx) -> Result<ExitCode> {
    let target = a.target.resolve(&ctx.given)?;
    if let (dnsdhcp::target::Target::Kube(_), Some(_)) = (&target, &a.source) {
        // The Kubernetes target records `kubernetes:<context>/<namespace>/<statefulset>` itself.
        return Err(ctx
            .given
            .usage_error(
                ErrorKind::ArgumentConflict,
                "--source is for backups on this host (--local) only",
            )
            .into());
    }
    let on = On::open(target)?;
    let upload = checked_upload(&a, ctx)?;
    let _scratch = match (&upload, ctx.given.on_command_line("dir")) {
        (Some(_), false) => {
            let t = tempfile::tempdir().context("temporary directory for the archives")?;
            // knotd (possibly another user) writes its backup into a directory inside.
            std::fs::set_permissions(t.path(), std::fs::Permissions::from_mode(0o711))?;
            a.dir = t.path().to_owned();
            Some(t)
        }
        _ => None,
    };
    let (mut written, to_upload) = back_up(&a, &on, ctx)?;
    if let Some((store, recipients)) = &upload {
        let mut uploaded = Vec::new();
        for w in &to_upload {
            let e = kube::block_on(store.upload(
                &w.path,
                &w.manifest,
                recipients,
                a.upload.require_encryption,
            ))
            .with_context(|| format!("uploading {}", w.path.display()))?;
            if !a.json {
                ctx.out.line(backups::uploaded_line(store, &e));
            }
            uploaded.push(e);
        }
        written.uploaded = Some(uploaded);
    }
    if a.json {
        ctx.out.report("backup", &written)?;
    }
    Ok(ExitCode::SUCCESS)
}

/// With `--to`, the store and recipients, checked before the backup runs: a bad URL or
/// recipient should not cost a backup.
fn checked_upload(a: &BackupArgs, ctx: &Ctx) -> Result<Option<(Store, Recipients)>> {
    match &a.upload.to {
        Some(url) => {
            let store = backups::open(url)?;
            let recipients = Recipients::parse(&a.upload.recipients)?;
            kube::block_on(store.probe())?;
            Ok(Some((store, recipients)))
        }
        None if !a.upload.recipients.is_empty() => Err(ctx
            .given
            .usage_error(
                ErrorKind::MissingRequiredArgument,
                "--recipient is for uploads: give --to URL",
            )
            .into()),
        None => Ok(None),
    }
}

/// Backs up the kinds asked for into `a.dir`, each reported as soon as it is written. Returns
/// the report and the archives to upload. A kind whose fixed-name archive was kept (a shrink
/// refused) does not stop the other kind's backup; the refusals are the error then.
fn back_up(
    a: &BackupArgs,
    on: &On,
    ctx: &mut Ctx,
) -> Result<(backup::BackupReport, Vec<backup::Written>)> {
    let source = |t: &dnsdhcp::target::LocalTarget| a.source.clone().unwrap_or_else(|| t.source());
    let guard = ShrinkGuard {
        allow_shrink: a.allow_shrink,
        limit_percent: a.shrink_limit,
    };
    let mut to_upload = Vec::new();
    let mut written = backup::BackupReport::default();
    let mut refused = Vec::new();
    if a.what.zones() {
        let z = match on {
            On::Local(t) => backup::backup_zones_with(t, &a.dir, &source(t), &guard)
                .map_err(anyhow::Error::from),
            On::Kube(c) => {
                kube::block_on(c.backup_zones_with(&a.dir, &guard)).map_err(anyhow::Error::from)
            }
        };
        match z {
            Ok(z) => {
                if !a.json {
                    ctx.out.zones_backup(&z);
                }
                to_upload.push(z.full.clone());
                written.zones = Some(z);
            }
            Err(e) => refused.push(refusal(&e).ok_or(e).context("zone backup failed")?),
        }
    }
    if a.what.leases() {
        let l = match on {
            On::Local(t) => backup::backup_leases_with(t, &a.dir, &source(t), &guard)
                .map_err(anyhow::Error::from),
            On::Kube(c) => {
                kube::block_on(c.backup_leases_with(&a.dir, &guard)).map_err(anyhow::Error::from)
            }
        };
        match l {
            Ok(l) => {
                if !a.json {
                    ctx.out.leases_backup(&l);
                }
                to_upload.push(l.archive.clone());
                written.leases = Some(l);
            }
            Err(e) => refused.push(refusal(&e).ok_or(e).context("lease backup failed")?),
        }
    }
    if !refused.is_empty() {
        return Err(Refused(refused).into());
    }
    Ok((written, to_upload))
}
