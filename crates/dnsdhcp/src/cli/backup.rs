//! `dnsdhcp backup zones|leases|all`.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context, Result};
use clap::{Args, ValueEnum};

use dnsdhcp::backup;
use dnsdhcp::kube;

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
    fn zones(self) -> bool {
        matches!(self, What::Zones | What::All)
    }
    fn leases(self) -> bool {
        matches!(self, What::Leases | What::All)
    }
}

#[derive(Args, Debug)]
pub struct BackupArgs {
    /// What to back up.
    what: What,
    /// Directory for the archives (created if missing).
    #[arg(short = 'b', long = "backup-dir", default_value = "./backups")]
    dir: PathBuf,
    /// Print what was written as JSON.
    #[arg(long)]
    json: bool,
    #[command(flatten)]
    target: TargetArgs,
}

/// Runs `backup` on the resolved target; each part is reported as soon as it is written.
pub fn run(a: BackupArgs, ctx: &mut Ctx) -> Result<ExitCode> {
    let on = On::open(a.target.resolve(&ctx.given)?)?;
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
    }
    if a.json {
        ctx.out.json(&written)?;
    }
    Ok(ExitCode::SUCCESS)
}
