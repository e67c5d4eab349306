//! `dnsdhcp backup zones|leases|all`.

use std::os::unix::fs::PermissionsExt;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context, Result};
use clap::error::ErrorKind;
use clap::{Args, ValueEnum};

use dnsdhcp::backup;
use dnsdhcp::kube;
use dnsdhcp::store::Recipients;

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
    #[command(flatten)]
    upload: UploadArgs,
    #[command(flatten)]
    target: TargetArgs,
}

/// Runs `backup` on the resolved target; each part is reported as soon as it is written.
pub fn run(mut a: BackupArgs, ctx: &mut Ctx) -> Result<ExitCode> {
    let on = On::open(a.target.resolve(&ctx.given)?)?;
    // Checked before the backup runs: a bad URL or recipient should not cost a backup.
    let upload = match &a.upload.to {
        Some(url) => {
            let store = backups::open(url)?;
            let recipients = Recipients::parse(&a.upload.recipients)?;
            kube::block_on(store.probe())?;
            Some((store, recipients))
        }
        None if !a.upload.recipients.is_empty() => {
            return Err(ctx
                .given
                .usage_error(
                    ErrorKind::MissingRequiredArgument,
                    "--recipient is for uploads: give --to URL",
                )
                .into());
        }
        None => None,
    };
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
    let mut to_upload = Vec::new();
    let mut written = serde_json::Map::new();
    if a.what.zones() {
        let z = match &on {
            On::Local(t) => backup::backup_zones(t, &a.dir).map_err(anyhow::Error::from),
            On::Kube(c) => kube::block_on(c.backup_zones(&a.dir)).map_err(anyhow::Error::from),
        }
        .context("zone backup failed")?;
        if !a.json {
            ctx.out.zones_backup(&z);
        }
        written.insert("zones".into(), serde_json::to_value(&z)?);
        to_upload.push(z.full.clone());
    }
    if a.what.leases() {
        let l = match &on {
            On::Local(t) => backup::backup_leases(t, &a.dir).map_err(anyhow::Error::from),
            On::Kube(c) => kube::block_on(c.backup_leases(&a.dir)).map_err(anyhow::Error::from),
        }
        .context("lease backup failed")?;
        if !a.json {
            ctx.out.leases_backup(&l);
        }
        written.insert("leases".into(), serde_json::to_value(&l)?);
        to_upload.push(l.archive.clone());
    }
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
        written.insert("uploaded".into(), serde_json::to_value(&uploaded)?);
    }
    if a.json {
        ctx.out.report("backup", &written)?;
    }
    Ok(ExitCode::SUCCESS)
}
